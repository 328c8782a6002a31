//! What a server's slowest requests wait for (the tax issue's latency goal): nginx at full
//! speed, untraced, under bpftrace and under memwatch, interleaved. bpftrace on
//! `sched:sched_switch` times each nginx thread from being switched out while still runnable to
//! running again, and charges the wait to the task that took its CPU: one of memwatch's threads,
//! a wrk thread, or anything else.

use std::{
    fmt::Write as _,
    process::{Command, Stdio},
};

use memwatch_tests::{nginx, tempdir};

use super::{Tracer, attach, detach, family, median, wrk_with};

/// Who took an nginx thread's CPU, as the script numbers them.
const WHO: [&str; 3] = ["memwatch", "wrk", "anything else"];

/// One measured window: per [`WHO`], waits over 1 ms and ms waited; and wrk's p99 (ms).
#[derive(Default)]
struct Waits {
    over_1ms: [f64; 3],
    waited_ms: [f64; 3],
    p99_ms: f64,
}

/// The threads of process `pid`.
fn threads(pid: u32) -> Vec<u32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The bpftrace script: nginx's threads are `servers`, memwatch's `memwatch` (none when
/// untraced); it exits after `secs` and prints its two maps keyed by [`WHO`]'s index.
fn script(servers: &[u32], memwatch: &[u32], secs: u64) -> String {
    let any = |tids: &[u32], field: &str| {
        if tids.is_empty() {
            "0".to_owned()
        } else {
            tids.iter()
                .map(|t| format!("args->{field} == {t}"))
                .collect::<Vec<_>>()
                .join(" || ")
        }
    };
    format!(
        "tracepoint:sched:sched_switch /args->prev_state == 0 && ({servers})/ {{\n\
         \x20 $who = 2; if (args->next_comm == \"wrk\") {{ $who = 1; }}\n\
         \x20 if ({memwatch}) {{ $who = 0; }}\n\
         \x20 @pre[args->prev_pid] = nsecs; @by[args->prev_pid] = $who; }}\n\
         tracepoint:sched:sched_switch /@pre[args->next_pid]/ {{\n\
         \x20 $d = (nsecs - @pre[args->next_pid]) / 1000; $w = @by[args->next_pid];\n\
         \x20 @waited_us[$w] = sum($d); if ($d > 1000) {{ @over1ms[$w] = count(); }}\n\
         \x20 delete(@pre[args->next_pid]); }}\n\
         interval:s:{secs} {{ print(@waited_us); print(@over1ms); clear(@waited_us); \
         clear(@over1ms); clear(@pre); clear(@by); exit(); }}\n",
        servers = any(servers, "prev_pid"),
        memwatch = any(memwatch, "next_pid"),
    )
}

/// `@name[i]: value` lines of bpftrace's output into `into[i]`, scaled. Only the first of each:
/// the maps fill again between the script's clear and its exit, and bpftrace prints them again.
fn parse(out: &str, name: &str, scale: f64, into: &mut [f64; 3]) {
    let mut seen = [false; 3];
    for line in out.lines() {
        let Some(rest) = line.strip_prefix(name).and_then(|r| r.strip_prefix('[')) else {
            continue;
        };
        let Some((i, v)) = rest.split_once("]:") else {
            continue;
        };
        if let (Ok(i), Ok(v)) = (i.trim().parse::<usize>(), v.trim().parse::<f64>())
            && let (Some(slot), Some(seen)) = (into.get_mut(i), seen.get_mut(i))
            && !*seen
        {
            *seen = true;
            *slot = v * scale;
        }
    }
}

/// One window of `secs` at full speed under `tracer`, after `warm` seconds of the same load.
fn measure(tracer: Tracer, pid: u32, port: u16, (warm, secs): (f64, u64)) -> Waits {
    let dir = tempdir();
    let nginx = family(pid);
    let a = attach(tracer, &nginx, dir.path());
    let _ = wrk_with(port, warm, None);
    let memwatch = a
        .memwatch
        .as_ref()
        .map_or_else(Vec::new, |(rec, _)| threads(rec.child.id()));
    let servers: Vec<u32> = nginx.into_iter().flat_map(threads).collect();
    let path = dir.path().join("waits.bt");
    std::fs::write(&path, script(&servers, &memwatch, secs)).expect("write the waits script");
    // The load runs a little longer than the window, on both sides of it.
    let load = std::thread::spawn(move || wrk_with(port, secs as f64 + 2.0, None));
    std::thread::sleep(std::time::Duration::from_millis(500));
    let out = Command::new("bpftrace")
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .expect("bpftrace (Debian package bpftrace)");
    let (_, _, latency) = load.join().expect("wrk");
    let _ = detach(a);
    let text = String::from_utf8_lossy(&out.stdout);
    // A script that failed (or crashed printing its maps) would read as a window with no
    // waits at all.
    assert!(
        out.status.success() && text.contains("Attaching"),
        "the waits script failed ({}); its output:\n{text}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut w = Waits {
        p99_ms: latency.p99,
        ..Waits::default()
    };
    parse(&text, "@waited_us", 1e-3, &mut w.waited_ms);
    parse(&text, "@over1ms", 1.0, &mut w.over_1ms);
    w
}

pub(crate) fn waits_bench(rounds: usize, secs: u64, md: &mut String) {
    let _ = writeln!(
        md,
        "## What nginx's slowest requests wait for\n\n\
         `target/release/bench --only-waits`: nginx 1.22 (2 workers, static file), wrk -t2 -c16; \
         {rounds} interleaved rounds, each row's window {secs} s of full speed after 3 s under \
         its tracer. bpftrace on `sched:sched_switch` times each nginx thread from being \
         switched out while runnable to running again, charged to the task that took its CPU. \
         Medians [spread] over the rounds."
    );
    let tracers = [Tracer::None, Tracer::Bpftrace, Tracer::Memwatch];
    let dir = tempdir();
    let server = nginx(dir.path());
    let (pid, port) = (server.pid(), server.port);
    let _ = wrk_with(port, 3.0, None);
    let mut got: Vec<Vec<Waits>> = tracers.iter().map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        for (t, tracer) in tracers.iter().enumerate() {
            got[t].push(measure(*tracer, pid, port, (3.0, secs)));
        }
    }
    // Median [spread] with `places` decimals.
    let cell = |v: Vec<f64>, places: usize| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(0.0, f64::max);
        format!("{:.places$} [{lo:.places$}–{hi:.places$}]", median(v))
    };
    let _ = writeln!(
        md,
        "\n| tracer | p99 ms | waits over 1 ms behind {m} | behind {w} | behind {o} | \
         ms waited behind {m} | behind {w} | behind {o} |\n|---|---|---|---|---|---|---|---|",
        m = WHO[0],
        w = WHO[1],
        o = WHO[2],
    );
    for (t, tracer) in tracers.iter().enumerate() {
        let rows = &got[t];
        let col = |f: &dyn Fn(&Waits) -> f64| cell(rows.iter().map(f).collect(), 0);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            tracer.name(),
            cell(rows.iter().map(|w| w.p99_ms).collect(), 2),
            col(&|w| w.over_1ms[0]),
            col(&|w| w.over_1ms[1]),
            col(&|w| w.over_1ms[2]),
            col(&|w| w.waited_ms[0]),
            col(&|w| w.waited_ms[1]),
            col(&|w| w.waited_ms[2]),
        );
    }
    drop(server);
}
