//! Issue: right by default. Real runtimes as an operator meets them, recorded with default
//! flags: each server is started, warmed with every route, then attached to with `-p` while a
//! seeded random interleaving of `/leak` (keeps 256 KiB per request), `/churn` (allocates and
//! drops 2 MiB) and `/` runs at -c1 and -c8. The leak ranks first, keeps 256 KiB per request
//! within 15%, the churn keeps under 5% of what it allocates, and every request is counted.
//! Routes run in blocks on a cold server hide how allocators reuse freed memory; these do not.
//!
//! One more at the target's maximum rate, where following every heap call would cost more
//! than the heap budget: the leak still ranks first, and the figures say they are sampled.

use std::time::Duration;

use memwatch_tests::{
    Value, endpoint, int, report,
    runtimes::Runtime,
    start_recording, stop_recording,
    workload::{drive, interleaved},
};

const KIB: i64 = 1024;
const PATHS: [&str; 3] = ["/leak?kb=256", "/churn?kb=2048", "/"];
/// Requests per route while recording.
const N: usize = 150;
/// Requests a second, all clients together: a busy server, within the heap budget.
const RATE: f64 = 300.0;
const SEED: u64 = 0x6d65_6d77;

/// Warms `rt`'s server with every route, records it with default flags while `n` requests of
/// each route run interleaved from `clients` clients (at `rate`, or as fast as it answers), and
/// returns the report.
fn record(rt: Runtime, port: u16, clients: usize, n: usize, rate: Option<f64>) -> Value {
    record_with(rt, port, clients, n, rate, &[]).0
}

/// [`record`] with more `memwatch record` options; also returns the recording (and the
/// directory holding it).
fn record_with(
    rt: Runtime,
    port: u16,
    clients: usize,
    n: usize,
    rate: Option<f64>,
    options: &[&str],
) -> (Value, tempfile::TempDir, std::path::PathBuf) {
    let server = rt.start(port);
    let warm = drive(port, &interleaved(&PATHS, 30, SEED ^ 1), 4, None);
    assert_eq!(warm.ok, warm.requests, "{}: warming", rt.name());
    let (dir, out, rec) = start_recording(server.pid(), options);
    let sent = drive(port, &interleaved(&PATHS, n, SEED), clients, rate);
    assert_eq!(sent.ok, sent.requests, "{}: {sent:?}", rt.name());
    // Let a deferred free or a collection happen inside the recording.
    std::thread::sleep(Duration::from_millis(600));
    stop_recording(rec);
    (report(&out), dir, out)
}

