//! Issue: read the server's access log, join it with the captured requests, and work without
//! root too.

use std::{os::unix::fs::PermissionsExt as _, process::Command, time::Duration};

use memwatch_tests::{
    Running, ab_load, bin, copy_for_anyone, endpoint, nginx, report, run, start_server, tempdir,
};

const T: Duration = Duration::from_secs(120);

fn stop(rec: Running) {
    std::thread::sleep(Duration::from_millis(500));
    rec.signal(libc::SIGINT);
    let done = rec.wait(T);
    assert_eq!(done.code(), 0, "{}", done.stderr);
}

/// `memwatch record -p PID -o OUT --access-log LOG EXTRA...`, started by `start` (as root or
/// not), once it is recording.
fn record_with_log(
    start: fn(&[&str]) -> Running,
    pid: u32,
    out: &std::path::Path,
    log: &std::path::Path,
    extra: &[&str],
) -> Running {
    let pid = pid.to_string();
    let mut args = vec![
        "record",
        "-p",
        &pid,
        "-o",
        out.to_str().unwrap(),
        "--access-log",
        log.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let mut rec = start(&args);
    rec.wait_recording(T);
    rec
}

fn ab(url: &str, n: u32, keepalive: bool) {
    ab_load(url, n, n.min(4), keepalive);
}

#[test]
fn demo_server_log_lines_all_match_captured_requests() {
    let dir = tempdir();
    let log = dir.path().join("demo-access.log");
    let demo = start_server(Command::new(bin("memwatch-demo")).args([
        "--quiet",
        "--access-log",
        log.to_str().unwrap(),
    ]));
    let out = dir.path().join("demo.db");
    let rec = record_with_log(Running::start, demo.pid(), &out, &log, &[]);
    let base = format!("http://127.0.0.1:{}", demo.port);
    ab(&format!("{base}/leak?kb=64"), 100, false);
    ab(&format!("{base}/"), 300, true);
    ab(&format!("{base}/churn?kb=128"), 50, true);
    ab(&format!("{base}/nope"), 50, false);
    stop(rec);
    let r = report(&out);
    let a = &r["access_log"];
    assert_eq!(a["format"][0], "combined", "{a:#}");
    assert_eq!(a["lines"], 500, "{a:#}");
    assert_eq!(a["parsed"], 500);
    assert_eq!(a["matched"], 500, "{a:#}");
    assert_eq!(a["unmatched_lines"], 0);
    assert_eq!(a["unmatched_requests"], 0);
    assert_eq!(r["requests"], 500);
    assert_eq!(endpoint(&r, "GET", "/nope")["statuses"]["404"], 50);
}

#[test]
fn nginx_combined_log_2000_lines_2000_matched() {
    let dir = tempdir();
    let server = nginx(dir.path());
    let log = dir.path().join("logs/access.log");
    let out = dir.path().join("nginx.db");
    let rec = record_with_log(
        Running::start,
        server.pid(),
        &out,
        &log,
        &["--log-format", "nginx"],
    );
    ab(&format!("http://127.0.0.1:{}/", server.port), 2000, false);
    stop(rec);
    let r = report(&out);
    let a = &r["access_log"];
    assert_eq!(a["lines"], 2000, "{a:#}");
    assert_eq!(a["matched"], 2000, "{a:#}");
    assert_eq!(a["unmatched_lines"], 0);
    assert_eq!(a["unmatched_requests"], 0);
}

#[test]
fn rejected_lines_are_counted_with_reasons_and_kept() {
    let dir = tempdir();
    let log = dir.path().join("old.log");
    std::fs::write(
        &log,
        "127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] \"GET /a HTTP/1.0\" 200 2326 \"-\" \"x\"\n\
         127.0.0.1 - - [10/Oct/2000:13:55:37 -0700] \"\\x16\\x03\\x01\" 400 0 \"-\" \"-\"\n\
         this is not a log line at all\n\
         127.0.0.1 - - [10/Oct/2000:13:55:38 -0700] \"GET /b HTTP/1.0\" 2x0 5 \"-\" \"x\"\n",
    )
    .unwrap();
    let out = dir.path().join("rej.db");
    let memchild = bin("memchild");
    let done = run(
        &[
            "record",
            "--no-net",
            "-o",
            out.to_str().unwrap(),
            "--access-log",
            log.to_str().unwrap(),
            "--log-from-start",
            "--log-format",
            "combined",
            "--",
            memchild.to_str().unwrap(),
            "exit-soon",
            "600",
        ],
        T,
    );
    assert_eq!(done.code(), 0, "{}", done.stderr);
    let r = report(&out);
    let a = &r["access_log"];
    assert_eq!(a["lines"], 4, "{a:#}");
    assert_eq!(a["parsed"], 2, "{a:#}");
    assert_eq!(a["invalid_requests"], 1, "{a:#}");
    assert_eq!(a["rejected"]["missing_timestamp"], 1, "{a:#}");
    assert_eq!(a["rejected"]["bad_status"], 1, "{a:#}");
    assert_eq!(a["rejected_examples"][0], "this is not a log line at all");
    // The one valid request in the log has no captured twin: nothing was served meanwhile.
    assert_eq!(a["unmatched_lines"], 1);
}

#[test]
fn bad_log_options_are_refused_up_front() {
    // A PID that exists and may be traced (PID 1 would be refused first, without --force).
    let pid = std::process::id().to_string();
    let done = run(
        &[
            "record",
            "-p",
            &pid,
            "--access-log",
            "/nonexistent-dir/a.log",
        ],
        T,
    );
    assert_eq!(done.code(), 2, "{}", done.stderr);
    assert!(
        done.stderr.contains("/nonexistent-dir/a.log"),
        "{}",
        done.stderr
    );
    let done = run(
        &[
            "record",
            "-p",
            &pid,
            "--access-log",
            "/tmp/x.log",
            "--log-format",
            "%h %Z %t",
        ],
        T,
    );
    assert_eq!(done.code(), 2, "{}", done.stderr);
    assert!(done.stderr.contains("%Z"), "{}", done.stderr);
}

#[test]
fn no_ebpf_mode_unprivileged_finds_the_leaking_route() {
    use std::os::unix::process::CommandExt as _;
    let dir = tempdir();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let log = dir.path().join("demo.log");
    let demo_bin = copy_for_anyone(&bin("memwatch-demo"), dir.path());
    let demo = start_server(
        Command::new(demo_bin)
            .args(["--quiet", "--access-log", log.to_str().unwrap()])
            .uid(65534)
            .gid(65534),
    );
    let out = dir.path().join("noebpf.db");
    let rec = record_with_log(
        Running::start_unprivileged,
        demo.pid(),
        &out,
        &log,
        &["--no-ebpf"],
    );
    let base = format!("http://127.0.0.1:{}", demo.port);
    for _ in 0..10 {
        ab(&format!("{base}/leak?kb=1024"), 1, false);
        std::thread::sleep(Duration::from_millis(250));
    }
    ab(&format!("{base}/"), 50, true);
    stop(rec);
    let r = report(&out);
    let top = &r["endpoints"][0];
    assert_eq!(top["route"], "/leak", "{:#}", r["endpoints"]);
    assert_eq!(top["requests"], 10);
    assert_eq!(top["approximate"], 10);
    assert!(
        top["rss_bytes"].as_i64().unwrap() >= 8 * 1024 * 1024,
        "{top:#}"
    );
    assert_eq!(r["access_log"]["mode"], "interval");
    assert_eq!(r["requests"], 60);
}
