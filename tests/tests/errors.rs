//! Bad input gets a clear error and a non-zero exit, never a panic.

use std::{os::unix::process::CommandExt as _, process::Command, time::Duration};

use memwatch_tests::{Finished, bin, copy_for_anyone, memwatch, run, tempdir};

const T: Duration = Duration::from_secs(60);

fn assert_error(done: &Finished, code: i32, needles: &[&str]) {
    assert_eq!(done.code(), code, "stderr: {}", done.stderr);
    for n in needles {
        assert!(done.stderr.contains(n), "{n:?} not in: {}", done.stderr);
    }
    assert!(!done.stderr.contains("panicked"), "{}", done.stderr);
}

fn sh(script: &str) -> Finished {
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c", script])
        .env("MW", memwatch())
        .output()
        .expect("unshare");
    Finished {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

#[test]
fn missing_pid() {
    let done = run(&["record", "-p", "4194000", "-o", "/tmp/never.db"], T);
    assert_error(&done, 2, &["no process with PID 4194000", "ps -p 4194000"]);
    assert!(!std::path::Path::new("/tmp/never.db").exists());
}

/// `memwatch record -p $$` from a shell: memwatch is a descendant of its target, and must not
/// be traced or sampled as one (its own memory would land in the target's figures).
#[test]
fn memwatch_is_never_among_its_targets() {
    let dir = tempdir();
    let out = dir.path().join("shell.db");
    let script = format!(
        "\"$MW\" record -p $$ -o {} --duration 1 >/dev/null 2>&1; echo done",
        out.display()
    );
    let done = Command::new("sh")
        .args(["-c", &script])
        .env("MW", memwatch())
        .output()
        .expect("sh");
    assert!(String::from_utf8_lossy(&done.stdout).contains("done"));
    let r = memwatch_tests::report(&out);
    let processes = r["processes"].as_array().expect("processes");
    assert_eq!(processes.len(), 1, "only the shell: {processes:#?}");
    assert_eq!(processes[0]["comm"], "sh", "{processes:#?}");
    assert_eq!(processes[0]["origin"], "attached");
}

#[test]
fn own_pid_is_refused_and_nothing_to_trace() {
    let done = run(&["record"], T);
    assert_error(&done, 2, &["nothing to trace", "-p PID"]);
}

#[test]
fn not_root() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempdir();
    let bin = copy_for_anyone(&memwatch(), dir.path());
    // A directory the unprivileged user may write to: the output is checked first.
    let writable = dir.path().join("out");
    std::fs::create_dir(&writable).unwrap();
    std::fs::set_permissions(&writable, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = Command::new(bin)
        .args(["record", "-p", "1", "--force", "-o"])
        .arg(writable.join("x.db"))
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let done = Finished {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    };
    assert_error(
        &done,
        3,
        &["CAP_BPF", "CAP_PERFMON", "sudo memwatch", "--no-ebpf"],
    );
}

#[test]
fn pid_that_exits_while_attaching() {
    let dir = tempdir();
    let out = dir.path().join("gone.db");
    let mut child = Command::new(bin("memchild"))
        .args(["exit-soon", "300"])
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let done = Command::new(memwatch())
        .args(["record", "-p", &pid, "-o", out.to_str().unwrap()])
        // Test hook: widen the window between the checks and attaching.
        .env("MEMWATCH_DEBUG_ATTACH_DELAY_MS", "1200")
        .output()
        .unwrap();
    let _ = child.wait();
    let done = Finished {
        status: done.status,
        stdout: String::from_utf8_lossy(&done.stdout).into(),
        stderr: String::from_utf8_lossy(&done.stderr).into(),
    };
    assert_error(
        &done,
        2,
        &[&format!(
            "process {pid} exited while memwatch was attaching"
        )],
    );
    assert!(!out.exists(), "no empty recording is left behind");
}

#[test]
fn tracefs_unmounted_is_mounted() {
    let dir = tempdir();
    let out = dir.path().join("t.db");
    let memchild = bin("memchild");
    let done = sh(&format!(
        "umount /sys/kernel/tracing 2>/dev/null; umount /sys/kernel/debug/tracing 2>/dev/null; \
         test ! -d /sys/kernel/tracing/events || exit 99; \
         exec \"$MW\" record -o {} -- {} exit-soon 10",
        out.display(),
        memchild.display()
    ));
    assert_eq!(done.code(), 0, "{}", done.stderr);
}

#[test]
fn tracefs_unavailable() {
    let dir = tempdir();
    let done = sh(&format!(
        "mount -t tmpfs none /sys/kernel || exit 98; exec \"$MW\" record -o {}/t.db -p 1 --force",
        dir.path().display()
    ));
    assert_error(
        &done,
        3,
        &[
            "tracefs is not mounted",
            "mount -t tracefs nodev /sys/kernel/tracing",
        ],
    );
}

#[test]
fn missing_tracepoint() {
    let dir = tempdir();
    let done = sh(&format!(
        "mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null; \
         mount -t tmpfs none /sys/kernel/tracing/events/exceptions || exit 98; \
         exec \"$MW\" record -o {}/t.db -p 1 --force",
        dir.path().display()
    ));
    assert_error(&done, 3, &["no tracepoint exceptions:page_fault_user"]);
}

/// Replaces, in a private mount namespace, the format file of tracepoint `dir` (under
/// events/) with its real text edited by the sed expression `edit`, then records.
fn record_with_format(dir: &str, edit: &str) -> Finished {
    let tmp = tempdir();
    sh(&format!(
        "mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null; \
         d=/sys/kernel/tracing/events/{dir}; \
         sed '{edit}' $d/format > {tmp}/format || exit 97; \
         mount -t tmpfs none $d && cp {tmp}/format $d/format || exit 98; \
         exec \"$MW\" record -o {tmp}/t.db -p 1 --force",
        tmp = tmp.path().display()
    ))
}

#[test]
fn tracepoint_field_missing() {
    let done = record_with_format("sched/sched_process_exit", "/group_dead;/d");
    assert_error(
        &done,
        3,
        &[
            "tracepoint sched:sched_process_exit",
            "no field `group_dead`, which memwatch reads (1 byte)",
            "loaded nothing",
            "uname -r",
            "--no-ebpf",
        ],
    );
}

#[test]
fn tracepoint_field_moved_or_resized() {
    // A syscall field is read at a fixed offset: a kernel that moves it is refused.
    let done = record_with_format(
        "syscalls/sys_enter_close",
        "s/fd;\toffset:16;/fd;\toffset:24;/",
    );
    assert_error(
        &done,
        3,
        &[
            "tracepoint syscalls:sys_enter_close",
            "field `fd` is at byte 24 on this kernel",
            "memwatch reads its 8 bytes at byte 16",
        ],
    );
    let done = record_with_format(
        "task/task_newtask",
        "s/clone_flags;\toffset:32;\tsize:8;/clone_flags;\toffset:32;\tsize:4;/",
    );
    assert_error(
        &done,
        3,
        &[
            "tracepoint task:task_newtask",
            "field `clone_flags` is 4 bytes wide on this kernel",
            "memwatch reads 8 bytes",
        ],
    );
}

#[test]
fn output_exists_or_not_writable() {
    let dir = tempdir();
    let existing = dir.path().join("exists.db");
    std::fs::write(&existing, b"keep me").unwrap();
    // This test's own process: a PID that exists, is not PID 1 and is not memwatch.
    let pid = std::process::id().to_string();
    let done = run(&["record", "-p", &pid, "-o", existing.to_str().unwrap()], T);
    assert_error(&done, 2, &["already exists", "--force"]);
    assert_eq!(std::fs::read(&existing).unwrap(), b"keep me");

    let done = run(&["record", "-p", &pid, "-o", "/nonexistent-dir/x.db"], T);
    assert_error(
        &done,
        2,
        &["cannot write the recording /nonexistent-dir/x.db"],
    );
}

#[test]
fn bad_durations_and_options() {
    let done = run(&["record", "-p", "1", "--duration", "soon"], T);
    assert_error(&done, 2, &["\"soon\" is not a duration"]);
    let done = run(&["record", "-p", "1", "--capture-bytes", "5000"], T);
    assert_error(&done, 2, &["5000"]);
}

#[test]
fn command_not_found() {
    let done = run(
        &["record", "-o", "/tmp/nf.db", "--", "no-such-command-xyz"],
        T,
    );
    assert_error(&done, 2, &["command not found", "no-such-command-xyz"]);
}

fn good_recording(dir: &std::path::Path) -> std::path::PathBuf {
    let out = dir.join("good.db");
    let memchild = bin("memchild");
    let done = run(
        &[
            "record",
            "-o",
            out.to_str().unwrap(),
            "--",
            memchild.to_str().unwrap(),
            "exact",
        ],
        T,
    );
    assert_eq!(done.code(), 0, "{}", done.stderr);
    out
}

#[test]
fn report_rejects_bad_files() {
    let dir = tempdir();
    let done = run(&["report", "/nonexistent.db"], T);
    assert_error(&done, 2, &["/nonexistent.db: no such file"]);

    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "just some text, not a database\n".repeat(100)).unwrap();
    let done = run(&["report", text.to_str().unwrap()], T);
    assert_error(&done, 2, &["is not a memwatch recording"]);

    let other = dir.path().join("other.sqlite");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);")
        .unwrap();
    let done = run(&["report", other.to_str().unwrap()], T);
    assert_error(&done, 2, &["is not a memwatch recording"]);

    let good = good_recording(dir.path());
    let newer = dir.path().join("newer.db");
    std::fs::copy(&good, &newer).unwrap();
    rusqlite::Connection::open(&newer)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let done = run(&["report", newer.to_str().unwrap()], T);
    assert_error(&done, 2, &["newer memwatch", "schema 99"]);

    let truncated = dir.path().join("truncated.db");
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let done = run(&["report", truncated.to_str().unwrap()], T);
    assert_error(&done, 2, &["truncated or corrupt"]);
}

