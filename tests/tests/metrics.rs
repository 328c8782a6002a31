//! Issue 16: `/metrics` for the engines a fleet already runs. A real Prometheus (Debian's
//! package) scrapes `memwatch record --metrics` while the demo server leaks on one route, and a
//! PromQL query through its HTTP API finds that route with the right kept per request; the
//! token and bind rules; periodic pprof files.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use memwatch_tests::{
    Running, Value, ab_load, bin, free_port, refused, start_recording, start_server,
    stop_recording, tempdir,
};

const T: Duration = Duration::from_secs(60);
const KIB: f64 = 1024.0;

/// Debian's Prometheus, scraping `target` every second, its data under `dir`; killed on drop.
struct Prometheus {
    child: Child,
    port: u16,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn start(dir: &std::path::Path, target: &str, token: Option<&str>) -> Self {
        let binary = std::path::Path::new("/usr/bin/prometheus");
        assert!(
            binary.exists(),
            "Debian's prometheus package: run `cargo xtask setup --test`"
        );
        let auth = token.map_or_else(String::new, |t| {
            format!("    authorization:\n      credentials: {t}\n")
        });
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  \
                 - job_name: memwatch\n{auth}    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        memwatch_tests::wait_until_answering(port, T);
        Self { child, port }
    }

    /// An instant PromQL query through the HTTP API: its `data.result`.
    fn query(&self, promql: &str) -> Value {
        let (status, body) = memwatch_tests::http_json(
            self.port,
            &format!("/api/v1/query?query={}", encode(promql)),
        );
        assert_eq!(status, 200, "{body}");
        body["data"]["result"].clone()
    }
}

/// Percent-encodes a query string value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn prometheus_finds_the_leaking_route_by_its_kept_per_request() {
    let demo = start_server(Command::new(bin("memwatch-demo")).arg("--quiet"));
    let metrics = format!("127.0.0.1:{}", free_port());
    let (dir, _out, mut rec) = start_recording(demo.pid(), &["--metrics", &metrics]);
    rec.wait_for("metrics at http://", T);
    let pid = demo.pid();
    let prom = Prometheus::start(dir.path(), &metrics, None);

    let base = format!("http://127.0.0.1:{}", demo.port);
    for _ in 0..2 {
        ab_load(&format!("{base}/leak?kb=256"), 50, 2, false);
        ab_load(&format!("{base}/churn?kb=2048"), 50, 2, false);
    }
    // Wait until Prometheus has scraped every request.
    let deadline = Instant::now() + T;
    loop {
        let r = prom.query(r#"sum(memwatch_route_requests_total{route=~"/leak|/churn"})"#);
        if r[0]["value"][1].as_str() == Some("200") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never saw 200 requests: {r}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let top = prom.query("topk(1, memwatch_route_kept_per_request_bytes)");
    assert_eq!(top[0]["metric"]["route"], "/leak", "{top:#}");
    assert_eq!(top[0]["metric"]["method"], "GET", "{top:#}");
    let kept: f64 = top[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(
        (kept - 256.0 * KIB).abs() <= 0.15 * 256.0 * KIB,
        "kept per request {kept} bytes, truth 262144"
    );
    // The other series are there too.
    let rss = prom.query(&format!(
        "memwatch_process_resident_memory_bytes{{pid=\"{pid}\"}}"
    ));
    let rss: f64 = rss[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(
        rss > 25.0 * 1024.0 * KIB,
        "RSS {rss} after 100 leaks of 256 KiB"
    );
    let dropped = prom.query("memwatch_dropped_events_total");
    assert_eq!(dropped[0]["value"][1], "0", "{dropped:#}");
    let traced = prom.query("memwatch_traced_processes");
    assert_eq!(traced[0]["value"][1], "1", "{traced:#}");
    stop_recording(rec);
}

/// A `/metrics` answer of `port`, with `token` when given: status and body.
fn scrape(port: u16, token: Option<&str>) -> (u16, String) {
    let headers: Vec<(&str, String)> = token
        .map(|t| vec![("Authorization", format!("Bearer {t}"))])
        .unwrap_or_default();
    let refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, body) = memwatch_tests::http(port, "/metrics", &refs);
    (status, body)
}

/// Past `--metrics-max-routes`, routes are summed into `other`, and how many is a series; a
/// token guards `/metrics`; an address other than loopback without a token is refused up front.
#[test]
fn routes_past_the_bound_fold_into_other_and_the_token_guards_metrics() {
    refused(
        &[
            "record",
            "-p",
            "1",
            "--metrics",
            "0.0.0.0:0",
            "-o",
            "/nonexistent/x.db",
        ],
        &[
            "--metrics 0.0.0.0:0 is reachable from other hosts, and what memwatch serves names \
             your routes, requests and processes: pass --metrics-token TOKEN, or listen on \
             127.0.0.1",
        ],
    );
    let demo = start_server(Command::new(bin("memwatch-demo")).arg("--quiet"));
    let port = free_port();
    let (_dir, _out, mut rec) = start_recording(
        demo.pid(),
        &[
            "--metrics",
            &format!("127.0.0.1:{port}"),
            "--metrics-token",
            "s3cret",
            "--metrics-max-routes",
            "2",
        ],
    );
    rec.wait_for("metrics at http://", T);
    let base = format!("http://127.0.0.1:{}", demo.port);
    ab_load(&format!("{base}/leak?kb=64"), 10, 1, false);
    ab_load(&format!("{base}/churn?kb=64"), 5, 1, false);
    for path in ["/x1", "/x2", "/x3"] {
        memwatch_tests::http_get(demo.port, path);
    }
    std::thread::sleep(Duration::from_millis(600));

    assert_eq!(scrape(port, None).0, 401);
    assert_eq!(scrape(port, Some("wrong")).0, 401);
    // /metrics answers only the hosts the user can have meant, token or not.
    let evil = format!("evil.example:{port}");
    let (status, _, body) = memwatch_tests::http(
        port,
        "/metrics",
        &[("Host", &evil), ("Authorization", "Bearer s3cret")],
    );
    assert_eq!(status, 421, "{body}");
    assert!(body.contains("--allow-host"), "{body}");
    let (status, text) = scrape(port, Some("s3cret"));
    assert_eq!(status, 200, "{text}");
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.starts_with("memwatch_route_requests_total")
                || l.starts_with("memwatch_routes_folded")
        })
        .collect();
    let mut sorted = lines.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        vec![
            r#"memwatch_route_requests_total{method="GET",route="/churn"} 5"#,
            r#"memwatch_route_requests_total{method="GET",route="/leak"} 10"#,
            r#"memwatch_route_requests_total{method="other",route="other"} 3"#,
            "memwatch_routes_folded 3",
        ],
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
    stop_recording(rec);
}

