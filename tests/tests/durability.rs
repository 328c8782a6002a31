//! Reliability tests (issue 15); see docs/reliability.md. Scaled by `memwatch_tests::scaled`:
//! short under `cargo xtask test`, long under `cargo xtask stress`.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::TcpStream,
    path::Path,
    process::{Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use memwatch::units::NS_PER_SEC;
use memwatch_tests::{bin, memwatch, report, scaled, start_server, tempdir};

/// Wall-clock nanoseconds since the epoch: the clock of the recording's timestamps.
fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// splitmix64: a seeded sequence, so that a failing run can be repeated with `MEMWATCH_SEED`.
struct Rng(u64);

impl Rng {
    fn seeded() -> (Self, u64) {
        let seed = std::env::var("MEMWATCH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| now_ns() as u64);
        (Self(seed), seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One request the load generator completed: its number (sent as `/?n=N`), when it was sent
/// and when its whole response had come back (the server had closed the connection).
#[derive(Debug, Clone, Copy)]
struct Done {
    n: u64,
    sent_ns: i64,
    done_ns: i64,
}

/// A steady load on `/?n=N` from a few clients, one connection per request, each request
/// numbered and timed by the clients themselves: the generator's own count.
struct Load {
    stop: Arc<AtomicBool>,
    done: Arc<Mutex<Vec<Done>>>,
    failed: Arc<AtomicU64>,
    clients: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(port: u16, clients: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(Mutex::new(Vec::new()));
        let failed = Arc::new(AtomicU64::new(0));
        let next = Arc::new(AtomicU64::new(1));
        let clients = (0..clients)
            .map(|_| {
                let (stop, done, failed, next) = (
                    Arc::clone(&stop),
                    Arc::clone(&done),
                    Arc::clone(&failed),
                    Arc::clone(&next),
                );
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        let sent_ns = now_ns();
                        if get(port, n) {
                            let done_ns = now_ns();
                            done.lock().unwrap().push(Done {
                                n,
                                sent_ns,
                                done_ns,
                            });
                        } else {
                            failed.fetch_add(1, Ordering::Relaxed);
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    }
                })
            })
            .collect();
        Self {
            stop,
            done,
            failed,
            clients,
        }
    }

    /// The requests completed since the last call.
    fn take(&self) -> Vec<Done> {
        std::mem::take(&mut *self.done.lock().unwrap())
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for c in self.clients.drain(..) {
            let _ = c.join();
        }
    }
}

/// `GET /?n=N` on a connection of its own; true when a whole 200 response came back.
fn get(port: u16, n: u64) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET /?n={n} HTTP/1.1\r\nHost: load\r\nConnection: close\r\n\r\n");
    if s.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut response = Vec::new();
    s.read_to_end(&mut response).is_ok()
        && response.starts_with(b"HTTP/1.1 200")
        && response.ends_with(b"ok\n")
}

/// `memwatch record -p PID -o OUT`, started now; notes when it says it is recording.
struct Recorder {
    child: std::process::Child,
    /// The recording's path.
    out: std::path::PathBuf,
    recording_ns: Arc<Mutex<Option<i64>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    fn start(pid: u32, out: &Path) -> Self {
        Self::start_limited(pid, out, None)
    }

    /// With `file_size_limit`, memwatch runs under that RLIMIT_FSIZE (`ulimit -f`), with
    /// SIGXFSZ ignored, so that a write past it fails with EFBIG instead of killing it.
    fn start_limited(pid: u32, out: &Path, file_size_limit: Option<u64>) -> Self {
        use std::os::unix::process::CommandExt as _;
        let mut cmd = Command::new(memwatch());
        cmd.args(["record", "-p", &pid.to_string(), "-o"])
            .arg(out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(limit) = file_size_limit {
            // SAFETY: between fork and exec only async-signal-safe calls: signal, setrlimit.
            unsafe {
                cmd.pre_exec(move || {
                    libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                    let lim = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: limit,
                    };
                    if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let mut child = cmd.spawn().expect("start memwatch");
        let recording_ns = Arc::new(Mutex::new(None));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (seen, lines) = (Arc::clone(&recording_ns), Arc::clone(&stderr));
        let pipe = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if line.contains("memwatch: recording") {
                    seen.lock().unwrap().get_or_insert(now_ns());
                }
                lines.lock().unwrap().push(line);
            }
        });
        Self {
            child,
            out: out.to_owned(),
            recording_ns,
            stderr,
        }
    }

    /// Waits up to `patience` for memwatch to say it is recording; returns early if it exits.
    fn wait_recording(&mut self, patience: Duration) {
        let deadline = Instant::now() + patience;
        while self.recording_ns.lock().unwrap().is_none()
            && Instant::now() < deadline
            && self.child.try_wait().unwrap().is_none()
        {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// How a recording that stopped by itself on a write error ended.
struct Stopped {
    stderr: String,
    /// When memwatch said it was recording.
    recording_ns: i64,
    /// What the load generator completed.
    completed: Vec<Done>,
    /// When memwatch was seen to have exited.
    exit_ns: i64,
}

impl Recorder {
    /// Waits (calling `tick` every 10 ms) for memwatch to stop by itself within `patience`,
    /// then stops `load`. Asserts exit code 5, a message with each of `says`, that recording
    /// stopped and how to read what was recorded, and no panic.
    fn stopped_by_write_error(
        mut self,
        load: Load,
        patience: Duration,
        says: &[&str],
        mut tick: impl FnMut(),
    ) -> Stopped {
        let deadline = Instant::now() + patience;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            tick();
            assert!(
                Instant::now() < deadline,
                "memwatch did not stop within {patience:?}: {:?}",
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        let exit_ns = now_ns();
        std::thread::sleep(Duration::from_millis(50));
        let completed = load.take();
        drop(load);
        let stderr = self.stderr.lock().unwrap().join("\n");
        let recording_ns = self.recording_ns.lock().unwrap().expect("it recorded");
        assert_eq!(status.code(), Some(5), "{stderr}");
        let report_it = format!("memwatch report {}", self.out.display());
        for said in says
            .iter()
            .copied()
            .chain(["recording stopped", &report_it])
        {
            assert!(stderr.contains(said), "{said:?} not in: {stderr}");
        }
        assert!(!stderr.contains("panicked"), "{stderr}");
        Stopped {
            stderr,
            recording_ns,
            completed,
            exit_ns,
        }
    }
}

/// Readable up to the last commit: of the requests the clients completed from the start of the
/// recording at `recording_ns` to half a second before its last commit at `ended_ns`, how many
/// the recording at `out` lacks, and how many there were (asserted to be some).
fn missing_before_last_commit(
    out: &Path,
    completed: &[Done],
    recording_ns: i64,
    ended_ns: i64,
) -> (usize, usize) {
    let recorded = recorded_numbers(out);
    let before: Vec<&Done> = completed
        .iter()
        .filter(|d| d.sent_ns > recording_ns && d.done_ns < ended_ns - 500_000_000)
        .collect();
    assert!(!before.is_empty(), "the clients completed requests");
    let missing = before.iter().filter(|d| !recorded.contains(&d.n)).count();
    (missing, before.len())
}

/// What one SIGKILL cost.
#[derive(Debug)]
struct Loss {
    /// Requests the clients completed between "recording" and the kill that the recording
    /// lacks.
    requests: usize,
    /// Of the requests the clients completed in that span.
    of: usize,
    /// From the first lost request's completion to the kill (0 when none was lost).
    window_s: f64,
    /// From the recording's last committed row (the report's `ended_ns`) to the kill.
    tail_s: f64,
}

/// The request numbers a recording holds (`/?n=N` targets).
fn recorded_numbers(file: &Path) -> std::collections::HashSet<u64> {
    let db =
        rusqlite::Connection::open_with_flags(file, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open the recording");
    let mut stmt = db.prepare("SELECT target FROM requests").unwrap();
    stmt.query_map([], |r| r.get::<_, Option<String>>(0))
        .unwrap()
        .filter_map(|t| t.unwrap()?.strip_prefix("/?n=")?.parse().ok())
        .collect()
}

fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => f64::midpoint(sorted[n / 2 - 1], sorted[n / 2]),
    }
}

/// Issue 15: "Record a busy server and SIGKILL memwatch at 100 random instants. Every recording
/// must open and report. Measure the largest loss, in requests and in seconds, against the load
/// generator's own count. The goal is 1 second or less."
///
/// A quarter of the instants fall in memwatch's first 400 ms (loading, attaching, creating the
/// file: start-up takes 60 to 200 ms here when idle, and 0.4 to 2.3 s beside another test's
/// load), the rest anywhere in the 3.6 s after it says it is recording, so that most land
/// while it records however long its start took. (They were drawn from its first 4 s, and
/// with a start of a second or two fewer than half landed while it recorded.) Killed before
/// the recording exists, memwatch must leave no file at all; killed later, a file that reports.
#[test]
fn killed_at_any_instant() {
    let instants = scaled(20, 100);
    let (mut rng, seed) = Rng::seeded();
    println!("killed_at_any_instant: {instants} instants, MEMWATCH_SEED={seed}");
    let demo = start_server(Command::new(bin("memwatch-demo")).arg("--quiet"));
    let load = Load::start(demo.port, 2);
    let dir = tempdir();
    let mut losses: Vec<Loss> = Vec::new();
    let mut before_recording = 0;
    for i in 0..instants {
        let out = dir.path().join(format!("killed-{i}.db"));
        let early = i % 4 == 0;
        let delay = Duration::from_millis(if early {
            rng.below(400)
        } else {
            rng.below(3600)
        });
        let started = Instant::now();
        let mut rec = Recorder::start(demo.pid(), &out);
        if early {
            std::thread::sleep(delay.saturating_sub(started.elapsed()));
        } else {
            rec.wait_recording(Duration::from_secs(60));
            std::thread::sleep(delay);
        }
        rec.child.kill().expect("SIGKILL memwatch");
        let kill_ns = now_ns();
        rec.child.wait().expect("reap memwatch");
        // The clients' requests that were under way at the kill come back meanwhile.
        std::thread::sleep(Duration::from_millis(50));
        let completed = load.take();
        let recording_ns = *rec.recording_ns.lock().unwrap();
        let stderr = rec.stderr.lock().unwrap().join("\n");
        if !out.exists() {
            assert!(
                recording_ns.is_none(),
                "instant {i} ({delay:?}): memwatch said it was recording, yet left no file: \
                 {stderr}"
            );
            before_recording += 1;
            println!("instant {i}: killed after {delay:?}, before the recording existed");
            continue;
        }
        let r = report(&out);
        let Some(recording_ns) = recording_ns else {
            // Killed between creating the file and saying so: it reports, nothing to measure.
            println!("instant {i}: killed after {delay:?}, as the recording began");
            continue;
        };
        let recorded = recorded_numbers(&out);
        let eligible: Vec<&Done> = completed
            .iter()
            .filter(|d| d.sent_ns > recording_ns && d.done_ns < kill_ns)
            .collect();
        let lost: Vec<&Done> = eligible
            .iter()
            .copied()
            .filter(|d| !recorded.contains(&d.n))
            .collect();
        let first_lost = lost.iter().map(|d| d.done_ns).min();
        let ended_ns = r["ended_ns"].as_i64().expect("ended_ns");
        let loss = Loss {
            requests: lost.len(),
            of: eligible.len(),
            window_s: first_lost.map_or(0.0, |t| (kill_ns - t) as f64 / NS_PER_SEC as f64),
            tail_s: (kill_ns - ended_ns) as f64 / NS_PER_SEC as f64,
        };
        assert_eq!(
            r["complete"], false,
            "instant {i}: a killed recording is incomplete"
        );
        println!(
            "instant {i}: killed after {delay:?}: {} of {} requests lost, window {:.3} s, \
             last committed row {:.3} s before the kill",
            loss.requests, loss.of, loss.window_s, loss.tail_s
        );
        losses.push(loss);
    }
    let failed = load.failed.load(Ordering::Relaxed);
    drop(load);
    let mut windows: Vec<f64> = losses.iter().map(|l| l.window_s).collect();
    windows.sort_by(f64::total_cmp);
    let mut tails: Vec<f64> = losses.iter().map(|l| l.tail_s).collect();
    tails.sort_by(f64::total_cmp);
    let max_requests = losses.iter().map(|l| l.requests).max().unwrap_or(0);
    let mut lost_requests: Vec<f64> = losses.iter().map(|l| l.requests as f64).collect();
    lost_requests.sort_by(f64::total_cmp);
    let served: usize = losses.iter().map(|l| l.of).sum();
    println!(
        "killed_at_any_instant (MEMWATCH_SEED={seed}): {instants} kills, {} while recording, \
         {before_recording} before the recording existed; {served} requests completed while \
         recording, {failed} client failures. Lost requests per kill: max {max_requests}, \
         median {}. Loss window: max {:.3} s, median {:.3} s. Last committed row before the \
         kill: max {:.3} s, median {:.3} s",
        losses.len(),
        median(&lost_requests),
        windows.last().copied().unwrap_or(0.0),
        median(&windows),
        tails.last().copied().unwrap_or(0.0),
        median(&tails),
    );
    let strays: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with("killed-"))
        .collect();
    assert!(
        strays.is_empty(),
        "files left beside the recordings: {strays:?}"
    );
    assert!(
        losses.len() >= instants / 2,
        "most kills must land while recording: {} of {instants}",
        losses.len()
    );
    assert!(
        served > 0,
        "the clients completed no request while recording"
    );
    for (name, worst) in [("loss window", &windows), ("last committed row", &tails)] {
        let worst = worst.last().copied().unwrap_or(0.0);
        assert!(
            worst <= 1.0,
            "{name}: {worst:.3} s, over the 1 s goal (MEMWATCH_SEED={seed})"
        );
    }
}

/// A tmpfs mounted on a fresh directory with mount `options`, unmounted when dropped.
struct Tmpfs {
    mount: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(options: &str) -> Self {
        let dir = tempdir();
        let mount = dir.path().join("disk");
        std::fs::create_dir(&mount).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "memwatch-test"])
            .arg(&mount)
            .status()
            .expect("mount");
        assert!(status.success(), "mount -t tmpfs -o {options} failed");
        Self { mount, _dir: dir }
    }

    fn path(&self) -> &Path {
        &self.mount
    }

    /// Bytes free on it.
    fn free(&self) -> u64 {
        use std::os::unix::ffi::OsStrExt as _;
        let c = std::ffi::CString::new(self.mount.as_os_str().as_bytes()).unwrap();
        // SAFETY: all-zero is a valid statvfs, filled from a NUL-terminated path.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
        st.f_bavail * st.f_frsize
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

/// Issue 15: "The disk fills up during a recording (use a small tmpfs): a clear error, a
/// documented exit code, and a recording readable up to that point."
///
/// A busy server is recorded onto a small tmpfs until it fills. memwatch must stop by itself,
/// promptly, with exit 5 and a message naming the file and the full disk; the recording must be
/// one file (the write-ahead log folded in with the space memwatch held in reserve) that
/// reports, says why it stopped and how many rows it lacks, and holds every request completed
/// before its last commit.
#[test]
fn disk_full() {
    let mib = scaled(24, 96);
    let disk = Tmpfs::mount(&format!("size={mib}m"));
    let out = disk.path().join("full.db");
    let demo = start_server(Command::new(bin("memwatch-demo")).arg("--quiet"));
    let load = Load::start(demo.port, 2);
    let wal = disk.path().join("full.db-wal");
    let rec = Recorder::start(demo.pid(), &out);
    // When the write-ahead log was last seen, and when it was first seen gone: the recording
    // was closed then (folded into one file).
    let (mut wal_seen, mut closed_ns) = (false, None);
    let Stopped {
        stderr,
        recording_ns,
        completed,
        exit_ns,
    } = rec.stopped_by_write_error(
        load,
        Duration::from_secs(scaled(120, 600)),
        &[
            &format!("the disk holding the recording {} is full", out.display()),
            "No space left on device",
        ],
        || {
            if wal.exists() {
                wal_seen = true;
            } else if wal_seen && closed_ns.is_none() {
                closed_ns = Some(now_ns());
            }
        },
    );
    // One file: the write-ahead log was folded in, and nothing else is left on the disk.
    let mut files: Vec<String> = std::fs::read_dir(disk.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["full.db"], "{stderr}");
    let size = std::fs::metadata(&out).unwrap().len();
    let free = disk.free();
    // Read on a disk that is full again: reading needs no room.
    let mut filler = std::fs::File::create(disk.path().join("filler")).unwrap();
    while filler.write_all(&[0u8; 1 << 16]).is_ok() {}
    assert!(disk.free() < 1 << 16, "the disk is full again");

    let r = report(&out);
    assert_eq!(r["complete"], false);
    assert_eq!(r["stop_reason"], "disk_full");
    let unwritten = r["unwritten_rows"].as_u64().unwrap();
    assert!(unwritten > 0, "the failed batch's rows are counted");
    let requests = r["requests"].as_u64().unwrap();
    let ended_ns = r["ended_ns"].as_i64().unwrap();
    // memwatch exits within milliseconds of closing the recording now that its probes are
    // detached in the background: when the 10 ms polls did not catch the log gone before the
    // exit, it was closed by the exit at the latest (it is gone: asserted above).
    assert!(wal_seen, "the write-ahead log was never seen: {stderr}");
    let closed_ns = closed_ns.unwrap_or(exit_ns);
    let close_s = (closed_ns - ended_ns) as f64 / NS_PER_SEC as f64;
    let exit_s = (exit_ns - ended_ns) as f64 / NS_PER_SEC as f64;
    let (missing, before) = missing_before_last_commit(&out, &completed, recording_ns, ended_ns);
    println!(
        "disk_full: a {mib} MiB tmpfs filled after {:.1} s of recording; the recording is {:.1} \
         MiB and holds {requests} requests; {unwritten} rows were not written; it was closed \
         {close_s:.3} s after its last committed row, and memwatch exited after {exit_s:.3} s; \
         {} MiB free afterwards, then filled again to read it",
        (ended_ns - recording_ns) as f64 / NS_PER_SEC as f64,
        size as f64 / 1048576.0,
        free / 1048576
    );
    assert_eq!(
        missing, 0,
        "requests completed before the last commit are missing: {missing} of {before}"
    );
    assert!(
        close_s <= 1.5,
        "the recording was closed {close_s:.3} s after its last committed row"
    );
}

/// A write that fails for another reason than a full disk. The file-size limit (`ulimit -f`)
/// makes writes past it fail with EFBIG, which SQLite reports as an I/O error: memwatch stops
/// with exit code 5 and says so, and the recording reads back with every request committed
/// before.
#[test]
fn write_failed() {
    // Above the 8 MiB disk reserve, which the limit applies to as well.
    let limit: u64 = 10 << 20;
    let dir = tempdir();
    let out = dir.path().join("limited.db");
    let demo = start_server(Command::new(bin("memwatch-demo")).arg("--quiet"));
    let load = Load::start(demo.port, 2);
    let rec = Recorder::start_limited(demo.pid(), &out, Some(limit));
    let Stopped {
        stderr,
        recording_ns,
        completed,
        exit_ns: _,
    } = rec.stopped_by_write_error(
        load,
        Duration::from_secs(300),
        &[
            &format!("writing the recording {} failed", out.display()),
            "disk I/O error",
        ],
        || {},
    );
    for file in std::fs::read_dir(dir.path()).unwrap() {
        let file = file.unwrap();
        let len = file.metadata().unwrap().len();
        assert!(len <= limit, "{:?} is {len} bytes", file.file_name());
    }

    let r = report(&out);
    assert_eq!(r["complete"], false);
    // Why it stopped and what it lost are in the file as well as on stderr. (Folding the
    // write-ahead log in fails at the limit, so its -wal file stays beside the recording.)
    assert_eq!(r["stop_reason"], "write_failed", "{stderr}");
    let unwritten = r["unwritten_rows"].as_u64().unwrap();
    assert!(unwritten > 0, "the failed batch's rows are counted");
    assert!(
        stderr.contains(&format!(
            "({unwritten} rows captured after that were not written)"
        )),
        "{stderr}"
    );
    let requests = r["requests"].as_u64().unwrap();
    let ended_ns = r["ended_ns"].as_i64().unwrap();
    let (missing, before) = missing_before_last_commit(&out, &completed, recording_ns, ended_ns);
    println!(
        "write_failed: stopped at the {} MiB file-size limit after {:.1} s of recording, with \
         {requests} requests; {unwritten} rows were not written",
        limit >> 20,
        (ended_ns - recording_ns) as f64 / NS_PER_SEC as f64,
    );
    assert_eq!(missing, 0, "{missing} of {before} requests missing");
}

/// `memwatch ARGS` under strace: the bpf() calls it made (none means nothing was loaded).
fn bpf_calls(args: &[&str]) -> usize {
    let dir = tempdir();
    let trace = dir.path().join("trace");
    let status = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=bpf", "-o"])
        .arg(&trace)
        .arg(memwatch())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("strace");
    assert!(status.code().is_some(), "memwatch under strace: {status}");
    std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .filter(|l| l.contains("bpf("))
        .count()
}

/// A directory with the immutable attribute (`chattr +i`), which even root cannot create files
/// in; the attribute is removed when dropped.
struct Immutable(std::path::PathBuf);

impl Immutable {
    fn new(path: std::path::PathBuf) -> Self {
        std::fs::create_dir(&path).unwrap();
        let status = Command::new("chattr").arg("+i").arg(&path).status();
        assert!(status.expect("chattr").success(), "chattr +i failed");
        Self(path)
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

/// A child process killed when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Issue 15: "Output directory read-only or missing: refused up front, before anything is
/// loaded." A missing directory, a read-only filesystem, an immutable directory (root ignores
/// permission bits, not attributes), a directory given as the file, and the same for
/// `--pprof-dir`: each is refused with exit 2, a message that names the path, says what is
/// wrong and what to do, at once, and without a single bpf() call. An unprivileged user is told
/// about the directory, not about privileges: the output is checked before the environment.
#[test]
fn output_directory_refused_before_loading() {
    let target = Child(Command::new("sleep").arg("30").spawn().unwrap());
    let pid = target.0.id().to_string();
    let ro = Tmpfs::mount("ro,size=1m");
    let ro_file = ro.path().join("x.db");
    let scratch = tempdir();
    let guard = Immutable::new(scratch.path().join("immutable"));
    let immutable = guard.0.clone();
    let immutable_file = immutable.join("x.db");
    let missing = scratch.path().join("no-such-dir");
    let missing_file = missing.join("x.db");
    let good = scratch.path().join("good.db");
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    let cases: Vec<(Vec<String>, Vec<String>)> = vec![
        (
            vec!["-o".into(), s(&missing_file)],
            vec![
                format!("cannot write the recording {}", s(&missing_file)),
                format!("its directory {} does not exist", s(&missing)),
                format!("mkdir -p {}", s(&missing)),
            ],
        ),
        (
            vec!["-o".into(), s(&ro_file)],
            vec![
                format!("cannot write the recording {}", s(&ro_file)),
                format!(
                    "its directory {} is on a read-only filesystem",
                    s(ro.path())
                ),
                "Choose an -o path on a writable filesystem".into(),
            ],
        ),
        (
            vec!["-o".into(), s(&immutable_file)],
            vec![
                format!("cannot write the recording {}", s(&immutable_file)),
                format!("may not create files in {}", s(&immutable)),
                "Operation not permitted".into(),
                format!("lsattr -d {}", s(&immutable)),
            ],
        ),
        (
            vec!["-o".into(), s(scratch.path())],
            vec![
                format!("{} is a directory", s(scratch.path())),
                format!("-o {}/memwatch.db", s(scratch.path())),
            ],
        ),
        (
            vec![
                "-o".into(),
                s(&good),
                "--stacks".into(),
                "--pprof-dir".into(),
                s(ro.path()),
            ],
            vec![
                format!("--pprof-dir {}: cannot write there", s(ro.path())),
                "Read-only file system".into(),
                "pick a writable directory".into(),
            ],
        ),
        (
            vec![
                "-o".into(),
                s(&good),
                "--stacks".into(),
                "--pprof-dir".into(),
                s(&missing),
            ],
            vec![format!(
                "--pprof-dir {}: no such directory; create it first",
                s(&missing)
            )],
        ),
    ];
    for (options, says) in &cases {
        let mut args = vec!["record", "-p", &pid];
        args.extend(options.iter().map(String::as_str));
        let says: Vec<&str> = says.iter().map(String::as_str).collect();
        let started = Instant::now();
        memwatch_tests::refused(&args, &says);
        let took = started.elapsed();
        assert!(took < Duration::from_secs(1), "{args:?} took {took:?}");
        assert_eq!(bpf_calls(&args), 0, "{args:?} loaded something");
        println!("refused in {took:?}, no bpf() call: {args:?}");
    }
    assert!(!good.exists(), "nothing is created on refusal");
    // Unprivileged: the directory is what it hears about, not the missing privileges (a
    // directory the unprivileged user can look in: the scratch directory is root's alone).
    let done = memwatch_tests::Running::start_unprivileged(&[
        "record",
        "-p",
        &pid,
        "-o",
        "/nonexistent-memwatch-dir/x.db",
    ])
    .wait(Duration::from_secs(60));
    assert_eq!(done.code(), 2, "{}", done.stderr);
    assert!(
        done.stderr
            .contains("its directory /nonexistent-memwatch-dir does not exist"),
        "{}",
        done.stderr
    );
    // The control: the same run with a good output loads its programs (strace sees them).
    let recorded = bpf_calls(&["record", "-p", &pid, "-o", &s(&good), "--duration", "1"]);
    println!("the control, a real recording, made {recorded} bpf() calls");
    assert!(
        recorded > 0,
        "strace saw no bpf() call from a real recording"
    );
}

/// A Ctrl-C sent the instant memwatch says "Ctrl-C stops" ends the recording cleanly: exit 0,
/// one file, a report. memwatch listens for the signal from before the attach, so none falls
/// between the message and the event loop. (Before, the gap was a few microseconds and these
/// five tries did not hit it; the same gap in `view` and after a recording, with a page, did.)
#[test]
fn ctrl_c_right_after_recording_starts_closes_the_recording() {
    let server = start_server(Command::new(bin("memwatch-demo")).arg("--quiet"));
    for attempt in 0..5 {
        let (_dir, out, rec) = memwatch_tests::start_recording(server.pid(), &[]);
        let done = memwatch_tests::stop_recording(rec);
        let left: Vec<_> = memwatch::recording::files(&out)
            .into_iter()
            .filter(|f| f.exists())
            .collect();
        assert_eq!(
            left,
            vec![out.clone()],
            "attempt {attempt}: {}",
            done.stderr
        );
        assert_eq!(report(&out)["stop_reason"], "signal", "attempt {attempt}");
    }
}
