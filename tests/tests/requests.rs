//! Issue: see the requests. HTTP captured from the target's sockets, attributed per request.

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    process::Command,
    time::Duration,
};

use memwatch_tests::{
    Running, endpoint, http_get, nginx, python_server, read_response, report, tempdir,
};

const T: Duration = Duration::from_secs(120);

fn attach(pid: u32, out: &std::path::Path) -> Running {
    let pid = pid.to_string();
    let mut rec = Running::start(&["record", "-p", &pid, "-o", out.to_str().unwrap()]);
    rec.wait_recording(T);
    rec
}

fn stop(rec: Running) {
    // Give the last responses' boundaries a moment to reach the ring buffer.
    std::thread::sleep(Duration::from_millis(300));
    rec.signal(libc::SIGINT);
    let done = rec.wait(T);
    assert_eq!(done.code(), 0, "{}", done.stderr);
}

#[test]
fn python_threading_server_exact_counts() {
    let server = python_server();
    let dir = tempdir();
    let out = dir.path().join("py.db");
    let rec = attach(server.pid(), &out);
    let port = server.port;
    let clients: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let mut codes = Vec::new();
                for _ in 0..15 {
                    codes.push(http_get(port, "/hello?x=1"));
                }
                for _ in 0..5 {
                    codes.push(http_get(port, "/missing"));
                }
                codes
            })
        })
        .collect();
    for c in clients {
        let codes = c.join().unwrap();
        assert_eq!(codes.iter().filter(|&&c| c == 200).count(), 15);
        assert_eq!(codes.iter().filter(|&&c| c == 404).count(), 5);
    }
    stop(rec);
    let r = report(&out);
    assert_eq!(r["requests"], 80, "{:#}", r["endpoints"]);
    let hello = endpoint(&r, "GET", "/hello");
    assert_eq!(hello["requests"], 60);
    assert_eq!(hello["statuses"]["200"], 60);
    let missing = endpoint(&r, "GET", "/missing");
    assert_eq!(missing["requests"], 20);
    assert_eq!(missing["statuses"]["404"], 20);
    assert_eq!(
        r["non_http"].as_object().unwrap().len(),
        0,
        "{:#}",
        r["non_http"]
    );
    assert_eq!(r["dropped_events"], 0);
}

#[test]
fn pipelined_requests_are_three_requests() {
    let server = python_server();
    let dir = tempdir();
    let out = dir.path().join("pipe.db");
    let rec = attach(server.pid(), &out);
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.write_all(
        b"GET /hello/1 HTTP/1.1\r\nHost: a\r\n\r\nGET /hello/2 HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /missing/3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert_eq!(resp.matches("HTTP/1.1 ").count(), 3);
    drop(s);
    stop(rec);
    let r = report(&out);
    assert_eq!(r["requests"], 3, "{:#}", r["endpoints"]);
    assert_eq!(endpoint(&r, "GET", "/hello/{id}")["statuses"]["200"], 2);
    assert_eq!(endpoint(&r, "GET", "/missing/{id}")["statuses"]["404"], 1);
}

#[test]
fn hostile_bytes_are_counted_and_tracing_goes_on() {
    let server = python_server();
    let dir = tempdir();
    let out = dir.path().join("hostile.db");
    let rec = attach(server.pid(), &out);
    let port = server.port;
    let send = |bytes: &[u8]| {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let _ = s.write_all(bytes);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    };
    // A TLS 1.2 ClientHello (record header, handshake header, version, random).
    let mut hello = vec![
        0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00, 0x00, 0xc4, 0x03, 0x03,
    ];
    hello.extend((0..32).map(|i| i as u8));
    send(&hello);
    // 64 KiB of random bytes (xorshift), starting with a control byte.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut random = vec![0x01u8];
    while random.len() < 64 * 1024 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        random.push(x as u8);
    }
    send(&random);
    // A 16 KiB URL: the request line is longer than the capture.
    let long = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(16 * 1024));
    send(long.as_bytes());
    // A request line split byte by byte across reads.
    {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_nodelay(true).unwrap();
        for b in b"GET /split HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" {
            s.write_all(&[*b]).unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        assert!(resp.starts_with("HTTP/1.1 404"), "{resp}");
    }
    assert_eq!(http_get(port, "/hello/after"), 200);
    stop(rec);
    let r = report(&out);
    let non_http = &r["non_http"];
    assert_eq!(non_http["tls"], 1, "{non_http:#}");
    assert_eq!(non_http["binary"], 1, "{non_http:#}");
    assert_eq!(non_http["oversized"], 1, "{non_http:#}");
    assert_eq!(endpoint(&r, "GET", "/split")["statuses"]["404"], 1);
    assert_eq!(endpoint(&r, "GET", "/hello/after")["statuses"]["200"], 1);
    assert_eq!(r["requests"], 2, "{:#}", r["endpoints"]);
}

