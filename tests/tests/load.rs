//! Reliability tests (issue 15); see docs/reliability.md. Scaled by `memwatch_tests::scaled`:
//! short under `cargo xtask test`, long under `cargo xtask stress`.
//!
//! Load: nginx holding 10,000 concurrent keep-alive connections under ab. Every request is
//! counted against nginx's own log, nothing is dropped silently, and memwatch's memory and state
//! stay bounded. Hostile traffic beside normal requests: each kind counted, the normal requests
//! exact.

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    process::Command,
    time::Duration,
};

use memwatch_tests::{
    MIB, bin, endpoint, nginx_with, read_response, report, scaled, start_recording, start_server,
    stop_recording, tempdir,
};

/// Concurrent keep-alive connections.
const CONNECTIONS: u32 = 10_000;

/// Raises this process's soft open-file limit to its hard one (nginx and ab inherit it): each
/// side of 10,000 connections needs 10,000 descriptors. (Root here lacks CAP_SYS_RESOURCE, so
/// the hard limit itself cannot be raised.)
fn raise_nofile(need: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls with a valid struct.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    assert!(
        lim.rlim_max >= need,
        "the open-file hard limit is {}; this test needs {need}: raise it (ulimit -Hn)",
        lim.rlim_max
    );
    lim.rlim_cur = lim.rlim_max;
    // SAFETY: as above.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    assert_eq!(rc, 0, "setrlimit(NOFILE, {})", lim.rlim_cur);
}

/// `ab -k -c CONNECTIONS -n N`: returns ab's own count of completed requests and its rate,
/// asserting that none failed.
fn ab(port: u16, n: u32) -> (u64, f64) {
    let out = Command::new("ab")
        .args(["-q", "-k", "-r", "-s", "60"])
        .args(["-c", &CONNECTIONS.to_string(), "-n", &n.to_string()])
        .arg(format!("http://127.0.0.1:{port}/index.html"))
        .output()
        .expect("ab (apache2-utils)");
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {name:?} in ab's output: {text}"))
    };
    assert_eq!(field("Failed requests:"), 0, "{text}");
    let rate = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests per second:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no rate in ab's output: {text}"));
    (field("Complete requests:"), rate)
}

#[test]
fn ten_thousand_keepalive_connections_are_counted_exactly_in_bounded_memory() {
    let n: u32 = scaled(100_000, 1_000_000);
    raise_nofile(u64::from(CONNECTIONS) + 1024);
    let dir = tempdir();
    let server = nginx_with(dir.path(), CONNECTIONS);
    // The same load without memwatch first: the rate to compare with, and nginx's log lines
    // before the recorded run.
    let (_, alone) = ab(server.port, n);
    let log = dir.path().join("logs/access.log");
    let lines = || std::fs::read_to_string(&log).unwrap().lines().count() as u64;
    let before = lines();
    let (_rec_dir, out, rec) = start_recording(server.pid(), &[]);
    let (served, traced) = ab(server.port, n);
    assert_eq!(served, u64::from(n));
    std::thread::sleep(Duration::from_secs(1));
    stop_recording(rec);
    eprintln!(
        "ab: {alone:.0} requests/s alone, {traced:.0} traced by memwatch ({:.2})",
        traced / alone
    );

    let logged = lines() - before;
    assert_eq!(logged, served, "nginx logged what ab counted");
    let r = report(&out);
    let own = &r["memwatch"];
    let num = |v: &serde_json::Value| v.as_u64().unwrap_or_else(|| panic!("{own:#}"));
    eprintln!(
        "memwatch: {:#}, {} events, dropped {}",
        own, r["events"], r["dropped_events"]
    );
    // Nothing lost silently: with no drop, every request; with drops, they are counted.
    let dropped = num(&r["dropped_events"]);
    if dropped == 0 {
        assert_eq!(r["requests"], served);
    } else {
        assert!(num(&r["requests"]) < served, "{dropped} drops counted");
    }
    assert_eq!(own["writer_shed_rows"], 0);
    // Bounded: one connection state per connection, at most one request in flight on each, and
    // memwatch's resident set under 256 MiB.
    let peak_conns = num(&own["peak_conns"]);
    assert!(
        (u64::from(CONNECTIONS)..=u64::from(CONNECTIONS) + 16).contains(&peak_conns),
        "{own:#}"
    );
    assert!(
        num(&own["peak_requests"]) <= u64::from(CONNECTIONS),
        "{own:#}"
    );
    assert!(num(&own["peak_rss_bytes"]) < 256 * MIB as u64, "{own:#}");
    assert!(
        num(&r["retained"]["origin_spans"]) < 1 << 20,
        "{:#}",
        r["retained"]
    );
    // ab has closed every connection: the kernel side holds none.
    assert_eq!(own["kernel_map_entries"]["conns"], 0, "{own:#}");
    assert_eq!(own["kernel_map_entries"]["pending_mem"], 0, "{own:#}");
}

