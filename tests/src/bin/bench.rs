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

/// wrk against `port` for `secs`; requests per second.
fn wrk(port: u16, secs: f64) -> f64 {
    let out = Command::new("wrk")
        .args(["-t2", "-c16", &format!("-d{}s", secs.max(1.0) as u64)])
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .expect("wrk (Debian package wrk)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// nginx under wrk, untraced and with memwatch attached to its master, interleaved.
fn nginx_bench(rounds: usize, secs: f64, md: &mut String) {
    let dir = tempdir();
    let server = nginx(dir.path());
    let mut ratios = Vec::new();
    let (mut base, mut traced, mut eps) = (Vec::new(), Vec::new(), Vec::new());
    let mut drops = 0;
    let mut requests = 0.0;
    for round in 0..rounds {
        let b = wrk(server.port, secs);
        let file = dir.path().join(format!("nginx-{round}.db"));
        let pid = server.pid().to_string();
        let mut rec = Running::start(&["record", "-p", &pid, "-o", file.to_str().expect("utf-8")]);
        rec.wait_recording(std::time::Duration::from_secs(60));
        let t = wrk(server.port, secs);
        rec.signal(libc::SIGINT);
        let _ = rec.wait(std::time::Duration::from_secs(120));
        let report = Command::new(memwatch())
            .args(["report", file.to_str().expect("utf-8"), "--format", "json"])
            .output()
            .expect("report");
        let json: serde_json::Value = serde_json::from_slice(&report.stdout).expect("JSON");
        drops += json["dropped_events"].as_u64().unwrap_or(0);
        requests = json["requests"].as_f64().unwrap_or(0.0);
        eps.push(json["events"].as_f64().unwrap_or(0.0) / secs.max(1.0).floor());
        let _ = std::fs::remove_file(&file);
        eprintln!("nginx round {round}: untraced {b:.0} req/s, traced {t:.0} req/s");
        base.push(b);
        traced.push(t);
        ratios.push(if b > 0.0 { t / b } else { 0.0 });
    }
    let _ = writeln!(
        md,
        "\n## nginx (2 workers, static file, wrk -t2 -c16, loopback)\n"
    );
    let _ = writeln!(md, "| figure | value |\n|---|---|");
    let _ = writeln!(md, "| req/s untraced | {:.0} |", median(base));
    let _ = writeln!(
        md,
        "| req/s with memwatch attached (memory + faults + sockets) | {:.0} |",
        median(traced)
    );
    let _ = writeln!(
        md,
        "| ratio traced / untraced | {:.3} |",
        median(ratios.clone())
    );
    let _ = writeln!(md, "| events/s handled (approx.) | {:.0} |", median(eps));
    let _ = writeln!(md, "| events dropped (all rounds) | {drops} |");
    let _ = writeln!(
        md,
        "| requests recorded in the last round | {requests:.0} |"
    );
    let _ = writeln!(
        md,
        "\nSpread of the ratio: {:.3} to {:.3}.",
        ratios.iter().copied().fold(f64::INFINITY, f64::min),
        ratios.iter().copied().fold(0.0, f64::max)
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
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
        let doc = format!("# memwatch benchmarks\n\n{machine}{md}");
        std::fs::write(&path, doc).expect("write BENCHMARKS.md");
        eprintln!("wrote {}", path.display());
    }
}