/// Records this test process for a second, with `RUST_LOG` set to `log` if given, and reads the
/// first line of its stderr; then closes its stdout and stderr, as a reader that goes away
/// (`| head -1`) does, so that every later line it writes fails with EPIPE. Returns how it
/// exited, that first line, and the recording (with the directory holding it).
fn record_into_closed_pipes(
    log: Option<&str>,
) -> (
    std::process::ExitStatus,
    String,
    tempfile::TempDir,
    std::path::PathBuf,
) {
    use std::io::{BufRead as _, BufReader};
    use std::process::Stdio;
    let dir = tempdir();
    let file = dir.path().join("r.db");
    let pid = std::process::id().to_string();
    let mut command = Command::new(memwatch());
    command
        .args(["record", "-p", &pid, "--duration", "1", "-o"])
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(log) = log {
        command.env("RUST_LOG", log);
    }
    let mut rec = command.spawn().unwrap();
    let mut first = String::new();
    BufReader::new(rec.stderr.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    drop(rec.stdout.take());
    (rec.wait().unwrap(), first, dir, file)
}

/// Log lines written after stderr was closed (`2>&1 | head -1` with `-vv`) are dropped: the
/// logger's own report of the failed write would panic on the same closed pipe.
#[test]
fn logging_to_a_closed_pipe_is_not_a_panic() {
    let (status, first, _dir, _file) = record_into_closed_pipes(Some("memwatch=debug"));
    assert!(first.contains("DEBUG"), "{first}");
    assert_eq!(status.code(), Some(0), "{status}");
}

/// A reader that goes away (`| head -1`) ends the output, not memwatch: no panic, exit 0, and a
/// recording whose stdout and stderr were both cut off is still whole.
#[test]
fn a_closed_pipe_is_not_a_panic() {
    use std::process::Stdio;
    let (status, first, _dir, file) = record_into_closed_pipes(None);
    assert!(first.contains("recording"), "{first}");
    assert_eq!(status.code(), Some(0), "{status}");
    let mut report = Command::new(memwatch())
        .args(["report", "--format", "json"])
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(report.stdout.take());
    let out = report.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let done = run(&["report", file.to_str().unwrap()], T);
    assert_eq!(done.code(), 0, "{}", done.stderr);
}

/// memwatch's error message, exactly: `error: MESSAGE` and nothing else on stderr, with `code`.
fn assert_says(done: &Finished, code: i32, message: &str) {
    assert_eq!(done.code(), code, "stderr: {}", done.stderr);
    assert_eq!(done.stderr, format!("error: {message}"));
}

/// clap's error for a value its parser refused: the first line exactly, exit 2 (usage).
fn assert_refused_value(done: &Finished, first_line: &str) {
    assert_eq!(done.code(), 2, "stderr: {}", done.stderr);
    assert_eq!(
        done.stderr.lines().next(),
        Some(first_line),
        "{}",
        done.stderr
    );
    assert!(
        !done.stderr.contains("-- -"),
        "no `-- VALUE` tip: {}",
        done.stderr
    );
}

/// Negative numbers are values, refused by their parser (clap took them for flags and suggested
/// `-- -5`, which would start a command).
#[test]
fn negative_pid_and_duration() {
    let done = run(&["record", "-p", "-5"], T);
    assert_refused_value(
        &done,
        "error: invalid value '-5' for '--pid <PID>': PID must be a positive integer, got -5; \
         `pgrep NAME` or `ps -e` shows PIDs",
    );
    let done = run(&["record", "-p", "1", "--duration", "-1"], T);
    assert_refused_value(
        &done,
        "error: invalid value '-1' for '--duration <SECS>': \"-1\" is negative: give a duration \
         greater than zero (10, 1.5, 500ms, 2m)",
    );
}

#[test]
fn duration_too_long_and_sample_interval_too_short() {
    let done = run(&["record", "-p", "1", "--duration", "1e9"], T);
    assert_refused_value(
        &done,
        "error: invalid value '1e9' for '--duration <SECS>': \"1e9\" is longer than the longest \
         duration memwatch takes, 999999999 seconds (about 31 years); give a shorter one, or none \
         to stop with Ctrl-C",
    );
    let done = run(&["record", "-p", "1", "--sample-interval", "1ns"], T);
    assert_refused_value(
        &done,
        "error: invalid value '1ns' for '--sample-interval <DURATION>': \"1ns\" is shorter than \
         the shortest sample interval, 10ms: each sample reads /proc for every traced process, \
         and more than 100 samples a second cost the machine CPU without showing more; give 10ms \
         or more (the default is 100ms)",
    );
}

/// PID 1 with its forks followed is every process on the machine: refused without --force,
/// before anything is loaded or written.
#[test]
fn pid_1_needs_force() {
    let dir = tempdir();
    let out = dir.path().join("init.db");
    let done = run(&["record", "-p", "1", "-o", out.to_str().unwrap()], T);
    assert_says(
        &done,
        2,
        "PID 1 is init: following its forks traces every process on this machine, memwatch's own \
         children among them.\n  Pass the server's PID; if PID 1 is the server (in a container) \
         or you mean the whole machine, add --force (or --no-follow-forks for init alone)",
    );
    assert!(!out.exists());
}

/// A kernel thread has no user memory: refused by name, not "exited while attaching".
#[test]
fn kernel_thread_is_refused() {
    // kthreadd, the parent of every kernel thread, is PID 2 outside a PID namespace.
    let comm = std::fs::read_to_string("/proc/2/comm").expect("PID 2");
    assert_eq!(
        comm.trim(),
        "kthreadd",
        "these tests run in the host's PID namespace"
    );
    let dir = tempdir();
    let out = dir.path().join("k.db");
    let done = run(&["record", "-p", "2", "-o", out.to_str().unwrap()], T);
    assert_says(
        &done,
        2,
        "PID 2 is a kernel thread (kthreadd): it has no user memory to trace.\n  Pass the \
         server's PID (`pgrep NAME` or `ps -e --forest` shows them)",
    );
    assert!(!out.exists());
}

/// A directory, an empty file, a text file and another program's SQLite database, given to
/// `report` and `view`: each is said to be no recording, and why.
#[test]
fn not_recordings_are_named() {
    let dir = tempdir();
    let folder = dir.path().join("recordings");
    std::fs::create_dir(&folder).unwrap();
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "just some text, not a database\n".repeat(100)).unwrap();
    let other = dir.path().join("other.sqlite");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);")
        .unwrap();
    let pass = "\n  Pass a file written by `memwatch record -o FILE`";
    let cases = [
        (
            &folder,
            format!(
                "{} is a directory, not a memwatch recording.{pass}",
                folder.display()
            ),
        ),
        (
            &empty,
            format!(
                "{} is empty: not a memwatch recording (was the recording interrupted before it \
                 began?).{pass}",
                empty.display()
            ),
        ),
        (
            &text,
            format!("{} is not a memwatch recording.{pass}", text.display()),
        ),
        (
            &other,
            format!("{} is not a memwatch recording.{pass}", other.display()),
        ),
    ];
    for (file, message) in &cases {
        let file = file.to_str().unwrap();
        assert_says(&run(&["report", file], T), 2, message);
        assert_says(
            &run(&["view", "--listen", "127.0.0.1:0", file], T),
            2,
            message,
        );
    }
}

