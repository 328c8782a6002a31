//! Shared harness for the integration tests: where the binaries are, running memwatch with a
//! deadline, and reading its reports.

pub mod runtimes;
pub mod workload;

use std::{
    io::{BufRead as _, BufReader, Read as _},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

pub use serde_json::Value;

/// The memwatch binary under test: `MEMWATCH_BIN` (set by `cargo xtask test`), else the release
/// build in this workspace.
pub fn memwatch() -> PathBuf {
    let path = std::env::var_os("MEMWATCH_BIN").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/memwatch"),
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "memwatch binary not found at {}: run the tests with `cargo xtask test`",
        path.display()
    );
    path
}

/// A binary built from this workspace (fixtures, the demo server), beside memwatch.
pub fn bin(name: &str) -> PathBuf {
    let path = memwatch().with_file_name(name);
    assert!(
        path.is_file(),
        "{} not found: run the tests with `cargo xtask test`",
        path.display()
    );
    path
}

/// The long form of the reliability tests: `cargo xtask stress` sets `MEMWATCH_STRESS=1`.
/// `cargo xtask test` (and CI) runs the same tests short.
pub fn stress() -> bool {
    std::env::var_os("MEMWATCH_STRESS").is_some_and(|v| v == "1")
}

/// `short` under `cargo xtask test`, `long` under `cargo xtask stress`.
pub fn scaled<T>(short: T, long: T) -> T {
    if stress() { long } else { short }
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("memwatch-test-")
        .tempdir()
        .expect("tempdir")
}

/// What a finished command did.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }
}

/// `bin` copied into `dir`, and `dir` opened to everyone (0755 at least), so that an unprivileged
/// user can run it: the checkout, and with it `target/`, may sit in a directory only its owner can
/// enter (a clone inside `mktemp -d`, for example).
pub fn copy_for_anyone(bin: &Path, dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(dir)
        .expect("stat dir")
        .permissions()
        .mode();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o755)).expect("open dir");
    let name = bin.file_name().expect("binary has a name");
    let copy = dir.join(name);
    std::fs::copy(bin, &copy).expect("copy binary");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    copy
}

/// A running memwatch whose stderr is watched line by line.
#[derive(Debug)]
pub struct Running {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Vec<String>,
    /// Holds the copy of memwatch an unprivileged run uses, for as long as it runs.
    _copy: Option<tempfile::TempDir>,
    /// Everything memwatch writes to stdout, read as it comes: a report larger than the pipe
    /// buffer (64 KiB) would otherwise block memwatch before it could exit.
    stdout: Option<std::thread::JoinHandle<String>>,
}

impl Running {
    /// Starts memwatch with `args`.
    pub fn start(args: &[&str]) -> Self {
        Self::spawn(Command::new(memwatch()).args(args))
    }

    /// Starts memwatch with `args` as an unprivileged user (uid and gid 65534), from a copy that
    /// user can run.
    pub fn start_unprivileged(args: &[&str]) -> Self {
        Self::start_as(65534, args)
    }

    /// Starts memwatch with `args` as the unprivileged user `uid` (its group the same number),
    /// from a copy that user can run.
    pub fn start_as(uid: u32, args: &[&str]) -> Self {
        use std::os::unix::process::CommandExt as _;
        let dir = tempdir();
        let bin = copy_for_anyone(&memwatch(), dir.path());
        let mut running = Self::spawn(Command::new(bin).args(args).uid(uid).gid(uid));
        running._copy = Some(dir);
        running
    }

