//! Which requests keep memory: retained memory credited back to its origin, on the demo's four
//! shapes (a leak, churn through mmap, a reused heap, memory freed later by another thread) and
//! on a real runtime installed from PyPI (gunicorn with Flask).

use std::{path::PathBuf, process::Command, time::Duration};

use memwatch_tests::{
    Running, Value, ab_load, bin, endpoint, report, start_server, tempdir, wait_until_answering,
};

const T: Duration = Duration::from_secs(120);
const KIB: i64 = 1024;
const PAGE: i64 = 4096;

fn int(v: &Value, key: &str) -> i64 {
    v[key]
        .as_i64()
        .unwrap_or_else(|| panic!("{key} missing: {v:#}"))
}

/// Records `pid` while `drive` runs, stops memwatch, and returns the report.
fn record_while(pid: u32, drive: impl FnOnce()) -> Value {
    let dir = tempdir();
    let out = dir.path().join("retained.db");
    let pid = pid.to_string();
    let mut rec = Running::start(&["record", "-p", &pid, "-o", out.to_str().unwrap()]);
    rec.wait_recording(T);
    drive();
    // Let the demo's collector (200 ms) and any deferred release happen inside the recording.
    std::thread::sleep(Duration::from_millis(600));
    rec.signal(libc::SIGINT);
    let done = rec.wait(T);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    report(&out)
}

#[test]
fn the_leak_ranks_first_and_churn_reuse_and_deferred_frees_keep_nothing_per_request() {
    let demo = start_server(Command::new(bin("memwatch-demo")).args(["--quiet"]));
    let base = format!("http://127.0.0.1:{}", demo.port);
    let r = record_while(demo.pid(), || {
        for _ in 0..4 {
            ab_load(&format!("{base}/leak?kb=256"), 10, 2, false);
            ab_load(&format!("{base}/churn?kb=2048"), 10, 2, false);
            ab_load(&format!("{base}/reuse?kb=1024"), 10, 2, false);
            ab_load(&format!("{base}/deferred?kb=512"), 10, 2, false);
        }
    });
    let first = &r["endpoints"][0];
    assert_eq!(first["route"], "/leak", "{:#}", r["endpoints"]);

    let leak = endpoint(&r, "GET", "/leak");
    assert_eq!(leak["requests"], 40);
    assert_eq!(leak["retention"], "keeps");
    let kept = int(leak, "kept_per_request_bytes");
    assert!((kept - 256 * KIB).abs() <= 256 * KIB / 20, "{leak:#}");
    assert!(int(leak, "retained_bytes") >= 40 * 256 * KIB, "{leak:#}");

    // Churn through mmap: grown and released by the request itself.
    let churn = endpoint(&r, "GET", "/churn");
    assert!(int(churn, "grown_bytes") >= 40 * 2048 * KIB, "{churn:#}");
    assert!(int(churn, "retained_bytes") <= 40 * PAGE, "{churn:#}");
    assert_eq!(churn["retention"], "none");

    // A reused heap: 1 MiB kept once, nothing per further request.
    let reuse = endpoint(&r, "GET", "/reuse");
    assert_eq!(reuse["retention"], "high-water", "{reuse:#}");
    assert!(int(reuse, "kept_per_request_bytes") <= PAGE, "{reuse:#}");
    let retained = int(reuse, "retained_bytes");
    assert!(
        (1024 * KIB..=1024 * KIB + 40 * PAGE).contains(&retained),
        "{reuse:#}"
    );

    // Freed 200 ms later by the collector thread: credited back to /deferred.
    let deferred = endpoint(&r, "GET", "/deferred");
    assert!(
        int(deferred, "grown_bytes") >= 40 * 512 * KIB,
        "{deferred:#}"
    );
    assert!(
        int(deferred, "released_bytes") >= 40 * 512 * KIB,
        "the collector's releases are credited back: {deferred:#}"
    );
    assert!(int(deferred, "retained_bytes") <= 40 * PAGE, "{deferred:#}");
    assert_eq!(deferred["retention"], "none");

    // Nothing lost silently: the reconciliation and the origin counters are in the report.
    let summary = &r["retained"];
    assert_eq!(int(summary, "untracked_bytes"), 0, "{summary:#}");
    assert!(summary["unexplained_bytes"].is_i64(), "{summary:#}");
    assert_eq!(r["dropped_events"], 0);
}

/// gunicorn's Python from the venv setup made (its real interpreter, not a version manager's
/// shim), and the fixture directory.
fn gunicorn() -> (PathBuf, PathBuf) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let venv = root.join("target/runtimes/venv/bin");
    assert!(
        venv.join("gunicorn").is_file(),
        "gunicorn is missing: run `cargo xtask setup --test` (cargo xtask test does)"
    );
    (venv, root.join("tests/fixtures/runtimes"))
}

fn gunicorn_leak_and_churn(concurrency: u32, port: u16) {
    let (venv, fixtures) = gunicorn();
    let bind = format!("127.0.0.1:{port}");
    // gunicorn prints nothing on stdout, and start_server waits for a line naming the port: a
    // shell says it, then execs gunicorn's interpreter in its place (same PID).
    let script = format!(
        "echo listening on {bind}; exec {python} {gunicorn} --chdir {dir} -b {bind} -w 1 \
         flask_app:app",
        python = venv.join("python3").display(),
        gunicorn = venv.join("gunicorn").display(),
        dir = fixtures.display(),
    );
    let server = start_server(Command::new("sh").args(["-c", &script]));
    wait_until_answering(port, T);
    let base = format!("http://{bind}");
    let r = record_while(server.pid(), || {
        for _ in 0..2 {
            ab_load(&format!("{base}/leak?kb=256"), 50, concurrency, false);
            ab_load(&format!("{base}/churn?kb=2048"), 50, concurrency, false);
        }
    });
    let first = &r["endpoints"][0];
    assert_eq!(first["route"], "/leak", "{:#}", r["endpoints"]);
    let leak = endpoint(&r, "GET", "/leak");
    let kept = int(leak, "kept_per_request_bytes");
    assert!(
        (kept - 256 * KIB).abs() <= 256 * KIB * 15 / 100,
        "c{concurrency}: /leak keeps {kept} B per request, the truth is 256 KiB: {leak:#}"
    );
    let churn = endpoint(&r, "GET", "/churn");
    let churn_kept = int(churn, "kept_per_request_bytes");
    assert!(
        churn_kept * 20 < 2048 * KIB,
        "c{concurrency}: /churn keeps {churn_kept} B per request of 2 MiB: {churn:#}"
    );
}

#[test]
fn gunicorn_flask_leak_ranks_first_at_c1() {
    gunicorn_leak_and_churn(1, 18_431);
}

#[test]
fn gunicorn_flask_leak_ranks_first_at_c8() {
    gunicorn_leak_and_churn(8, 18_432);
}
