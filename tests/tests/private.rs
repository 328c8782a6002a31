//! Issue: private by default. What memwatch writes holds every request's target with its query
//! string, Host names and the processes' command lines: a recording (and its -wal and -shm
//! while it is written), a profile and a pprof file are mode 0600; under sudo they belong to
//! the user who ran it, who can read them without sudo, and no other user can. Tokens are never
//! written into the recording.

use std::{os::unix::fs::MetadataExt as _, path::Path, process::Command, time::Duration};

use memwatch_tests::{Running, ab_load, bin, report, run, start_server, tempdir};

const T: Duration = Duration::from_secs(120);
/// The user who ran sudo, and another user of the machine (neither needs a passwd entry).
const INVOKER: u32 = 65534;
const OTHER: u32 = 65533;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .mode()
        & 0o7777
}

fn owner(path: &Path) -> (u32, u32) {
    let m = std::fs::metadata(path).unwrap();
    (m.uid(), m.gid())
}

/// Records the demo for a few requests with `--stacks` and the token options, with `env` set;
/// checks the -wal and -shm files while the recording is written; returns the recording.
fn record(dir: &Path, env: &[(&str, &str)]) -> std::path::PathBuf {
    let demo = start_server(Command::new(bin("memwatch-demo")).arg("--quiet"));
    let out = dir.join("private.db");
    let pid = demo.pid().to_string();
    let mut rec = Running::start_with_env(
        &[
            "record",
            "-p",
            &pid,
            "-o",
            out.to_str().unwrap(),
            "--stacks",
            "--metrics",
            "127.0.0.1:0",
            "--metrics-token",
            "m3tric-s3cret",
        ],
        env,
    );
    rec.wait_recording(T);
    ab_load(
        &format!("http://127.0.0.1:{}/leak?kb=64&api_key=k3y", demo.port),
        5,
        1,
        false,
    );
    std::thread::sleep(Duration::from_millis(600));
    for side in ["-wal", "-shm"] {
        let f = dir.join(format!("private.db{side}"));
        assert_eq!(mode(&f), 0o600, "{}", f.display());
        assert_eq!(owner(&f), owner(&out), "{}", f.display());
    }
    rec.signal(libc::SIGINT);
    let done = rec.wait(T);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert!(
        done.stdout.contains("mode 0600: readable by no other user"),
        "{}",
        done.stdout
    );
    assert!(
        done.stdout
            .contains("query strings (tokens in URLs too: --redact-query"),
        "{}",
        done.stdout
    );
    out
}

#[test]
fn what_memwatch_writes_as_root_is_0600_and_holds_no_token() {
    let dir = tempdir();
    let out = record(dir.path(), &[]);
    assert_eq!(mode(&out), 0o600);
    assert_eq!(owner(&out), (0, 0));
    let profile = dir.path().join("profile.json");
    let pprof = dir.path().join("mem.pb.gz");
    for args in [
        vec![
            "profile",
            out.to_str().unwrap(),
            "-o",
            profile.to_str().unwrap(),
        ],
        vec![
            "pprof",
            out.to_str().unwrap(),
            "-o",
            pprof.to_str().unwrap(),
        ],
    ] {
        let done = run(&args, T);
        assert_eq!(done.code(), 0, "{args:?}: {}", done.stderr);
    }
    assert_eq!(mode(&profile), 0o600);
    assert_eq!(mode(&pprof), 0o600);
    // An existing file keeps no wider mode when memwatch writes over it (with --force: without,
    // it is kept).
    std::fs::write(&profile, b"{}").unwrap();
    std::fs::set_permissions(
        &profile,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let done = run(
        &[
            "profile",
            out.to_str().unwrap(),
            "-o",
            profile.to_str().unwrap(),
            "--force",
        ],
        T,
    );
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert_eq!(mode(&profile), 0o600);

    // The token guards /metrics; it is not in the recording, which says it keeps queries.
    let bytes = std::fs::read(&out).unwrap();
    assert!(
        !bytes.windows(13).any(|w| w == b"m3tric-s3cret"),
        "the token is in the recording"
    );
    let r = report(&out);
    assert_eq!(r["redact_query"], false, "{:#}", r["redact_query"]);
}

#[test]
fn under_sudo_the_files_belong_to_the_invoking_user_alone() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempdir();
    // Both users may enter the directory; the files decide who reads them.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let uid = INVOKER.to_string();
    let env = [("SUDO_UID", uid.as_str()), ("SUDO_GID", uid.as_str())];
    let out = record(dir.path(), &env);
    assert_eq!(owner(&out), (INVOKER, INVOKER));
    assert_eq!(mode(&out), 0o600);
    let profile = dir.path().join("profile.json");
    let done = Running::start_with_env(
        &[
            "profile",
            out.to_str().unwrap(),
            "-o",
            profile.to_str().unwrap(),
        ],
        &env,
    )
    .wait(T);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert_eq!(owner(&profile), (INVOKER, INVOKER));
    assert_eq!(mode(&profile), 0o600);

    // The invoking user reads it without sudo ...
    let mine = Running::start_as(INVOKER, &["report", out.to_str().unwrap()]).wait(T);
    assert_eq!(mine.code(), 0, "{}", mine.stderr);
    assert!(mine.stdout.contains("/leak"), "{}", mine.stdout);
    // ... and another user cannot.
    let theirs = Running::start_as(OTHER, &["report", out.to_str().unwrap()]).wait(T);
    assert_eq!(theirs.code(), 2, "{}", theirs.stderr);
    assert!(
        theirs.stderr.contains(&format!(
            "private.db: permission denied: it belongs to {} with mode 0600",
            memwatch::private::user_name(INVOKER).unwrap_or(format!("uid {INVOKER}"))
        )),
        "{}",
        theirs.stderr
    );
}