/// `--pprof-dir` writes one profile per period, each read by `go tool pprof`; `--pprof-dir`
/// needs `--stacks`, and a missing directory is refused up front.
#[test]
fn periodic_profiles_are_written_one_per_period() {
    refused(&["record", "-p", "1", "--pprof-dir", "/tmp"], &["--stacks"]);
    refused(
        &[
            "record",
            "-p",
            "1",
            "--stacks",
            "--pprof-dir",
            "/nonexistent/profiles",
        ],
        &["--pprof-dir /nonexistent/profiles: no such directory"],
    );
    let demo = start_server(Command::new(bin("memwatch-demo")).arg("--quiet"));
    let dir = tempdir();
    let profiles = dir.path().join("profiles");
    std::fs::create_dir(&profiles).unwrap();
    let (_rec_dir, _out, rec) = start_recording(
        demo.pid(),
        &[
            "--stacks",
            "--pprof-dir",
            profiles.to_str().unwrap(),
            "--pprof-every",
            "1s",
        ],
    );
    let base = format!("http://127.0.0.1:{}", demo.port);
    for _ in 0..3 {
        ab_load(&format!("{base}/leak?kb=256"), 10, 1, false);
        std::thread::sleep(Duration::from_millis(1100));
    }
    stop_recording(rec);

    let mut files: Vec<_> = std::fs::read_dir(&profiles)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    // Consecutive whole-second periods, no temporary file left.
    let periods: Vec<(i64, i64)> = files
        .iter()
        .map(|f| {
            let core = f
                .strip_prefix("memwatch-")
                .and_then(|f| f.strip_suffix(".pb.gz"))
                .unwrap_or_else(|| panic!("{f}"));
            let (a, b) = core.split_once('-').unwrap();
            (a.parse().unwrap(), b.parse().unwrap())
        })
        .collect();
    for w in periods.windows(2) {
        assert_eq!(w[0].1, w[1].0, "{files:?}");
    }
    // Together they hold every /leak byte the recording retained.
    let mut total = 0.0;
    for f in &files {
        let top = Command::new("go")
            .args(["tool", "pprof", "-raw", "-sample_index=retained"])
            .arg(profiles.join(f))
            .output()
            .expect("go (golang-go): run `cargo xtask setup --test`");
        assert!(
            top.status.success(),
            "{}",
            String::from_utf8_lossy(&top.stderr)
        );
        let text = String::from_utf8_lossy(&top.stdout);
        // `-raw` lists each sample as `value: frames`, values in sample-type order.
        for line in text
            .lines()
            .skip_while(|l| !l.starts_with("Samples:"))
            .skip(2)
        {
            if let Some(v) = line
                .split(':')
                .next()
                .and_then(|v| v.split_whitespace().next())
            {
                total += v.parse::<f64>().unwrap_or(0.0);
            }
        }
    }
    assert!(
        total >= 30.0 * 256.0 * KIB,
        "{total} bytes retained in {files:?}"
    );
}