/// `--listen` takes a host name and prefers its loopback address; without a port it says what
/// is accepted.
#[test]
fn listen_resolves_host_names() {
    let dir = tempdir();
    let log = dir.path().join("access.log");
    std::fs::write(
        &log,
        "127.0.0.1 - - [19/May/2026:08:00:00 +0000] \"GET /a HTTP/1.1\" 200 5 \"-\" \"curl\"\n",
    )
    .unwrap();
    let mut view = memwatch_tests::Running::start(&[
        "view",
        "--listen",
        "localhost:0",
        "--access-log",
        log.to_str().unwrap(),
    ]);
    let line = view.wait_for("page at http://", T);
    assert!(line.contains("page at http://127.0.0.1:"), "{line}");
    view.signal(libc::SIGTERM);
    let done = view.wait(T);
    assert_eq!(done.code(), 0, "{}", done.stderr);

    let done = run(&["view", "--listen", "localhost", log.to_str().unwrap()], T);
    assert_refused_value(
        &done,
        "error: invalid value 'localhost' for '--listen <ADDR>': \"localhost\" has no port: give \
         IP:PORT (127.0.0.1:7070, [::1]:7070, 0.0.0.0:7070) or HOST:PORT with a name this machine \
         resolves (localhost:7070); port 0 picks a free port",
    );
}

