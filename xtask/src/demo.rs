//! `cargo xtask demo`: the demo server, a mixed workload in which `/leak` leaks, and memwatch
//! serving the live page. Everything stops with Ctrl-C; the workload also stops by itself after
//! ten minutes.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::TcpStream,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::{is_root, root};

/// The workload's mix, one request each in turn: mostly cheap routes, a slow one, churn, a
/// reused buffer, memory freed later by a collector thread, and a leak.
const MIX: &[&str] = &[
    "/",
    "/",
    "/",
    "/churn?kb=512",
    "/",
    "/slow?ms=20",
    "/reuse?kb=2048",
    "/users/42",
    "/deferred?kb=1024",
    "/leak?kb=256",
];

fn get(port: u16, path: &str) -> std::io::Result<()> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n"
    )?;
    let mut sink = Vec::new();
    s.read_to_end(&mut sink)?;
    Ok(())
}

pub(crate) fn run(listen: &str) -> anyhow::Result<()> {
    let bin = root().join("target/release");
    let scratch = std::env::temp_dir().join(format!("memwatch-demo-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let log = scratch.join("access.log");
    let mut demo = Command::new(bin.join("memwatch-demo"))
        .args(["--quiet", "--access-log"])
        .arg(&log)
        .stdout(Stdio::piped())
        .spawn()
        .context("starting memwatch-demo")?;
    let mut line = String::new();
    BufReader::new(demo.stdout.take().context("demo stdout")?).read_line(&mut line)?;
    let port: u16 = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("no port in {line:?}"))?;
    let recording = scratch.join("demo.db");
    let mut cmd = if is_root() {
        Command::new(bin.join("memwatch"))
    } else {
        let mut c = Command::new("sudo");
        c.arg(bin.join("memwatch"));
        c
    };
    cmd.args([
        "serve",
        "-p",
        &demo.id().to_string(),
        "--listen",
        listen,
        "-o",
    ])
    .arg(&recording)
    .arg("--access-log")
    .arg(&log);
    eprintln!("+ {}", crate::describe(&cmd));
    let mut memwatch = cmd.spawn().context("starting memwatch")?;
    // Give memwatch time to attach before the load starts.
    std::thread::sleep(Duration::from_secs(2));
    if let Ok(Some(status)) = memwatch.try_wait() {
        let _ = demo.kill();
        bail!("memwatch exited early ({status})");
    }
    eprintln!("demo: load on http://127.0.0.1:{port}/ ; open the page above; Ctrl-C stops");
    std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(600);
        let mut i = 0;
        while Instant::now() < end {
            let _ = get(port, MIX[i % MIX.len()]);
            i += 1;
            std::thread::sleep(Duration::from_millis(25));
        }
        eprintln!("demo: workload finished after {i} requests; the page stays up");
    });
    let status = memwatch.wait()?;
    let _ = demo.kill();
    let _ = demo.wait();
    let _ = std::fs::remove_dir_all(&scratch);
    if !status.success() {
        bail!("memwatch exited with {status}");
    }
    Ok(())
}
