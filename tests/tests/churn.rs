//! Reliability tests (issue 15); see docs/reliability.md. Scaled by `memwatch_tests::scaled`:
//! short under `cargo xtask test`, long under `cargo xtask stress`.
//!
//! Target churn: a fork storm with exec, short-lived threads and a reused PID; a server whose
//! worker threads die mid-request while children churn beside it; a server killed with its
//! connections open. Nothing is misattributed, and the kernel maps return to their idle size.

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    process::Command,
    time::Duration,
};

use memwatch_tests::{
    Running, Value, bin, calls_of_size, endpoint, process_memory, read_response, report, scaled,
    start_server, stop_recording, tempdir,
};

const T: Duration = Duration::from_secs(300);
const KIB: i64 = 1024;

/// `key=value` pairs of a fixture's `children=...` line.
fn churn_line(stdout: &str) -> std::collections::HashMap<String, f64> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("children="))
        .unwrap_or_else(|| panic!("no churn line in: {stdout}"));
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.parse().expect("number")))
        .collect()
}

/// The kernel maps' entries when the recording closed.
fn map_entries(r: &Value) -> std::collections::BTreeMap<String, u64> {
    serde_json::from_value(r["memwatch"]["kernel_map_entries"].clone())
        .unwrap_or_else(|e| panic!("kernel_map_entries: {e}: {:#}", r["memwatch"]))
}

/// Waits (up to 10 s) until no server-side socket on `port` has unread bytes: the receive
/// queue of each established connection whose local port is `port`, in /proc/net/tcp, is 0.
fn wait_until_read(port: u16) {
    let local = format!(":{port:04X}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
        let unread = table.lines().skip(1).any(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address, rem_address, st (01: established), tx_queue:rx_queue
            f.len() > 4
                && f[1].ends_with(&local)
                && f[3] == "01"
                && f[4].split(':').nth(1).is_some_and(|rx| rx != "00000000")
        });
        if !unread || std::time::Instant::now() > deadline {
            assert!(!unread, "the server left bytes unread on port {port}");
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Threads of `pid` now.
fn threads_of(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count() as u64)
        .unwrap_or(0)
}

#[test]
fn fork_storm_with_exec_threads_and_a_reused_pid_is_followed_exactly() {
    let count: u32 = scaled(2_000, 20_000);
    let dir = tempdir();
    let out = dir.path().join("churn.db");
    let n = count.to_string();
    let done = Running::start(&[
        "record",
        "-o",
        out.to_str().unwrap(),
        "--",
        bin("memchild").to_str().unwrap(),
        "churn",
        &n,
    ])
    .wait(T);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    let line = churn_line(&done.stdout);
    let (per_s, threads, attempts, reused) = (
        line["per_s"],
        line["threads"] as u64,
        line["attempts"] as u64,
        line["reused"] as u64,
    );
    eprintln!("{count} children at {per_s:.0}/s under memwatch, {threads} threads");
    assert!(per_s >= 500.0, "only {per_s:.0} forks/s: not a storm");
    assert_ne!(
        reused, 0,
        "no attempt got the PID back ({attempts} attempts)"
    );

    let r = report(&out);
    assert_eq!(r["dropped_events"], 0, "{:#}", r["lost"]);
    // Every process was followed: the parent, its children, the PID-reuse pair (one row, the
    // PID being the same).
    let processes = r["processes"].as_array().unwrap();
    let expected = 1 + u64::from(count) + 2 * attempts - 1;
    assert_eq!(processes.len() as u64, expected);
    assert!(
        processes.iter().all(|p| !p["exited_ns"].is_null()),
        "a process not seen exiting"
    );
    // Each one's memory exactly: the sizes are the fixture's own.
    let m = &r["memory"];
    let forked = u64::from(count);
    assert_eq!(
        calls_of_size(m, "mmap", 264 * KIB),
        forked - forked.div_ceil(10)
    );
    assert_eq!(calls_of_size(m, "mmap", 136 * KIB), forked.div_ceil(10));
    let parent = processes
        .iter()
        .find(|p| p["origin"] == "spawned")
        .and_then(|p| p["pid"].as_u64())
        .unwrap();
    let parent = process_memory(&r, parent as u32);
    assert_eq!(calls_of_size(&parent, "mmap", 72 * KIB), threads);
    // The reused PID's row covers both of its processes.
    let reused = process_memory(&r, reused as u32);
    assert_eq!(calls_of_size(&reused, "mmap", 1032 * KIB), 1);
    assert_eq!(calls_of_size(&reused, "mmap", 2056 * KIB), 1);
    let own = &r["memwatch"];
    assert_eq!(own["pids_reused"], 1, "{own:#}");
    // Everything exited: the maps are back to empty.
    let entries = map_entries(&r);
    assert!(entries.values().all(|&n| n == 0), "{entries:?}");
    assert_eq!(entries.len(), 7, "{entries:?}");
}

/// One request on its own connection; the client waits `wait` for an answer, then closes.
fn one_shot(port: u16, path: &str, wait: Duration) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: demo\r\n\r\n").unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    let mut first = [0u8; 12];
    match s.read_exact(&mut first) {
        Ok(()) => std::str::from_utf8(&first[9..12]).ok()?.parse().ok(),
        Err(_) => None,
    }
}