    /// Starts memwatch with `args` and the environment variables `env` set.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(memwatch());
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self::spawn(&mut cmd)
    }

    fn spawn(cmd: &mut Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start memwatch");
        let stdout = child.stdout.take().map(|mut out| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = out.read_to_string(&mut text);
                text
            })
        });
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            stderr: Vec::new(),
            _copy: None,
            stdout,
        }
    }

    /// Waits until memwatch says it is recording (the probes are attached).
    pub fn wait_recording(&mut self, timeout: Duration) {
        self.wait_for("recording", timeout);
    }

    /// Waits for a stderr line containing `needle` and returns it.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(50)) {
                let done = line.contains(needle);
                self.stderr.push(line.clone());
                if done {
                    return line;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "memwatch exited with {status} before {needle:?}: {:?}",
                    self.stderr
                );
            }
        }
        let _ = self.child.kill();
        panic!(
            "memwatch did not print {needle:?} in {timeout:?}: {:?}",
            self.stderr
        );
    }

    /// Waits for the page server's URL line; returns the port.
    pub fn wait_page(&mut self, timeout: Duration) -> u16 {
        let line = self.wait_for("page at http://", timeout);
        line.split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|addr| addr.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"))
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits for memwatch to exit by itself within `timeout`; kills it and panics otherwise.
    pub fn wait(mut self, timeout: Duration) -> Finished {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                let stdout = self
                    .stdout
                    .take()
                    .map(|reader| reader.join().unwrap_or_default())
                    .unwrap_or_default();
                std::thread::sleep(Duration::from_millis(50));
                self.stderr.extend(self.lines.try_iter());
                return Finished {
                    status,
                    stdout,
                    stderr: self.stderr.join("\n"),
                };
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                self.stderr.extend(self.lines.try_iter());
                panic!(
                    "memwatch did not exit within {timeout:?}: {:?}",
                    self.stderr
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    /// A memwatch a test did not wait for (a page server, a failed test) does not outlive it.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs memwatch to completion with a deadline.
pub fn run(args: &[&str], timeout: Duration) -> Finished {
    Running::start(args).wait(timeout)
}

/// Waits (up to a minute) until no `memwatch-detach` is left: memwatch exits at once and leaves
/// the kernel's detach of its probes to that child, whose probes keep trapping and whose
/// detaches hold the kernel's uprobe lock meanwhile. A bench row or a test that measures cost
/// must not measure an earlier run's.
pub fn wait_detached() {
    let lingering = || {
        std::fs::read_dir("/proc").is_ok_and(|dir| {
            dir.flatten().any(|e| {
                std::fs::read_to_string(e.path().join("comm"))
                    .is_ok_and(|c| c.trim_end() == "memwatch-detach")
            })
        })
    };
    let started = std::time::Instant::now();
    while lingering() && started.elapsed() < std::time::Duration::from_secs(60) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// `memwatch record -p PID -o DIR/recording.db OPTIONS ...`, started, and recording; the
/// directory holds the recording until dropped.
pub fn start_recording(pid: u32, options: &[&str]) -> (tempfile::TempDir, PathBuf, Running) {
    let dir = tempdir();
    let out = dir.path().join("recording.db");
    let pid = pid.to_string();
    let mut args = vec![
        "record",
        "-p",
        &pid,
        "-o",
        out.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(options);
    // An earlier test's probes still being detached would disturb this one's calibration and
    // budget.
    wait_detached();
    let mut rec = Running::start(&args);
    rec.wait_recording(Duration::from_secs(60));
    (dir, out, rec)
}

/// Stops a recording with SIGINT, as a user's Ctrl-C, and asserts it exited 0.
pub fn stop_recording(rec: Running) -> Finished {
    rec.signal(libc::SIGINT);
    let done = rec.wait(Duration::from_secs(60));
    assert_eq!(done.code(), 0, "{}", done.stderr);
    done
}

/// `memwatch ARGS` is refused before anything is loaded: exit 2, saying each of `says`.
pub fn refused(args: &[&str], says: &[&str]) {
    let done = run(args, Duration::from_secs(60));
    assert_eq!(done.code(), 2, "{}", done.stderr);
    for s in says {
        assert!(done.stderr.contains(s), "{s:?} not in: {}", done.stderr);
    }
}

/// `memwatch report FILE --format json`, parsed.
pub fn report(file: &Path) -> Value {
    let out = run(
        &[
            "report",
            file.to_str().expect("utf-8 path"),
            "--format",
            "json",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(out.code(), 0, "report failed: {}", out.stderr);
    serde_json::from_str(&out.stdout).expect("report is JSON")
}

/// The `calls` of the `calls_by_size` bucket for `op` and `bytes`, or 0.
pub fn calls_of_size(memory: &Value, op: &str, bytes: i64) -> u64 {
    memory["calls_by_size"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|b| b["op"] == op && b["bytes"] == bytes)
        .and_then(|b| b["calls"].as_u64())
        .unwrap_or(0)
}

/// The per-process memory object of `pid`.
pub fn process_memory(report: &Value, pid: u32) -> Value {
    report["per_process"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["pid"] == pid)
        .map(|p| p["memory"].clone())
        .unwrap_or_else(|| panic!("pid {pid} not in report: {report:#}"))
}

/// `key=value` from a fixture's stdout.
pub fn stdout_value(stdout: &str, key: &str) -> u32 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in {stdout:?}"))
}

pub const MIB: i64 = 1024 * 1024;

/// A server process started by a test, killed (with its process group) when dropped.
#[derive(Debug)]
pub struct Server {
    pub child: Child,
    pub port: u16,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: signalling the process group we created for the server.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// The real Python interpreter (not a version-manager shim, whose PID is not the server's).
pub fn python() -> PathBuf {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 on PATH");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Starts a server that prints its port as the first stdout line.
pub fn start_server(cmd: &mut Command) -> Server {
    use std::os::unix::process::CommandExt as _;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start server");
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    out.read_line(&mut line).expect("port line");
    let port = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut sink = String::new();
        while out.read_line(&mut sink).is_ok_and(|n| n > 0) {
            sink.clear();
        }
    });
    Server { child, port }
}

/// `ab -n N -c C [-k] URL` (apache2-utils), asserting that every request completed.
pub fn ab_load(url: &str, n: u32, concurrency: u32, keepalive: bool) {
    let mut cmd = Command::new("ab");
    cmd.args(["-q", "-n", &n.to_string(), "-c", &concurrency.to_string()]);
    if keepalive {
        cmd.arg("-k");
    }
    let out = cmd.arg(url).output().expect("ab (apache2-utils)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("Complete requests:      {n}")),
        "{text}"
    );
}

/// Waits until something accepts connections on 127.0.0.1:`port`, up to `timeout`.
pub fn wait_until_answering(port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing answers on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Python's ThreadingHTTPServer fixture.
pub fn python_server() -> Server {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pyserver.py");
    start_server(Command::new(python()).arg(script))
}

/// One HTTP/1.1 request on a fresh connection; returns the status code.
pub fn http_get(port: u16, path: &str) -> u16 {
    use std::io::Write as _;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    resp.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `v[key]` as an integer, or a panic that shows `v`.
pub fn int(v: &Value, key: &str) -> i64 {
    v[key]
        .as_i64()
        .unwrap_or_else(|| panic!("{key} missing: {v:#}"))
}

/// The endpoint object for `method route`.
pub fn endpoint<'a>(report: &'a Value, method: &str, route: &str) -> &'a Value {
    report["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["method"] == method && e["route"] == route)
        .unwrap_or_else(|| panic!("no endpoint {method} {route}: {:#}", report["endpoints"]))
}

/// Writes an nginx configuration for `dir` (two workers, a static file, a combined access log
/// at `dir/logs/access.log`, scratch dirs owned by uid 65534) and returns its port.
pub fn nginx_conf(dir: &Path) -> u16 {
    nginx_conf_with(dir, 256)
}

/// [`nginx_conf`] with `connections` per worker (and files for them, and as long a listen
/// backlog): the caller raises its own `nofile` limit first, which nginx inherits.
pub fn nginx_conf_with(dir: &Path, connections: u32) -> u16 {
    use std::os::unix::fs::PermissionsExt as _;
    let port = free_port();
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    std::fs::create_dir_all(dir.join("html")).unwrap();
    std::fs::write(dir.join("html/index.html"), "hello from nginx\n").unwrap();
    let conf = format!(
        "worker_processes 2;\npid {d}/nginx.pid;\nerror_log {d}/logs/error.log;\n\
         worker_rlimit_nofile {files};\nevents {{ worker_connections {connections}; }}\n\
         http {{\n  access_log {d}/logs/access.log combined;\n\
           client_body_temp_path {d}/tmp;\n proxy_temp_path {d}/tmp;\n fastcgi_temp_path {d}/tmp;\n\
           uwsgi_temp_path {d}/tmp;\n scgi_temp_path {d}/tmp;\n\
           server {{ listen 127.0.0.1:{port} backlog={connections}; root {d}/html; \
           location / {{ }} keepalive_requests 1000000; }}\n}}\n",
        d = dir.display(),
        files = connections + 256,
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    for p in [
        dir.to_path_buf(),
        dir.join("logs"),
        dir.join("html"),
        dir.join("tmp"),
    ] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777)).unwrap();
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        // SAFETY: valid path; hand the scratch dirs to the unprivileged user.
        unsafe { libc::chown(c.as_ptr(), 65534, 65534) };
    }
    port
}

/// nginx from the Debian package, unprivileged (uid 65534) on a free loopback port, two
/// workers, serving a small static file, logging `combined` to `DIR/logs/access.log`.
pub fn nginx(dir: &Path) -> Server {
    nginx_with(dir, 256)
}

/// [`nginx`] with `connections` per worker (see [`nginx_conf_with`]).
pub fn nginx_with(dir: &Path, connections: u32) -> Server {
    use std::os::unix::process::CommandExt as _;
    let port = nginx_conf_with(dir, connections);
    // nginx prints nothing; the port line comes from a wrapper shell.
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        &format!(
            "echo {port}; exec /usr/sbin/nginx -p {d} -c {d}/nginx.conf -g 'daemon off;'",
            d = dir.display()
        ),
    ])
    .uid(65534)
    .gid(65534);
    let server = start_server(&mut cmd);
    // Ready when it answers.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

/// Reads one whole HTTP/1.1 response from a keep-alive connection (head, then Content-Length
/// bytes of body) and returns its status code.
pub fn read_response(s: &mut std::net::TcpStream) -> u16 {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).expect("read response");
        assert!(n > 0, "connection closed before a whole response");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some(end) = text.find("\r\n\r\n") {
            let len: usize = text[..end]
                .lines()
                .find_map(|l| {
                    let l = l.to_ascii_lowercase();
                    l.strip_prefix("content-length:")
                        .map(|v| v.trim().to_owned())
                })
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                return text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
            }
        }
    }
}

/// A GET on loopback: (status, raw headers, body).
pub fn http(port: u16, path: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    use std::io::Write as _;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut req = format!("GET {path} HTTP/1.1\r\nConnection: close\r\n");
    // The Host a browser on this machine sends, unless the test names another.
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("send");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read");
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let status = head.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_owned())
}