/// Connects to the demo, sends `bytes`, then (when `half_close`) shuts its sending side, and
/// reads until the server closes or 2 s pass.
fn send(port: u16, bytes: &[u8], half_close: bool) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let _ = s.write_all(bytes);
    if half_close {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    answer
}

#[test]
fn hostile_traffic_is_counted_by_kind_and_normal_requests_stay_exact() {
    let k: usize = scaled(4, 100);
    let demo = start_server(Command::new(bin("memwatch-demo")).arg("--quiet"));
    let (_dir, out, rec) = start_recording(demo.pid(), &[]);
    let port = demo.port;
    let leak = b"GET /leak?kb=256 HTTP/1.1\r\nHost: demo\r\n\r\n";
    // A TLS 1.2 ClientHello's first bytes.
    let mut tls = vec![
        0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00, 0x00, 0xc4, 0x03, 0x03,
    ];
    tls.extend(0..32u8);
    let h2 = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00\x00\x00\x00\x00";
    let long_url = format!(
        "GET /{} HTTP/1.1\r\nHost: demo\r\n\r\n",
        "a".repeat(16 * 1024)
    );
    // Bytes that are not text: a seeded xorshift, starting with a control byte.
    let binary: Vec<u8> = std::iter::successors(Some(0x9e37_79b9_7f4a_7c15_u64), |&x| {
        let x = x ^ (x << 13);
        let x = x ^ (x >> 7);
        Some(x ^ (x << 17))
    })
    .map(|x| (x >> 24) as u8)
    .take(4096)
    .enumerate()
    .map(|(i, b)| if i == 0 { 0x01 } else { b })
    .collect();
    let hostile = std::thread::scope(|scope| {
        // Slow-loris heads: a byte every 20 ms, never finished, dropped after a second.
        let loris: Vec<_> = (0..k)
            .map(|_| {
                scope.spawn(move || {
                    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                    s.set_nodelay(true).unwrap();
                    for b in b"GET /slow-loris HTTP/1.1\r\nHost: demo\r\nX-A: aaaaaaaa" {
                        s.write_all(&[*b]).unwrap();
                        std::thread::sleep(Duration::from_millis(20));
                    }
                })
            })
            .collect();
        let mut answered = 0;
        for _ in 0..k {
            // Normal requests in between, on their own connections, one of each pair
            // half-closed after its request.
            for half_close in [false, true, false, true] {
                let answer = send_keepalive_or_half(port, leak, half_close);
                answered += usize::from(answer.starts_with(b"HTTP/1.1 200"));
            }
            send(port, &tls, false);
            send(port, h2, false);
            send(port, long_url.as_bytes(), false);
            send(port, &binary, false);
            // Half-closed in the middle of a head.
            send(port, b"GET /half HTTP/1.1\r\nHo", true);
        }
        for l in loris {
            l.join().unwrap();
        }
        answered
    });
    assert_eq!(hostile, 4 * k, "every normal request was answered");
    std::thread::sleep(Duration::from_millis(300));
    stop_recording(rec);

    let r = report(&out);
    assert_eq!(r["dropped_events"], 0);
    let non_http: std::collections::BTreeMap<String, usize> =
        serde_json::from_value(r["non_http"].clone()).unwrap();
    let expected: std::collections::BTreeMap<String, usize> = [
        ("binary", k),
        ("http2", k),
        ("incomplete", 2 * k),
        ("oversized", k),
        ("tls", k),
    ]
    .into_iter()
    .map(|(name, n)| (name.to_owned(), n))
    .collect();
    assert_eq!(non_http, expected);
    // The normal requests beside them, exactly.
    let leak = endpoint(&r, "GET", "/leak");
    let n = 4 * k as i64;
    assert_eq!(leak["requests"], n, "{leak:#}");
    assert_eq!(leak["statuses"]["200"], n, "{leak:#}");
    assert_eq!(leak["vm_mapped_bytes"], n * 256 * 1024, "{leak:#}");
    assert_eq!(leak["vm_retained_bytes"], n * 256 * 1024, "{leak:#}");
    assert_eq!(r["requests"], n, "{:#}", r["endpoints"]);
}

/// One request for `/leak` on a new connection: half-closed after it, or closed after the
/// answer.
fn send_keepalive_or_half(port: u16, request: &[u8], half_close: bool) -> Vec<u8> {
    if half_close {
        return send(port, request, true);
    }
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(request).unwrap();
    let status = read_response(&mut s);
    format!("HTTP/1.1 {status}").into_bytes()
}
