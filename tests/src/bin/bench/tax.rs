//! Where memwatch's own time goes (the tax issue): one recording per workload at full speed with
//! default flags and `--bpf-stats`, and what memwatch says it spent, by stage and by BPF program;
//! with `perf` installed, a profile of memwatch itself, its costliest functions first.

use std::{fmt::Write as _, process::Command, time::Duration};

use memwatch_tests::{Running, bin, nginx, tempdir};
use serde_json::Value;

use super::{Tracer, cpu_seconds, demo_mix, family, full_speed, report_json, wrk_with};

/// What one recording at full speed said it cost.
struct Spent {
    title: &'static str,
    rate: f64,
    duration_s: f64,
    events: f64,
    /// memwatch's CPU seconds over the measured `secs` (from /proc).
    cpu_s: f64,
    secs: f64,
    own: Value,
    perf: Option<String>,
}

/// Records `pids` for `warm + secs` seconds of `load`, with a `perf` profile of memwatch over the
/// last `secs` when `perf` is installed.
fn record(title: &'static str, pids: &[u32], secs: f64, load: &mut dyn FnMut(f64) -> f64) -> Spent {
    let dir = tempdir();
    let file = dir.path().join("tax.db");
    let mut args = vec![
        "record".to_owned(),
        "-o".into(),
        file.display().to_string(),
        "--bpf-stats".into(),
    ];
    for pid in pids {
        args.extend(["-p".into(), pid.to_string()]);
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut rec = Running::start(&refs);
    rec.wait_recording(Duration::from_secs(60));
    let mw = rec.child.id();
    // The heap budget's first window, and the load's own start, are transients.
    load(2.0);
    let data = dir.path().join("perf.data");
    let perf = Command::new("perf")
        .args([
            "record",
            "-q",
            "-e",
            "cpu-clock",
            "-g",
            "-p",
            &mw.to_string(),
            "-o",
        ])
        .arg(&data)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok();
    let cpu_before = cpu_seconds(mw);
    let rate = load(secs);
    let cpu_s = cpu_seconds(mw) - cpu_before;
    let perf = perf.and_then(|child| {
        // SAFETY: signalling our own child; perf writes its file on SIGINT.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        child.wait_with_output().ok()?;
        let out = Command::new("perf")
            .args([
                "report",
                "--stdio",
                "--no-children",
                "--sort",
                "symbol",
                "--percent-limit",
                "2",
                "-g",
                "none",
                "-q",
                "-i",
            ])
            .arg(&data)
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        // "    12.40%  [.] sqlite3VdbeExec    -    -": the share, where, and the symbol.
        let top: Vec<String> = text
            .lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                let (share, at) = (words.next()?, words.next()?);
                let symbol: Vec<&str> = words.take_while(|w| *w != "-").collect();
                (!symbol.is_empty()).then(|| format!("{share:>7} {at} {}", symbol.join(" ")))
            })
            .take(15)
            .collect();
        (!top.is_empty()).then(|| top.join("\n"))
    });
    rec.signal(libc::SIGINT);
    let _ = rec.wait(Duration::from_secs(120));
    memwatch_tests::wait_detached();
    let json = report_json(&file);
    Spent {
        title,
        rate,
        duration_s: json["duration_s"].as_f64().unwrap_or(0.0),
        events: json["events"].as_f64().unwrap_or(0.0),
        cpu_s,
        secs,
        own: json["memwatch"].clone(),
        perf,
    }
}

/// The section: nginx at full speed, and (unless `quick`) the demo's mix.
pub(crate) fn tax_bench(secs: f64, quick: bool, md: &mut String) {
    let _ = writeln!(
        md,
        "## Where memwatch's own time goes\n\n\
         `cargo xtask bench` (or `target/release/bench --only-tax` for this section). One \
         recording per workload at full speed with default flags and `--bpf-stats`, {secs:.0} s \
         measured after 2 s of the same load; the figures are what memwatch wrote into the \
         recording (its CPU by stage, by the event loop's and the writer's thread clocks; what \
         the ring buffer carried; each BPF program's runs and run time from the kernel's BPF \
         statistics, which add a clock read to each run). Shares are of one core over the \
         whole recording.\n"
    );
    let dir = tempdir();
    let server = nginx(dir.path());
    let (pid, port) = (server.pid(), server.port);
    let mut spent = vec![record(
        "nginx 1.22, 2 workers, static file (wrk -t2 -c16)",
        &family(pid),
        secs,
        &mut |s| wrk_with(port, s, None).0,
    )];
    drop(server);
    if !quick {
        let demo = memwatch_tests::start_server(Command::new(bin("memwatch-demo")).arg("--quiet"));
        let script = demo_mix(dir.path());
        let (dpid, dport) = (demo.pid(), demo.port);
        spent.push(record(
            "memwatch-demo, mix of /, /churn and /leak (wrk -t2 -c16)",
            &[dpid],
            secs,
            &mut |s| wrk_with(dport, s, Some(&script)).0,
        ));
    }
    for s in &spent {
        write_spent(s, md);
    }
}