/// A GET whose body is JSON.
pub fn http_json(port: u16, path: &str) -> (u16, Value) {
    let (status, _, body) = http(port, path, &[]);
    let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body:?}"));
    (status, value)
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `n` keep-alive GETs of `path` on one connection.
pub fn hit(port: u16, path: &str, n: usize) {
    use std::io::Write as _;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    for _ in 0..n {
        write!(s, "GET {path} HTTP/1.1\r\nHost: demo\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut s), 200);
    }
}

/// A recording of the demo server in three phases: `/` ×30, `/leak?kb=256` ×12, `/` ×20.
/// Returns the file and the leak phase's bounds in epoch ms.
pub fn phased(dir: &std::path::Path) -> (std::path::PathBuf, i64, i64) {
    let demo = start_server(Command::new(bin("memwatch-demo")).arg("--quiet"));
    let out = dir.join("phased.db");
    let pid = demo.pid().to_string();
    let mut rec = Running::start(&["record", "-p", &pid, "-o", out.to_str().unwrap()]);
    rec.wait_recording(Duration::from_secs(60));
    hit(demo.port, "/", 30);
    std::thread::sleep(Duration::from_millis(700));
    let leak_from = now_ms();
    hit(demo.port, "/leak?kb=256", 12);
    let leak_to = now_ms() + 1;
    std::thread::sleep(Duration::from_millis(700));
    hit(demo.port, "/", 20);
    std::thread::sleep(Duration::from_millis(300));
    rec.signal(libc::SIGINT);
    let done = rec.wait(Duration::from_secs(60));
    assert_eq!(done.code(), 0, "{}", done.stderr);
    (out, leak_from, leak_to)
}
