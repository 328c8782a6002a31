//! The collector probes at full speed (issues 26 and 30): servers whose regression rests on a
//! probe on their collector (V8's sweep in Node.js, Ruby's `gc__mark__begin`), driven as fast
//! as wrk can with a mix that makes garbage, untraced and under memwatch with default flags,
//! interleaved. A collector probe fires once per collection, so its own cost is its hits a
//! second times what a hit costs; the table's throughput ratio is all of memwatch's.

use std::fmt::Write as _;

use memwatch_tests::runtimes::Runtime;

use super::{RuntimeSecs, Tracer, compare_warmed_mix, median, table, wrk_with};

/// The wrk script of the mix: `/` and a churn of 256 KiB, alternating.
fn churn_mix(dir: &std::path::Path) -> std::path::PathBuf {
    let script = dir.join("churn.lua");
    std::fs::write(
        &script,
        "local paths = {'/', '/churn?kb=256'}\nlocal i = 0\nrequest = function()\n  \
         i = i + 1\n  return wrk.format('GET', paths[(i % #paths) + 1])\nend\n",
    )
    .expect("write the wrk script");
    script
}

pub(crate) fn collectors_bench(rounds: usize, t: &RuntimeSecs, md: &mut String) {
    let RuntimeSecs { jit, warm, secs } = *t;
    let dir = memwatch_tests::tempdir();
    let script = churn_mix(dir.path());
    let _ = writeln!(
        md,
        "\n## The collector probes at full speed (issues 26 and 30)\n\n\
         `cargo xtask bench` (or `target/release/bench --only-collectors` for this section). \
         The runtime tests' Node.js servers (plain, and with async handlers that await 5 ms \
         twice, which bounds their rate) and their puma server, each on its own, driven by wrk -t2 -c16 as fast as it answers with `/` and `/churn?kb=256` \
         alternating, so that the collector runs often. Each server first gets {jit} s of the \
         same load; each round then measures every row for {secs} s after {warm} s of load. \
         memwatch records `-p PID` with default flags, which now include a probe on the \
         collector: V8's `ArrayBufferSweeper::Finalize()` in Node.js, `ruby:gc__mark__begin` \
         in Ruby (behind its semaphore). Such a probe fires once per collection; the line \
         under each table gives its hits a second and, at what a heap probe's hit was \
         measured to cost at memwatch's start, its share of a core. The throughput ratio is \
         all of memwatch's cost, of which the collector probe is that share."
    );
    for (runtime, title) in [
        (
            Runtime::Node,
            "Node.js 20 `http`, `/` and `/churn?kb=256` (wrk -t2 -c16)",
        ),
        (
            Runtime::NodeAsync,
            "Node.js 20 `http`, async handlers, `/` and `/churn?kb=256` (wrk -t2 -c16)",
        ),
        (
            Runtime::Puma,
            "Rack under puma 5 (4 threads), Ruby 3.1, `/` and `/churn?kb=256` (wrk -t2 -c16)",
        ),
    ] {
        let server = runtime.start(memwatch_tests::free_port());
        let (pid, port) = (server.pid(), server.port);
        let (jit_rate, _, _) = wrk_with(port, jit, Some(&script));
        eprintln!(
            "{}: {jit_rate:.0} req/s over its {jit} s warm-up",
            runtime.name()
        );
        let (base, rows) = compare_warmed_mix(
            &[Tracer::None, Tracer::Memwatch],
            rounds,
            &|| vec![pid],
            (port, Some(&script)),
            (warm, secs),
        );
        table(title, "req/s", base, &rows, md);
        if let Some(r) = rows.iter().find(|r| r.tracer == Tracer::Memwatch) {
            let per_s = median(r.stats.iter().map(|s| s.collections).collect()) / r.window_s;
            let hit_ns = median(r.stats.iter().map(|s| s.hit_ns).collect());
            let _ = writeln!(
                md,
                "\nThe collector probe: {per_s:.1} hits a second (one a collection), at \
                 {hit_ns:.0} ns a hit: {:.4}% of a core.",
                per_s * hit_ns / 1e9 * 100.0
            );
        }
        drop(server);
    }
}