/// The acceptance on `r`: the leak first and within 15% of 256 KiB per request, the churn
/// under 5% of the 2 MiB it allocates, every request counted, nothing dropped.
/// What every runtime test asks: `/leak` ranks first with its kept per request within
/// `within_pct`% of the 256 KiB the app keeps, `/churn` keeps under `churn_pct`% of the 2 MiB it
/// allocates, every route's `n` requests are counted, and no event was dropped.
fn leak_ranks_first(name: &str, r: &Value, n: usize, within_pct: i64, churn_pct: i64) {
    let routes: Vec<&str> = r["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["route"].as_str().unwrap())
        .collect();
    assert_eq!(routes[0], "/leak", "{name}: {:#}", r["endpoints"]);
    let leak = endpoint(r, "GET", "/leak");
    let kept = int(leak, "kept_per_request_bytes");
    assert!(
        (kept - 256 * KIB).abs() <= 256 * KIB * within_pct / 100,
        "{name}: /leak keeps {kept} B per request, the truth is 256 KiB (within {within_pct}%): \
         {leak:#}"
    );
    let churn = endpoint(r, "GET", "/churn");
    let churn_kept = int(churn, "kept_per_request_bytes");
    assert!(
        churn_kept * 100 < 2048 * KIB * churn_pct,
        "{name}: /churn keeps {churn_kept} B per request of the 2 MiB it allocates (under \
         {churn_pct}%): {churn:#}"
    );
    assert_eq!(r["dropped_events"], 0, "{name}: {:#}", r["lost"]);
    let counts: Vec<(&str, &Value)> = r["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["route"].as_str().unwrap(), &e["requests"]))
        .collect();
    for route in ["/leak", "/churn", "/"] {
        let e = endpoint(r, "GET", route);
        // Where a request went missing, say what else was counted: every route, what was
        // not HTTP, and what was lost.
        assert_eq!(
            e["requests"], n,
            "{name}: {route}: {e:#}\nall routes: {counts:?}\nnot HTTP: {}\nlost: {}",
            r["non_http"], r["lost"]
        );
    }
}

fn leak_first_and_right(name: &str, r: &Value, n: usize) {
    leak_ranks_first(name, r, n, 15, 5);
    assert_eq!(endpoint(r, "GET", "/leak")["retention"], "keeps", "{name}");
    assert_eq!(r["requests"], 3 * n, "{name}");
    let heap = &r["retained"]["heap"];
    assert_eq!(heap["followed"], true, "{name}: {heap:#}");
    assert_eq!(heap["processes_not_followed"], 0, "{name}: {heap:#}");
    assert_eq!(heap["runtimes_not_followed"], 0, "{name}: {heap:#}");
}

/// The figures each test measured, for the record (`--nocapture` shows them).
fn say(name: &str, r: &Value) {
    let kept = |route: &str| int(endpoint(r, "GET", route), "kept_per_request_bytes");
    let heap = &r["retained"]["heap"];
    eprintln!(
        "{name}: /leak keeps {:.1} KiB per request, /churn {:.1} KiB; probes on {:.3} of the \
         time, cost {:.4} of a core",
        kept("/leak") as f64 / 1024.0,
        kept("/churn") as f64 / 1024.0,
        heap["on_fraction"].as_f64().unwrap_or(0.0),
        heap["cost_share"].as_f64().unwrap_or(0.0),
    );
    let regression = &r["retained"]["regression"];
    if regression.is_object() {
        // A bound the fit could not give (routes too collinear) is null in the JSON.
        let kib = |route: &str, field: &str| {
            endpoint(r, "GET", route)["regression"][field]
                .as_i64()
                .map_or_else(
                    || "none".to_owned(),
                    |b| format!("{:.1}", b as f64 / 1024.0),
                )
        };
        let by = |route: &str| {
            format!(
                "{} KiB ({} to {})",
                kib(route, "kept_per_request_bytes"),
                kib(route, "kept_per_request_low_bytes"),
                kib(route, "kept_per_request_high_bytes")
            )
        };
        eprintln!(
            "{name}: by regression on {} over {} intervals (R² {}, collinear: {}): /leak {}, \
             /churn {}",
            regression["signal"],
            regression["intervals"],
            regression["explained"],
            regression["collinear"],
            by("/leak"),
            by("/churn"),
        );
    }
}

/// At a busy server's pace, within the budget: the heap is followed throughout, and nothing
/// is sampled.
fn default_flags(rt: Runtime, port: u16, clients: usize) {
    let name = format!("{} c{clients}", rt.name());
    let r = record(rt, port, clients, N, Some(RATE));
    say(&name, &r);
    leak_first_and_right(&name, &r, N);
    let heap = &r["retained"]["heap"];
    assert_eq!(heap["on_fraction"], 1.0, "{name}: {heap:#}");
    assert!(heap["sampling"].is_null(), "{name}: {heap:#}");
    assert!(
        heap["cost_share"].as_f64().unwrap() < heap["budget_share"].as_f64().unwrap(),
        "{name}: {heap:#}"
    );
}

#[test]
fn gunicorn_sync_c1() {
    default_flags(Runtime::GunicornSync, 18_501, 1);
}

#[test]
fn gunicorn_sync_c8() {
    default_flags(Runtime::GunicornSync, 18_502, 8);
}

#[test]
fn gunicorn_gthread_c1() {
    default_flags(Runtime::GunicornGthread, 18_503, 1);
}

#[test]
fn gunicorn_gthread_c8() {
    default_flags(Runtime::GunicornGthread, 18_504, 8);
}

#[test]
fn node_c1() {
    default_flags(Runtime::Node, 18_505, 1);
}

#[test]
fn node_c8() {
    default_flags(Runtime::Node, 18_506, 8);
}

#[test]
fn go_c1() {
    default_flags(Runtime::Go, 18_507, 1);
}

#[test]
fn go_c8() {
    default_flags(Runtime::Go, 18_508, 8);
}

#[test]
fn puma_c1() {
    default_flags(Runtime::Puma, 18_509, 1);
}

#[test]
fn puma_c8() {
    default_flags(Runtime::Puma, 18_510, 8);
}

/// Requests per route on the JVM: its figures come from the live heap after each collection,
/// and G1 collects about once per 80 of these requests; 800 of each give about 30 intervals.
const JVM_N: usize = 800;

/// HotSpot, default flags: a Java object is seen by neither page faults nor the heap probes,
/// so each route's kept per request is the regression on the live heap the JVM reports after
/// each collection, and the report says so.
fn jvm(port: u16, clients: usize) {
    let name = format!("jvm c{clients}");
    let r = record(Runtime::Jvm, port, clients, JVM_N, Some(RATE));
    say(&name, &r);
    leak_first_and_right(&name, &r, JVM_N);
    let regression = &r["retained"]["regression"];
    assert_eq!(regression["signal"], "live_heap", "{name}: {regression:#}");
    assert_eq!(regression["primary"], true, "{name}: {regression:#}");
    assert!(int(regression, "intervals") >= 5, "{name}: {regression:#}");
    for route in ["/leak", "/churn", "/"] {
        let e = endpoint(&r, "GET", route);
        assert_eq!(e["kept_from"], "regression", "{name}: {route}: {e:#}");
        assert_eq!(
            e["kept_per_request_bytes"], e["regression"]["kept_per_request_bytes"],
            "{name}: {route}: {e:#}"
        );
    }
}

#[test]
fn jvm_c1() {
    jvm(18_519, 1);
}

#[test]
fn jvm_c8() {
    jvm(18_520, 8);
}

/// Requests per route on the event-loop servers: at -c8 their figures come from the regression
/// on the followed heap, sampled every 100 ms; 800 of each give about 90 intervals.
const SHARED_N: usize = 800;

/// Issue: requests that share a thread. Event-loop servers whose handlers await before and
/// after they allocate, default flags: the leak first, within 15% at -c1 (one request at a
/// time: the origin is exact) and 25% at -c8 (eight in flight on one thread: the regression on
/// the followed heap), the churn under 10% of the 2 MiB it allocates, and the report names the
/// estimate each route's figure comes from.
fn shared_thread(rt: Runtime, port: u16, clients: usize) {
    let name = format!("{} c{clients}", rt.name());
    let r = record(rt, port, clients, SHARED_N, Some(RATE));
    say(&name, &r);
    // The event-loop issue's bounds: within 15% at -c1, 25% with requests in flight together,
    // and the churn under 10%.
    let within = if clients == 1 { 15 } else { 25 };
    leak_ranks_first(&name, &r, SHARED_N, within, 10);
    // Python's heap is sampled as it goes; Node.js's is read when V8 has swept its dead buffers.
    let signal = match rt {
        Runtime::NodeAsync => "swept_heap",
        _ => "heap",
    };
    assert_eq!(
        r["retained"]["regression"]["signal"], signal,
        "{name}: {:#}",
        r["retained"]["regression"]
    );
    // Neither signal holds the buffers of requests in flight: Python's heap is read as it had
    // settled a second before, Node.js's as what one sweep held and the next still did. The
    // churn's 2 MiB is never in them, and the fit explains nearly all the rest (0.91 to 1.0
    // measured; read as they stood, they explained 0.62 to 0.79 at -c8).
    let explained = r["retained"]["regression"]["explained"].as_f64().unwrap();
    assert!(
        explained >= 0.85,
        "{name}: {:#}",
        r["retained"]["regression"]
    );
    for route in ["/leak", "/churn", "/"] {
        let e = endpoint(&r, "GET", route);
        // The estimate is named, and it is the regression where the requests shared the
        // thread.
        let shared = int(e, "approximate") * 2 > SHARED_N as i64;
        let from = if shared { "regression" } else { "origin" };
        assert_eq!(e["kept_from"], from, "{name}: {route}: {e:#}");
    }
}

#[test]
fn uvicorn_c1() {
    shared_thread(Runtime::Uvicorn, 18_515, 1);
}

#[test]
fn uvicorn_c8() {
    shared_thread(Runtime::Uvicorn, 18_516, 8);
}

#[test]
fn node_async_c1() {
    shared_thread(Runtime::NodeAsync, 18_517, 1);
}

/// Eight in flight on Node.js's one thread: the buffers its requests drop wait for V8's
/// collector, so the followed heap is read only when V8 has freed a collection's dead buffers,
/// and the regression on it is each shared route's figure.
#[test]
fn node_async_c8() {
    shared_thread(Runtime::NodeAsync, 18_518, 8);
}

/// The second estimate beside an exact origin, on a runtime with a signal at its collections:
/// recorded like the runtime tests at -c1, with 800 requests per route (collections come every
/// few dozen requests), the regression on one of `signals` also names the leak first, lands within 25%
/// of it, and keeps the churn under a quarter of that, while the origin stays each route's
/// figure.
fn second_estimate_agrees(rt: Runtime, port: u16, signals: &[&str]) -> Value {
    let name = format!("{} regression", rt.name());
    let r = record(rt, port, 1, JVM_N, Some(RATE));
    say(&name, &r);
    leak_first_and_right(&name, &r, JVM_N);
    let regression = &r["retained"]["regression"];
    assert!(
        signals.iter().any(|s| regression["signal"] == *s),
        "{name}: {regression:#}"
    );
    assert_eq!(regression["primary"], false, "{name}: {regression:#}");
    let leak = endpoint(&r, "GET", "/leak");
    assert_eq!(leak["kept_from"], "origin", "{leak:#}");
    let by_regression = int(&leak["regression"], "kept_per_request_bytes");
    assert!(
        (by_regression - 256 * KIB).abs() <= 256 * KIB / 4,
        "{name}: the regression says /leak keeps {by_regression} B per request: {leak:#}"
    );
    let churn = int(
        &endpoint(&r, "GET", "/churn")["regression"],
        "kept_per_request_bytes",
    );
    assert!(
        churn < by_regression / 4,
        "{name}: /churn by regression {churn}: {r:#}"
    );
    r
}

/// Go: what each cycle kept of the spans the heap probes follow, by marking epoch, or the live
/// heap the runtime reports at each mark termination, whichever the fit explains better.
#[test]
fn go_kept_spans_regression_agrees() {
    let r = second_estimate_agrees(Runtime::Go, 18_514, &["kept_spans", "live_heap"]);
    // A Go program that links no profiler samples nothing: its spans are followed instead,
    // and the report says so.
    let heap = &r["retained"]["heap"];
    assert_eq!(heap["go_spans"], true, "{heap:#}");
    assert!(heap["go_samples"].is_null(), "{heap:#}");
    assert!(
        r["retained"]["sampled_heap"].is_null(),
        "{:#}",
        r["retained"]
    );
}

/// Go with a memory profiler linked (`net/http/pprof`), default flags: its runtime samples one
/// allocation in about 512 KiB, and each route's kept per request is what its requests kept of
/// those samples, each weighed by what it stands for (`kept_from: sampled_heap`). The sampled
/// figure is the origin's count of a random draw: with 800 requests per route, about 250 of
/// the leak's judged requests are sampled, so it lands within 15% by about three standard
/// deviations.
fn go_sampled_heap(port: u16, clients: usize) {
    let name = format!("go sampled heap c{clients}");
    let (r, _dir, out) = record_with(Runtime::GoPprof, port, clients, JVM_N, Some(RATE), &[]);
    say(&name, &r);
    leak_first_and_right(&name, &r, JVM_N);
    let heap = &r["retained"]["heap"];
    assert_eq!(heap["go_spans"], false, "{name}: no span probes: {heap:#}");
    assert!(int(&heap["go_samples"], "samples") > 0, "{name}: {heap:#}");
    let sampled = &r["retained"]["sampled_heap"];
    assert_eq!(int(sampled, "processes"), 1, "{name}: {sampled:#}");
    assert_eq!(int(sampled, "processes_unjudged"), 0, "{name}: {sampled:#}");
    assert!(
        sampled["rates"].as_str().unwrap().ends_with("=524288"),
        "{name}: {sampled:#}"
    );
    for route in ["/leak", "/churn", "/"] {
        let e = endpoint(&r, "GET", route);
        assert_eq!(e["kept_from"], "sampled_heap", "{name}: {route}: {e:#}");
        let h = &e["sampled_heap"];
        assert_eq!(
            e["kept_per_request_bytes"], h["kept_per_request_bytes"],
            "{name}: {route}: {e:#}"
        );
        assert!(int(h, "requests") >= 100, "{name}: {route}: {e:#}");
    }
    let leak = &endpoint(&r, "GET", "/leak")["sampled_heap"];
    eprintln!(
        "{name}: /leak by the sampled heap {:.1} KiB per request (95% interval {:.1} to {:.1}; \
         {} of {} samples kept over {} requests judged)",
        int(leak, "kept_per_request_bytes") as f64 / 1024.0,
        int(leak, "kept_per_request_low_bytes") as f64 / 1024.0,
        int(leak, "kept_per_request_high_bytes") as f64 / 1024.0,
        int(leak, "samples_kept"),
        int(leak, "samples"),
        int(leak, "requests")
    );
    // A 95% interval misses the truth one run in twenty by its nature: the truth is asserted
    // within twice its half-width (about 3.9 standard deviations).
    let width = int(leak, "kept_per_request_high_bytes") - int(leak, "kept_per_request_low_bytes");
    assert!(
        (int(leak, "kept_per_request_bytes") - 256 * KIB).abs() <= width,
        "{name}: the truth within twice the interval's half-width: {leak:#}"
    );
    // The churn's 2 MiB is sampled nearly every time, and the sweeper frees every sample.
    let churn = &endpoint(&r, "GET", "/churn")["sampled_heap"];
    assert!(
        int(churn, "samples") * 10 >= int(churn, "requests") * 9,
        "{name}: {churn:#}"
    );
    // The summary says which figure each route took, and on what.
    let done = memwatch_tests::run(&["report", out.to_str().unwrap()], Duration::from_secs(60));
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert!(
        done.stdout.contains("kept/req of GET /leak")
            && done.stdout.contains("is Go's own sampled heap")
            && done.stdout.contains("by Go's sampled heap: "),
        "{name}: {}",
        done.stdout
    );
}

#[test]
fn go_sampled_heap_c1() {
    go_sampled_heap(18_523, 1);
}

#[test]
fn go_sampled_heap_c8() {
    go_sampled_heap(18_524, 8);
}

/// Ruby: what each collection kept of the followed heap, by marking epoch (its
/// `gc__mark__begin` USDT probe sits behind a semaphore, which the kernel counts while it is
/// attached).
#[test]
fn puma_kept_heap_regression_agrees() {
    second_estimate_agrees(Runtime::Puma, 18_521, &["kept_heap"]);
}

/// Node.js as fast as eight clients can drive it: following every malloc and free would cost
/// several times the budget, so the heap is followed in windows. The leak still ranks first,
/// and the report, each route's figures and the JSON say they are sampled.
#[test]
fn at_the_maximum_rate_the_budget_samples_and_says_so() {
    const MAX_N: usize = 2000;
    let (r, _dir, out) = record_with(Runtime::Node, 18_511, 8, MAX_N, None, &[]);
    say("node at its maximum rate", &r);
    let heap = &r["retained"]["heap"];
    let sampling = &heap["sampling"];
    assert!(sampling.is_object(), "{heap:#}");
    assert!(heap["on_fraction"].as_f64().unwrap() < 1.0, "{heap:#}");
    assert!(int(sampling, "requests_sampled_out") > 0, "{heap:#}");
    assert_eq!(
        int(sampling, "requests_followed") + int(sampling, "requests_sampled_out"),
        3 * MAX_N as i64,
        "{heap:#}"
    );
    assert!(
        heap["note"].as_str().unwrap().contains("budget"),
        "{heap:#}"
    );
    assert_eq!(r["endpoints"][0]["route"], "/leak", "{:#}", r["endpoints"]);
    let leak = endpoint(&r, "GET", "/leak");
    assert!(leak["sampled"].is_object(), "{leak:#}");
    assert!(int(&leak["sampled"], "followed_requests") > 0, "{leak:#}");
    assert_eq!(leak["requests"], MAX_N, "{leak:#}");
    assert_eq!(r["requests"], 3 * MAX_N, "every request counted");
    // With the heap followed for about a second, the regression on it can be too loose to rank
    // the routes (its intervals were 110 to 360 KiB wide when a sweep's figure held the
    // buffers in flight; on what the next sweep found still held, it fits within 1%): then
    // the origin's figures stand, and the report says why.
    let overlapping = &r["retained"]["regression"]["overlapping"];
    if overlapping.as_array().is_some_and(|o| !o.is_empty()) {
        assert_eq!(leak["kept_from"], "origin", "{overlapping:#}");
        // The pairs, as the fit found them: in so loose a fit, the leak with the churn either
        // way round, or each of them with `/`.
        let pairs: Vec<&str> = overlapping
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        let done = memwatch_tests::run(&["report", out.to_str().unwrap()], Duration::from_secs(60));
        assert_eq!(done.code(), 0, "{}", done.stderr);
        // Lines joined, each trimmed: the note's own spacing is kept.
        let said = done
            .stdout
            .lines()
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            said.contains(&format!(
                "kept/req is the origin's, though requests shared a thread: the regression's \
                 intervals overlap for {}",
                pairs.join(", ")
            )),
            "{}",
            done.stdout
        );
    }
    // The probes cost about the budget, not what following everything would: the first
    // window spends what the budget starts with, and its toll (attaching and detaching five
    // probes, charged at 0.25 s of CPU each) is more than a 2% budget earns back in a recording
    // this short, so the budget opens no second window. (The estimated cost itself is not
    // bounded here: it is corrected by the targets' CPU per request with the probes on and
    // off, and with other tests sharing the two cores that correction swings by a factor of
    // several.)
    assert_eq!(
        int(sampling, "pauses"),
        1,
        "one window, not a second: {heap:#}"
    );
    assert!(heap["on_fraction"].as_f64().unwrap() < 0.5, "{heap:#}");
}

/// With `--stacks`, memory a heap block takes from the allocator carries the call site of the
/// block's allocation: most of what the leak keeps is under a stack, not `[no stack taken]`.
fn leak_has_call_sites(rt: Runtime, port: u16) {
    let (r, _dir, out) = record_with(rt, port, 1, N, Some(RATE), &["--stacks"]);
    leak_first_and_right(rt.name(), &r, N);
    let done = memwatch_tests::run(
        &[
            "report",
            out.to_str().unwrap(),
            "--stacks",
            "--stacks-top",
            "1000",
            "--format",
            "json",
        ],
        Duration::from_secs(120),
    );
    assert_eq!(done.code(), 0, "{}", done.stderr);
    let report: Value = serde_json::from_str(&done.stdout).unwrap();
    let leak = report["stacks"]["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["route"] == "/leak")
        .unwrap_or_else(|| panic!("{:#}", report["stacks"]));
    let sites = leak["sites"].as_array().unwrap();
    let total: i64 = sites.iter().map(|s| int(s, "retained_bytes")).sum::<i64>()
        + int(leak, "more_retained_bytes");
    let unnamed: i64 = sites
        .iter()
        .filter(|s| s["stack"] == 0)
        .map(|s| int(s, "retained_bytes"))
        .sum();
    eprintln!(
        "{}: {unnamed} of {total} bytes the leak keeps have no stack ({:.1}%)",
        rt.name(),
        unnamed as f64 * 100.0 / total.max(1) as f64
    );
    assert!(total > 0, "{leak:#}");
    assert!(
        unnamed * 4 <= total,
        "{}: {unnamed} of {total} retained bytes under [no stack taken]: {leak:#}",
        rt.name()
    );
}

#[test]
fn node_leak_has_call_sites() {
    leak_has_call_sites(Runtime::Node, 18_512);
}

#[test]
fn gunicorn_leak_has_call_sites() {
    leak_has_call_sites(Runtime::GunicornSync, 18_513);
}
