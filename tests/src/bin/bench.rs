//! `cargo xtask bench`: side-by-side measurements, written to BENCHMARKS.md.
//!
//! Allocation storm: a child mmaps and munmaps 64 KiB as fast as it can, untraced and under
//! `memwatch record`, interleaved; the ratio of their loop rates is the cost users feel.

use std::{
    fmt::Write as _,
    process::{Command, Stdio},
    time::Instant,
};

use memwatch_tests::{Running, bin, memwatch, nginx, tempdir};

fn rate(stdout: &str) -> f64 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("rate="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Runs a command and returns (stdout, user+system CPU seconds of it and its children).
fn run_timed(cmd: &mut Command) -> (String, f64) {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let output = child.wait_with_output().expect("wait");
    // SAFETY: getrusage on our own reaped children.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid out-pointer.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let cpu = ru.ru_utime.tv_sec as f64
        + ru.ru_utime.tv_usec as f64 / 1e6
        + ru.ru_stime.tv_sec as f64
        + ru.ru_stime.tv_usec as f64 / 1e6;
    (String::from_utf8_lossy(&output.stdout).into_owned(), cpu)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// wrk against `port` for `secs`; (requests per second, requests completed).
fn wrk(port: u16, secs: f64) -> (f64, f64) {
    let out = Command::new("wrk")
        .args(["-t2", "-c16", &format!("-d{}s", secs.max(1.0) as u64)])
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .expect("wrk (Debian package wrk)");
    let text = String::from_utf8_lossy(&out.stdout);
    let rate = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    // "  160021 requests in 3.00s, 36.63MB read"
    let total = text
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    (rate, total)
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// What one traced wrk run measured.
struct Traced {
    rate: f64,
    served: f64,
    events: f64,
    dropped: u64,
    recorded: f64,
    cpu: f64,
}

/// One wrk run against nginx with memwatch attached with `extra` options.
fn nginx_traced(
    server: &memwatch_tests::Server,
    dir: &std::path::Path,
    secs: f64,
    extra: &[&str],
) -> Traced {
    let file = dir.join("nginx.db");
    let _ = std::fs::remove_file(&file);
    let pid = server.pid().to_string();
    let mut args = vec!["record", "-p", &pid, "-o", file.to_str().expect("utf-8")];
    args.extend_from_slice(extra);
    let mut rec = Running::start(&args);
    rec.wait_recording(std::time::Duration::from_secs(60));
    let before = cpu_seconds(rec.child.id());
    let (rate, total) = wrk(server.port, secs);
    let cpu = cpu_seconds(rec.child.id()) - before;
    rec.signal(libc::SIGINT);
    let _ = rec.wait(std::time::Duration::from_secs(120));
    let report = Command::new(memwatch())
        .args(["report", file.to_str().expect("utf-8"), "--format", "json"])
        .output()
        .expect("report");
    let json: serde_json::Value = serde_json::from_slice(&report.stdout).expect("JSON");
    Traced {
        rate,
        served: total,
        events: json["events"].as_f64().unwrap_or(0.0),
        dropped: json["dropped_events"].as_u64().unwrap_or(0),
        recorded: json["requests"].as_f64().unwrap_or(0.0),
        cpu,
    }
}

/// nginx under wrk: untraced, memwatch with memory hooks only, and full memwatch, interleaved.
fn nginx_bench(rounds: usize, secs: f64, md: &mut String) {
    let dir = tempdir();
    let server = nginx(dir.path());
    let (mut base, mut full, mut mem_only) = (Vec::new(), Vec::new(), Vec::new());
    let (mut full_ratio, mut mem_ratio) = (Vec::new(), Vec::new());
    let (mut eps, mut cpu_pct, mut per_req_events) = (Vec::new(), Vec::new(), Vec::new());
    let mut drops = 0;
    let mut recorded = 0.0;
    let mut served = 0.0;
    for round in 0..rounds {
        let (b, _) = wrk(server.port, secs);
        let mem = nginx_traced(&server, dir.path(), secs, &["--no-net"]);
        let all = nginx_traced(&server, dir.path(), secs, &[]);
        let (m, t) = (mem.rate, all.rate);
        drops += mem.dropped + all.dropped;
        recorded += all.recorded;
        served += all.served;
        let window = secs.max(1.0).floor();
        eps.push(all.events / window);
        per_req_events.push(if all.recorded > 0.0 {
            all.events / all.recorded
        } else {
            0.0
        });
        cpu_pct.push(all.cpu / window * 100.0);
        eprintln!("nginx round {round}: untraced {b:.0}, memory-only {m:.0}, full {t:.0} req/s");
        base.push(b);
        full.push(t);
        mem_only.push(m);
        full_ratio.push(if b > 0.0 { t / b } else { 0.0 });
        mem_ratio.push(if b > 0.0 { m / b } else { 0.0 });
    }
    let spread = |v: &[f64]| {
        format!(
            "{:.3} to {:.3}",
            v.iter().copied().fold(f64::INFINITY, f64::min),
            v.iter().copied().fold(0.0, f64::max)
        )
    };
    let _ = writeln!(
        md,
        "\n## nginx (2 workers, static file, wrk -t2 -c16, loopback)\n"
    );
    let _ = writeln!(md, "| figure | value |\n|---|---|");
    let _ = writeln!(md, "| req/s untraced | {:.0} |", median(base));
    let _ = writeln!(
        md,
        "| req/s, memwatch memory hooks only (`--no-net`) | {:.0} |",
        median(mem_only)
    );
    let _ = writeln!(
        md,
        "| req/s, full memwatch (memory + faults + sockets) | {:.0} |",
        median(full)
    );
    let _ = writeln!(
        md,
        "| ratio memory-only / untraced (spread {}) | {:.3} |",
        spread(&mem_ratio),
        median(mem_ratio.clone())
    );
    let _ = writeln!(
        md,
        "| ratio full / untraced (spread {}) | {:.3} |",
        spread(&full_ratio),
        median(full_ratio.clone())
    );
    let _ = writeln!(md, "| events/s handled (full) | {:.0} |", median(eps));
    let _ = writeln!(md, "| events per request | {:.2} |", median(per_req_events));
    let _ = writeln!(
        md,
        "| memwatch user-space CPU during the load (% of one core) | {:.0} |",
        median(cpu_pct)
    );
    let _ = writeln!(md, "| events dropped (all rounds, both modes) | {drops} |");
    let _ = writeln!(
        md,
        "| requests recorded / served by wrk (full, all rounds) | {recorded:.0} / {served:.0} |"
    );
}

/// The corpus's elastic log, repeated into one file of at least `mb` MB.
fn big_log(dir: &std::path::Path, mb: usize) -> std::path::PathBuf {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/corpus/access-logs/elastic_apache_logs.log");
    let one = std::fs::read(&src).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the corpus must sit beside the checkout)",
            src.display()
        )
    });
    let mut all = Vec::with_capacity(mb * 1_000_000 + one.len());
    while all.len() < mb * 1_000_000 {
        all.extend_from_slice(&one);
    }
    let path = dir.join("big-access.log");
    std::fs::write(&path, &all).expect("write the big log");
    path
}