#[test]
fn attach_mid_flight_catches_open_keepalive_connections() {
    let server = python_server();
    let port = server.port;
    let mut conns: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let get = |s: &mut TcpStream, path: &str| {
        write!(s, "GET {path} HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!(read_response(s), 200);
    };
    for s in &mut conns {
        get(s, "/hello/before");
    }
    let dir = tempdir();
    let out = dir.path().join("mid.db");
    let rec = attach(server.pid(), &out);
    for s in &mut conns {
        get(s, "/hello/during");
        get(s, "/hello/during");
    }
    drop(conns);
    stop(rec);
    let r = report(&out);
    assert_eq!(r["requests"], 6, "{:#}", r["endpoints"]);
    assert_eq!(endpoint(&r, "GET", "/hello/during")["requests"], 6);
    // Each connection keeps one number: three connections of two requests each.
    assert_eq!(requests_per_conn(&out), vec![2, 2, 2]);
}

/// A thread-per-connection server answers each request from the thread that read it, so the
/// kernel side folds each response's start into the connection's next event. Requests whose
/// connection is still open and idle when memwatch stops have no next event: their starts are
/// read from the kernel's map at stop, and each request keeps its status and first byte.
#[test]
fn requests_idle_on_open_connections_at_stop_keep_their_status() {
    let server = python_server();
    let port = server.port;
    let dir = tempdir();
    let out = dir.path().join("idle.db");
    let rec = attach(server.pid(), &out);
    let mut conns: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    for (s, path, status) in [
        (0, "/hello/1", 200),
        (1, "/missing/2", 404),
        (0, "/hello/3", 200),
        (1, "/hello/4", 200),
    ] {
        write!(conns[s], "GET {path} HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut conns[s]), status);
    }
    // Both connections stay open and idle while memwatch stops.
    stop(rec);
    drop(conns);
    let db = rusqlite::Connection::open(&out).unwrap();
    let mut stmt = db
        .prepare(
            "SELECT target, status, first_byte_ns IS NOT NULL AND first_byte_ns >= start_ns \
             FROM requests ORDER BY start_ns",
        )
        .unwrap();
    let rows: Vec<(String, Option<i64>, bool)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let expected = [
        ("/hello/1", 200),
        ("/missing/2", 404),
        ("/hello/3", 200),
        ("/hello/4", 200),
    ]
    .map(|(t, s)| (t.to_owned(), Some(s), true));
    assert_eq!(rows, expected);
}

/// Requests on each connection number, sorted.
fn requests_per_conn(file: &std::path::Path) -> Vec<i64> {
    let db = rusqlite::Connection::open(file).unwrap();
    let mut stmt = db
        .prepare("SELECT COUNT(*) AS n FROM requests GROUP BY conn ORDER BY n")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn ab(port: u16, keepalive: bool) {
    let url = format!("http://127.0.0.1:{port}/");
    let mut cmd = Command::new("ab");
    cmd.args(["-q", "-n", "2000", "-c", "8"]);
    if keepalive {
        cmd.arg("-k");
    }
    let out = cmd.arg(&url).output().expect("ab (apache2-utils)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Complete requests:      2000"), "{text}");
    assert!(text.contains("Failed requests:        0"), "{text}");
}

#[test]
fn nginx_under_ab_exact_counts() {
    for keepalive in [false, true] {
        let dir = tempdir();
        let server = nginx(dir.path());
        // Attach to the master after its workers are up, as an operator would.
        let out = dir.path().join("nginx.db");
        let rec = attach(server.pid(), &out);
        ab(server.port, keepalive);
        stop(rec);
        let r = report(&out);
        let root = endpoint(&r, "GET", "/");
        assert_eq!(
            root["requests"], 2000,
            "keepalive={keepalive}: {:#}",
            r["endpoints"]
        );
        assert_eq!(root["statuses"]["200"], 2000);
        assert_eq!(r["requests"], 2000);
        assert_eq!(r["dropped_events"], 0);
        // One connection per request, or ab's 8 kept-alive connections.
        let per_conn = requests_per_conn(&out);
        if keepalive {
            assert_eq!(per_conn.len(), 8, "{per_conn:?}");
            assert_eq!(per_conn.iter().sum::<i64>(), 2000);
        } else {
            assert_eq!(per_conn, vec![1; 2000]);
        }
        let workers = r["processes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["origin"] == "descendant")
            .count();
        assert_eq!(workers, 2, "{:#}", r["processes"]);
    }
}