fn write_spent(s: &Spent, md: &mut String) {
    let d = s.duration_s.max(1e-3);
    let cpu = &s.own["cpu"];
    let us = |key: &str| cpu[key].as_f64().unwrap_or(0.0);
    let share = |v: f64| format!("{:.1}%", v / 1e4 / d);
    let _ = writeln!(
        md,
        "### {}\n\n{:.0} req/s traced; {:.0} events/s over {:.1} s; memwatch's CPU while \
         measured: {:.1}% of a core (/proc).\n\n\
         | stage | share of a core |\n|---|---|\n\
         | reading and decoding the ring buffer | {} |\n\
         | handing each event on (correlating) | {} |\n\
         | handing rows to the writer | {} |\n\
         | the writer thread (inserts, commits) | {} |\n\
         | everything else (samples, heap budget, page, runtime) | {} |\n\
         | **all of memwatch** | **{}** |\n\n\
         Ring buffer: {:.1} MB/s read in {:.0} drains/s, {:.0} of them woken by the kernel \
         side.\n",
        s.title,
        s.rate,
        s.events / d,
        d,
        s.cpu_s * 100.0 / s.secs.max(1e-3),
        share(us("decode_us")),
        share(us("correlate_us")),
        share(us("flush_us")),
        share(us("write_us")),
        share(
            (us("total_us")
                - us("decode_us")
                - us("correlate_us")
                - us("flush_us")
                - us("write_us"))
            .max(0.0)
        ),
        share(us("total_us")),
        us("ring_bytes") / 1e6 / d,
        us("ring_drains") / d,
        us("ring_wakeups") / d,
    );
    let programs = s.own["bpf_programs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !programs.is_empty() {
        let _ = writeln!(
            md,
            "| BPF program | runs/s | mean ns per run | share of a core |\n|---|---|---|---|"
        );
        for p in programs
            .iter()
            .filter(|p| p["runs"].as_f64().unwrap_or(0.0) > 0.0)
        {
            let runs = p["runs"].as_f64().unwrap_or(0.0);
            let ns = p["run_ns"].as_f64().unwrap_or(0.0);
            let _ = writeln!(
                md,
                "| `{}` | {:.0} | {:.0} | {:.1}% |",
                p["name"].as_str().unwrap_or("?"),
                runs / d,
                ns / runs.max(1.0),
                ns / 1e7 / d
            );
        }
        let _ = writeln!(md);
    }
    if let Some(perf) = &s.perf {
        let _ = writeln!(
            md,
            "memwatch's own costliest functions while measured (`perf record -e cpu-clock -g -p \
             MEMWATCH`, then `perf report --no-children --sort symbol`):\n\n```\n{perf}\n```\n"
        );
    }
}

/// The tax's acceptance figures alone: nginx and the demo's mix at full speed, untraced,
/// under memwatch with default flags and under bpftrace counting the same tracepoints,
/// interleaved round by round; throughput and p99 latency as ratios to untraced.
pub(crate) fn ratio_bench(rounds: usize, secs: f64, md: &mut String) {
    let _ = writeln!(
        md,
        "## The tax's ratios: memwatch beside bpftrace at full speed\n\n\
         `target/release/bench --only-ratios`: {rounds} interleaved rounds; each row measured \
         for {secs:.0} s after {secs:.0} s of the same load under its tracer."
    );
    let tracers = [
        Tracer::None,
        Tracer::Memwatch,
        Tracer::MemwatchNoHeap,
        Tracer::Bpftrace,
    ];
    let dir = tempdir();
    let server = nginx(dir.path());
    let (pid, port) = (server.pid(), server.port);
    full_speed(
        &tracers,
        rounds,
        secs,
        (&|| family(pid), port, None),
        "nginx 1.22, 2 workers, static file (wrk -t2 -c16)",
        md,
    );
    drop(server);
    let demo = memwatch_tests::start_server(Command::new(bin("memwatch-demo")).arg("--quiet"));
    let script = demo_mix(dir.path());
    let dpid = demo.pid();
    full_speed(
        &tracers,
        rounds,
        secs,
        (&|| vec![dpid], demo.port, Some(&script)),
        "memwatch-demo, mix of /, /churn and /leak (wrk -t2 -c16)",
        md,
    );
}