/// Access-log parsing: memwatch's parser against GoAccess on the same file, interleaved.
fn log_bench(rounds: usize, mb: usize, md: &mut String) {
    use memwatch::source::accesslog::{Format, LogParser};
    let dir = tempdir();
    let path = big_log(dir.path(), mb);
    let size = std::fs::metadata(&path).map_or(0, |m| m.len()) as f64 / 1e6;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let mut counts = (0u64, 0u64);
    for round in 0..rounds {
        let started = Instant::now();
        let data = std::fs::read(&path).expect("read the big log");
        let mut parser = LogParser::new(Format::named("combined").expect("built-in"));
        for line in data.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let _ = parser.parse(line);
        }
        let secs = started.elapsed().as_secs_f64();
        counts = (parser.counts().parsed, parser.counts().rejected_total());
        ours.push(size / secs);

        let started = Instant::now();
        let status = Command::new("goaccess")
            .arg(&path)
            .args(["--log-format=COMBINED", "--no-global-config", "-o"])
            .arg(dir.path().join("goaccess.json"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("goaccess (Debian package goaccess)");
        assert!(status.success(), "goaccess failed: {status}");
        theirs.push(size / started.elapsed().as_secs_f64());
        eprintln!(
            "log round {round}: memwatch {:.0} MB/s, goaccess {:.0} MB/s",
            ours[round], theirs[round]
        );
    }
    let (o, t) = (median(ours), median(theirs));
    let _ = writeln!(
        md,
        "\n## Access-log parsing ({size:.0} MB: the corpus's elastic log repeated)\n"
    );
    let _ = writeln!(md, "| figure | value |\n|---|---|");
    let _ = writeln!(md, "| memwatch parser, read + parse (MB/s) | {o:.0} |");
    let _ = writeln!(
        md,
        "| GoAccess 1.7 `--log-format=COMBINED -o report.json` (MB/s) | {t:.0} |"
    );
    let _ = writeln!(md, "| ratio memwatch / GoAccess | {:.1} |", o / t.max(1e-9));
    let _ = writeln!(
        md,
        "| lines parsed / rejected per pass | {} / {} |",
        counts.0, counts.1
    );
    let _ = writeln!(
        md,
        "\nGoAccess also builds its whole report; memwatch's figure is parsing alone, which is what \
         it does per line while recording (the join then scans a window of a few seconds)."
    );
}

/// A recording with `n` requests over 1000 s, written through memwatch's own writer.
fn big_recording(path: &std::path::Path, n: i64) {
    use memwatch::recording::{
        Row, Writer,
        writer::{RequestRow, check_output},
    };
    let start = 1_700_000_000_000_000_000i64;
    let span = 1_000_000_000_000i64;
    check_output(path, true).expect("output");
    let meta = [
        ("started_ns", start.to_string()),
        ("ended_ns", (start + span).to_string()),
    ];
    let writer = Writer::create(path, &meta).expect("writer");
    let routes = [
        "/",
        "/leak",
        "/churn",
        "/users/{id}",
        "/slow",
        "/static/*",
        "/api/items",
        "/login",
    ];
    let mut batch = Vec::new();
    for i in 0..n {
        let end = start + span * i / n;
        let route = routes[(i as usize * 7919) % routes.len()];
        batch.push(Row::Request(Box::new(RequestRow {
            id: i + 1,
            pid: 1,
            tid: 1 + (i % 16) as u32,
            conn: "1:1".into(),
            method: Some("GET".into()),
            target: Some(route.into()),
            route: Some(route.into()),
            status: Some(if i % 50 == 0 { 404 } else { 200 }),
            start_ns: end - 300_000,
            end_ns: end,
            vm_bytes: (i % 13) * 4096,
            rss_bytes: (i % 11) * 4096,
            exact: true,
            ..RequestRow::default()
        })));
        if i % 1000 == 0 {
            batch.push(Row::Sample {
                ts_ns: end,
                pid: 1,
                rss_bytes: (i * 64) as u64,
                vm_bytes: (i * 128) as u64,
                faults: 0,
            });
        }
        if batch.len() >= 50_000 {
            writer.send(std::mem::take(&mut batch));
        }
    }
    writer.send(batch);
    writer.finish().expect("finish");
}

/// `/api/endpoints` over a million requests, whole run and 1% of it; timeline point bounds.
fn api_bench(quick: bool, md: &mut String) {
    let dir = tempdir();
    let file = dir.path().join("million.db");
    let n = if quick { 20_000 } else { 1_000_000 };
    big_recording(&file, n);
    let mut view = Running::start(&[
        "view",
        file.to_str().expect("utf-8"),
        "--listen",
        "127.0.0.1:0",
    ]);
    let port = view.wait_page(std::time::Duration::from_secs(60));
    let start_ms = 1_700_000_000_000i64;
    let time = |path: &str| -> f64 {
        let mut runs = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let (status, _, _) = memwatch_tests::http(port, path, &[]);
            assert_eq!(status, 200, "{path}");
            runs.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        median(runs)
    };
    let full = time("/api/endpoints");
    let one = time(&format!(
        "/api/endpoints?from={}&to={}",
        start_ms + 500_000,
        start_ms + 510_000
    ));
    let tl = time("/api/timeline?points=1000");
    let mut max_points = 0;
    for points in [10, 100, 1000] {
        let (_, v) = memwatch_tests::http_json(port, &format!("/api/timeline?points={points}"));
        let n = v["rss"]["t"].as_array().map_or(0, Vec::len);
        assert!(n <= points, "timeline returned {n} > {points} points");
        max_points = max_points.max(n);
    }
    drop(view);
    let _ = writeln!(
        md,
        "\n## API over a recording of {n} requests (`memwatch view`, loopback, median of 5)\n"
    );
    let _ = writeln!(md, "| request | ms |\n|---|---|");
    let _ = writeln!(md, "| `/api/endpoints` (whole run) | {full:.1} |");
    let _ = writeln!(md, "| `/api/endpoints` (1% of the run) | {one:.1} |");
    let _ = writeln!(md, "| `/api/timeline?points=1000` | {tl:.1} |");
    let _ = writeln!(
        md,
        "\n`/api/timeline` returned at most `points` points per series for 10, 100 and 1000 (largest: {max_points})."
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    // `--only-api`: the API section alone, printed and not written (for working on the API).
    if std::env::args().any(|a| a == "--only-api") {
        let mut md = String::new();
        api_bench(quick, &mut md);
        print!("{md}");
        return;
    }
    let (rounds, secs) = if quick { (1, 0.5) } else { (5, 3.0) };
    let memchild = bin("memchild");
    let dir = tempdir();
    let mut base = Vec::new();
    let mut traced = Vec::new();
    let mut ratios = Vec::new();
    let mut events_per_s = Vec::new();
    let mut cpu_per_event_us = Vec::new();
    let mut drops = 0u64;
    for round in 0..rounds {
        let (out, cpu) = run_timed(Command::new(&memchild).args(["storm", &secs.to_string()]));
        let cpu_before = cpu;
        let b = rate(&out);
        let file = dir.path().join(format!("storm-{round}.db"));
        let started = Instant::now();
        let (out, cpu_after) = run_timed(Command::new(memwatch()).args([
            "record",
            "--no-net",
            "-o",
            file.to_str().expect("utf-8"),
            "--",
            memchild.to_str().expect("utf-8"),
            "storm",
            &secs.to_string(),
        ]));
        let wall = started.elapsed().as_secs_f64();
        let t = rate(&out);
        let report = Command::new(memwatch())
            .args(["report", file.to_str().expect("utf-8"), "--format", "json"])
            .output()
            .expect("report");
        let json: serde_json::Value = serde_json::from_slice(&report.stdout).expect("report JSON");
        let events = json["events"].as_f64().unwrap_or(0.0);
        drops += json["dropped_events"].as_u64().unwrap_or(0);
        // CPU of memwatch and its child together, minus what the child's own calls cost
        // untraced (secs of CPU for b*secs calls). What remains is memwatch's user space plus
        // the in-kernel probe cost, which the kernel charges to the traced child.
        let child_cpu = if b > 0.0 { t * secs / b } else { 0.0 };
        let memwatch_cpu = (cpu_after - cpu_before - child_cpu).max(0.0);
        base.push(b);
        traced.push(t);
        ratios.push(if b > 0.0 { t / b } else { 0.0 });
        events_per_s.push(events / wall.max(1e-3));
        cpu_per_event_us.push(if events > 0.0 {
            memwatch_cpu / events * 1e6
        } else {
            0.0
        });
        let _ = std::fs::remove_file(&file);
        eprintln!("round {round}: untraced {b:.0}/s, traced {t:.0}/s, {events:.0} events");
    }
    let mut md = String::new();
    let _ = writeln!(
        md,
        "## Allocation storm (mmap + munmap of 64 KiB in a tight loop)\n"
    );
    let _ = writeln!(
        md,
        "Command: `cargo xtask bench{}` ({rounds} interleaved round(s) of {secs} s; medians).\n",
        if quick { " --quick" } else { "" }
    );
    let _ = writeln!(md, "| figure | value |\n|---|---|");
    let _ = writeln!(
        md,
        "| child syscalls/s, untraced | {:.0} |",
        median(base.clone())
    );
    let _ = writeln!(
        md,
        "| child syscalls/s, under memwatch | {:.0} |",
        median(traced.clone())
    );
    let _ = writeln!(
        md,
        "| ratio traced / untraced | {:.3} |",
        median(ratios.clone())
    );
    let _ = writeln!(
        md,
        "| events/s recorded | {:.0} |",
        median(events_per_s.clone())
    );
    let _ = writeln!(md, "| events dropped (all rounds) | {drops} |");
    let _ = writeln!(
        md,
        "| memwatch CPU per event, user space + in-kernel probes (µs) | {:.2} |",
        median(cpu_per_event_us.clone())
    );
    let _ = writeln!(
        md,
        "\nSpread of the ratio: {:.3} to {:.3}.",
        ratios.iter().copied().fold(f64::INFINITY, f64::min),
        ratios.iter().copied().fold(0.0, f64::max)
    );
    nginx_bench(rounds, if quick { 1.0 } else { secs }, &mut md);
    log_bench(
        if quick { 1 } else { 3 },
        if quick { 5 } else { 200 },
        &mut md,
    );
    api_bench(quick, &mut md);
    print!("{md}");
    if !quick {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../BENCHMARKS.md");
        let machine = format!(
            "Machine: {} cores, kernel {}.\n\n",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
        );
        // Hand-written analysis below the marker survives regeneration.
        const MARKER: &str = "<!-- analysis: kept when the tables above are regenerated -->";
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        let notes = old
            .split_once(MARKER)
            .map_or_else(String::new, |(_, tail)| tail.to_owned());
        let doc = format!("# memwatch benchmarks\n\n{machine}{md}\n{MARKER}{notes}");
        std::fs::write(&path, doc).expect("write BENCHMARKS.md");
        eprintln!("wrote {}", path.display());
    }
}