/// An access log that is a directory is refused up front (it was polled every 100 ms in vain
/// and summed up as "0 lines").
#[test]
fn access_log_directory_is_refused() {
    let dir = tempdir();
    let out = dir.path().join("r.db");
    let logs = dir.path().display().to_string();
    let pid = std::process::id().to_string();
    let message = format!(
        "the access log {logs} is a directory.\n  Pass the log file itself, e.g. --access-log \
         {logs}/access.log"
    );
    for args in [
        &[
            "record",
            "-p",
            &pid,
            "--access-log",
            &logs,
            "-o",
            out.to_str().unwrap(),
        ][..],
        &[
            "record",
            "--no-ebpf",
            "-p",
            &pid,
            "--access-log",
            &logs,
            "-o",
            out.to_str().unwrap(),
        ],
        &["view", "--listen", "127.0.0.1:0", "--access-log", &logs],
    ] {
        assert_says(&run(args, T), 2, &message);
    }
    assert!(!out.exists());
}

/// `pprof -o` and `profile -o` keep an existing file unless --force, as `record` does, and say
/// so before reading the recording.
#[test]
fn profile_outputs_are_not_overwritten() {
    let dir = tempdir();
    let existing = dir.path().join("out");
    std::fs::write(&existing, b"keep me").unwrap();
    let out = existing.to_str().unwrap();
    let message =
        format!("{out} already exists; pass --force to overwrite it, or choose another -o path");
    assert_says(&run(&["pprof", "r.db", "-o", out], T), 2, &message);
    assert_says(&run(&["profile", "r.db", "-o", out], T), 2, &message);
    assert_eq!(std::fs::read(&existing).unwrap(), b"keep me");
    // With --force, the recording is read (and here is missing).
    assert_says(
        &run(&["pprof", "/nonexistent.db", "-o", out, "--force"], T),
        2,
        "/nonexistent.db: no such file",
    );
}