/// `serve` serves `/metrics` with the page (behind the page's token), and one Ctrl-C stops
/// everything, with the summary printed once. (The page held the recording open while it was
/// written, and used to make the final switch out of WAL mode fail: exit 4, "database is
/// locked". The file ends as one file.)
#[test]
fn serve_has_metrics_behind_its_token_and_one_ctrl_c_stops_it() {
    let demo = start_server(Command::new(bin("memwatch-demo")).arg("--quiet"));
    let dir = tempdir();
    let out = dir.path().join("serve.db");
    let pid = demo.pid().to_string();
    let mut serve = Running::start(&[
        "serve",
        "-p",
        &pid,
        "-o",
        out.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--token",
        "pagetoken",
    ]);
    let port = serve.wait_page(T);
    ab_load(
        &format!("http://127.0.0.1:{}/leak?kb=64", demo.port),
        5,
        1,
        false,
    );
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(scrape(port, None).0, 401);
    let (status, text) = scrape(port, Some("pagetoken"));
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains(r#"memwatch_route_requests_total{method="GET",route="/leak"} 5"#),
        "{text}"
    );
    // A page open in a browser holds the stream: it does not hold memwatch.
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    std::io::Write::write_all(
        &mut stream,
        format!("GET /api/stream?token=pagetoken HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let asked = std::time::Instant::now();
    serve.signal(libc::SIGINT);
    let done = serve.wait(T);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
    assert!(!done.stderr.contains("stays up"), "{}", done.stderr);
    assert_eq!(
        done.stdout
            .lines()
            .filter(|l| l.starts_with("recording: "))
            .count(),
        1,
        "the summary once: {}",
        done.stdout
    );
    let left: Vec<_> = memwatch::recording::files(&out)
        .into_iter()
        .filter(|f| f.exists())
        .collect();
    assert_eq!(left, vec![out], "{}", done.stderr);
}

/// Stopped by `--duration`, `serve` prints the summary at once and keeps the page up until
/// Ctrl-C, which then ends it without a second summary.
#[test]
fn serve_keeps_the_page_after_a_recording_that_ended_by_itself() {
    let demo = start_server(Command::new(bin("memwatch-demo")).arg("--quiet"));
    let dir = tempdir();
    let out = dir.path().join("serve.db");
    let pid = demo.pid().to_string();
    let mut serve = Running::start(&[
        "serve",
        "-p",
        &pid,
        "-o",
        out.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--duration",
        "1",
    ]);
    let port = serve.wait_page(T);
    serve.wait_for("the page stays up until Ctrl-C", T);
    let (status, _, body) = memwatch_tests::http(port, "/api/summary", &[]);
    assert_eq!(status, 200, "{body}");
    serve.signal(libc::SIGINT);
    let done = serve.wait(Duration::from_secs(5));
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert_eq!(
        done.stdout
            .lines()
            .filter(|l| l.starts_with("recording: "))
            .count(),
        1,
        "{}",
        done.stdout
    );
}

/// `serve --listen` on an address in use is refused before anything is loaded or recorded
/// (exit 2, the address and who holds it named, no file); so is a non-loopback address
/// without a token, with the rule every listener follows.
#[test]
fn serve_refuses_an_address_it_cannot_have_before_recording() {
    let demo = start_server(Command::new(bin("memwatch-demo")).arg("--quiet"));
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap();
    let dir = tempdir();
    let out = dir.path().join("busy.db");
    let pid = demo.pid().to_string();
    let listen = addr.to_string();
    let done = memwatch_tests::run(
        &[
            "serve",
            "-p",
            &pid,
            "-o",
            out.to_str().unwrap(),
            "--listen",
            &listen,
        ],
        Duration::from_secs(10),
    );
    assert_eq!(done.code(), 2, "{}", done.stderr);
    let me = std::process::id();
    assert!(
        done.stderr.contains(&format!(
            "cannot listen on {addr} (--listen): the address is in use, by pid {me} ("
        )),
        "{}",
        done.stderr
    );
    assert!(!done.stderr.contains("recording"), "{}", done.stderr);
    assert!(!out.exists());
    refused(
        &[
            "serve",
            "-p",
            &pid,
            "-o",
            out.to_str().unwrap(),
            "--listen",
            "0.0.0.0:0",
        ],
        &[
            "--listen 0.0.0.0:0 is reachable from other hosts, and what memwatch serves names \
           your routes, requests and processes: pass --token TOKEN, or listen on 127.0.0.1",
        ],
    );
    assert!(!out.exists());
}