#[test]
fn requests_stay_exact_while_threads_die_mid_request_and_children_churn() {
    let count: u32 = scaled(2_000, 20_000);
    let demo = start_server(Command::new(bin("memwatch-demo")).arg("--quiet"));
    let dir = tempdir();
    let trigger = dir.path().join("go");
    let mut churner = Command::new(bin("memchild"))
        .args(["churn-when", trigger.to_str().unwrap(), &count.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = dir.path().join("server.db");
    let (d, c) = (demo.pid().to_string(), churner.id().to_string());
    let mut rec = Running::start(&["record", "-p", &d, "-p", &c, "-o", out.to_str().unwrap()]);
    rec.wait_recording(T);
    std::fs::write(&trigger, b"").unwrap();
    let port = demo.port;
    // While the children churn: 40 leaks on four keep-alive connections, and 5 requests whose
    // thread dies before answering.
    let clients: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                (0..10)
                    .map(|_| {
                        write!(s, "GET /leak?kb=256 HTTP/1.1\r\nHost: demo\r\n\r\n").unwrap();
                        read_response(&mut s)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for _ in 0..5 {
        assert_eq!(
            one_shot(port, "/vanish?kb=128", Duration::from_millis(200)),
            None
        );
    }
    for c in clients {
        assert!(c.join().unwrap().iter().all(|&code| code == 200));
    }
    let mut stdout = String::new();
    churner
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert!(churner.wait().unwrap().success());
    let line = churn_line(&stdout);
    eprintln!(
        "children churned at {:.0}/s beside the server",
        line["per_s"]
    );
    std::thread::sleep(Duration::from_millis(500));
    let demo_threads = threads_of(demo.pid());
    stop_recording(rec);

    let r = report(&out);
    assert_eq!(r["dropped_events"], 0, "{:#}", r["lost"]);
    assert_eq!(r["requests"], 45, "{:#}", r["endpoints"]);
    let int = |v: &Value, k: &str| v[k].as_i64().unwrap_or_else(|| panic!("{k}: {v:#}"));
    let leak = endpoint(&r, "GET", "/leak");
    assert_eq!(leak["requests"], 40);
    assert_eq!(int(leak, "vm_mapped_bytes"), 40 * 256 * KIB, "{leak:#}");
    assert_eq!(int(leak, "vm_retained_bytes"), 40 * 256 * KIB, "{leak:#}");
    let vanish = endpoint(&r, "GET", "/vanish");
    assert_eq!(vanish["requests"], 5);
    assert_eq!(int(vanish, "vm_mapped_bytes"), 5 * 128 * KIB, "{vanish:#}");
    assert_eq!(
        int(vanish, "vm_retained_bytes"),
        5 * 128 * KIB,
        "{vanish:#}"
    );
    // The churner's children made no requests and took none of theirs.
    assert_eq!(r["endpoints"].as_array().unwrap().len(), 2);
    // Idle again: the server (its five dead threads' sockets still open), nothing of the
    // churn.
    let entries = map_entries(&r);
    assert_eq!(entries["targets"], 1, "{entries:?}");
    assert_eq!(entries["conns"], 5, "{entries:?}");
    assert_eq!(entries["pending_mem"], 0, "{entries:?}");
    assert_eq!(entries["heap_pending"], 0, "{entries:?}");
    assert!(
        entries["thread_faults"] <= demo_threads,
        "{entries:?}, {demo_threads} threads"
    );
    assert!(entries["rss_seen"] <= 1, "{entries:?}");
}

#[test]
fn a_server_killed_with_connections_open_leaves_nothing_behind() {
    let demo = start_server(Command::new(bin("memwatch-demo")).arg("--quiet"));
    let dir = tempdir();
    let out = dir.path().join("killed.db");
    let d = demo.pid().to_string();
    let mut rec = Running::start(&["record", "-p", &d, "-o", out.to_str().unwrap()]);
    rec.wait_recording(T);
    let port = demo.port;
    // Three connections that were answered and stay open, two whose heads never complete.
    let mut open = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(s, "GET /leak?kb=64 HTTP/1.1\r\nHost: demo\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut s), 200);
        open.push(s);
    }
    for _ in 0..2 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"GET /never-finished HTTP/1.1\r\nHost: de")
            .unwrap();
        open.push(s);
    }
    // The server has read every byte sent (on a loaded machine its threads may lag): memwatch
    // sees what the server reads, nothing more.
    wait_until_read(port);
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: plain syscall on the server this test started.
    unsafe { libc::kill(demo.pid() as i32, libc::SIGKILL) };
    let done = rec.wait(T);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    drop(open);

    let r = report(&out);
    assert_eq!(endpoint(&r, "GET", "/leak")["requests"], 3);
    assert_eq!(r["requests"], 3, "{:#}", r["endpoints"]);
    assert_eq!(r["non_http"]["incomplete"], 2, "{:#}", r["non_http"]);
    let own = &r["memwatch"];
    assert_eq!(own["conns_swept"], 5, "{own:#}");
    let entries = map_entries(&r);
    assert!(entries.values().all(|&n| n == 0), "{entries:?}");
}
