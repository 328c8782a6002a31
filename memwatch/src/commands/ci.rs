//! `memwatch ci`: start the server traced in its own process group, wait until it really
//! answers, run the workload, stop every process of the group, check nothing is left, then
//! profile and compare with a baseline. Each failure names its stage, says why, and shows the
//! end of the server's standard error.

use std::{
    ffi::OsString,
    io::{Read as _, Seek as _, SeekFrom},
    os::fd::OwnedFd,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::{Notify, oneshot};

use crate::{
    capture::spawn::SpawnOptions,
    cli::CiArgs,
    commands::record,
    correlate::http::response::parse_status,
    error::exit,
    recording::Recording,
    session::{Hooks, RecordOptions},
    views::{
        fleet::Fleet,
        profile::{Profile, diff},
    },
};

/// A stage that failed, and why.
#[derive(Debug)]
struct Failure {
    stage: &'static str,
    reason: String,
}

fn fail(stage: &'static str, reason: impl Into<String>) -> Failure {
    Failure {
        stage,
        reason: reason.into(),
    }
}

/// `host:port` and path (with query) of an `http://` URL.
fn parse_url(url: &str) -> Option<(String, String)> {
    let uri: axum::http::Uri = url.parse().ok()?;
    if uri.scheme_str() != Some("http") {
        return None;
    }
    let authority = uri.authority()?;
    let authority = format!(
        "{}:{}",
        authority.host(),
        authority.port_u16().unwrap_or(80)
    );
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let path = if path.is_empty() {
        "/".to_owned()
    } else {
        path
    };
    Some((authority, path))
}

/// One GET; `Ok(status)` or the connection error.
async fn probe(authority: &str, path: &str) -> std::io::Result<u16> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    /// Enough for any status line a server sends.
    const MAX_STATUS_LINE: usize = 1024;
    let mut s = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(authority),
    )
    .await
    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    // Read until the status line is complete (or the server stops), then parse it the way the
    // correlator parses responses.
    let mut head = Vec::with_capacity(128);
    let mut chunk = [0u8; 256];
    let read_line = async {
        while !head.contains(&b'\n') && head.len() < MAX_STATUS_LINE {
            let n = s.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&chunk[..n]);
        }
        Ok::<_, std::io::Error>(())
    };
    tokio::time::timeout(Duration::from_secs(5), read_line)
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    parse_status(&head).map(|s| s.code).ok_or_else(|| {
        std::io::Error::other(format!(
            "not an HTTP response: {:?}",
            String::from_utf8_lossy(&head[..head.len().min(64)])
        ))
    })
}

/// PIDs whose process group is `pgid`.
fn group_members(pgid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(all) = ::procfs::process::all_processes() {
        for p in all.flatten() {
            if let Ok(stat) = p.stat()
                && stat.pgrp == pgid as i32
                && stat.state != 'Z'
            {
                out.push(stat.pid as u32);
            }
        }
    }
    out
}

fn signal_group(pgid: u32, sig: i32) {
    // SAFETY: plain syscall; a negative PID addresses the process group we created.
    unsafe { libc::kill(-(pgid as i32), sig) };
}

fn alive(pid: u32) -> bool {
    crate::capture::procfs::memory(pid).is_some_and(|(rss, vm)| rss > 0 || vm > 0)
}

/// The last `n` lines of the server's standard error.
fn tail(file: &mut std::fs::File, n: usize) -> String {
    let mut text = String::new();
    let _ = file.seek(SeekFrom::Start(0));
    let _ = file.read_to_string(&mut text);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

struct Run {
    pgid: u32,
    authority: String,
}

/// Stops the group: SIGTERM, then SIGKILL after `timeout`; fails if anything survives or the
/// port still answers.
async fn stop_group(run: &Run, timeout: Duration) -> Result<(), Failure> {
    signal_group(run.pgid, libc::SIGTERM);
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline && !group_members(run.pgid).is_empty() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stubborn = group_members(run.pgid);
    if !stubborn.is_empty() {
        say!(
            "memwatch ci: {:?} still running {timeout:?} after SIGTERM; sending SIGKILL",
            stubborn
        );
        signal_group(run.pgid, libc::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && !group_members(run.pgid).is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let left = group_members(run.pgid);
    if !left.is_empty() {
        return Err(fail(
            "stop",
            format!("processes {left:?} of the server's group survived SIGKILL"),
        ));
    }
    if probe(&run.authority, "/").await.is_ok() {
        return Err(fail(
            "stop",
            format!(
                "something still answers on {} after the server's group exited: a process \
                 outside the group (daemonized?) is serving it",
                run.authority
            ),
        ));
    }
    Ok(())
}

async fn stages(args: &CiArgs, run: &Run, pid: u32) -> Result<(), Failure> {
    // Ready: retry refusals and 5xx with backoff until the timeout; no fixed sleeps.
    let (_, path) = parse_url(&args.ready).unwrap_or_default();
    let deadline = Instant::now() + args.ready_timeout;
    let mut wait = Duration::from_millis(20);
    loop {
        if !alive(pid) {
            return Err(fail("ready", "the server exited before it answered"));
        }
        let last = match probe(&run.authority, &path).await {
            Ok(status) if status < 500 => break,
            Ok(status) => format!("{} answered {status}", args.ready),
            Err(e) => format!("{}: {e}", args.ready),
        };
        if Instant::now() + wait > deadline {
            return Err(fail(
                "ready",
                format!(
                    "not ready after {:?} (last: {last}); raise --ready-timeout if it needs longer",
                    args.ready_timeout
                ),
            ));
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_millis(500));
    }
    say!("memwatch ci: server ready at {}", args.ready);
    // Workload: its output is streamed (inherited); the server must live through it.
    let mut workload = tokio::process::Command::new("sh")
        .args(["-c", &args.workload])
        .spawn()
        .map_err(|e| {
            fail(
                "workload",
                format!("cannot start `sh -c {}`: {e}", args.workload),
            )
        })?;
    let mut check = tokio::time::interval(Duration::from_millis(100));
    let status = loop {
        tokio::select! {
            status = workload.wait() => break status,
            _ = check.tick() => {
                if !alive(pid) {
                    let _ = workload.kill().await;
                    return Err(fail("workload", "the server exited during the workload"));
                }
            }
        }
    }
    .map_err(|e| fail("workload", e.to_string()))?;
    if !status.success() {
        return Err(fail(
            "workload",
            format!("`{}` failed with {status}", args.workload),
        ));
    }
    if !alive(pid) {
        return Err(fail("workload", "the server exited during the workload"));
    }
    Ok(())
}

pub async fn run(args: CiArgs) -> anyhow::Result<i32> {
    let Some((authority, _)) = parse_url(&args.ready) else {
        anyhow::bail!(crate::error::UsageError(format!(
            "--ready {:?} is not an http:// URL such as http://127.0.0.1:8080/health",
            args.ready
        )));
    };
    // Checked up front: a baseline that cannot be compared fails before the server starts.
    let baseline = match args.baseline.as_deref() {
        Some(path) => {
            let base = Profile::load(path)?;
            base.check_metric(path, args.thresholds.thresholds().metric)?;
            Some(base)
        }
        None => None,
    };
    let stderr_path =
        std::env::temp_dir().join(format!("memwatch-ci-{}.stderr", std::process::id()));
    let mut stderr_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&stderr_path)?;
    let stderr_fd: OwnedFd = stderr_file.try_clone()?.into();
    // Every other option keeps `memwatch record`'s own default.
    let record_options = RecordOptions {
        output: Some(args.output.clone()),
        force: true,
        access_logs: args.access_logs.clone(),
        command: vec![
            OsString::from("sh"),
            OsString::from("-c"),
            OsString::from(&args.server),
        ],
        ..crate::cli::RecordArgs::defaults()
    };
    let (started_tx, started_rx) = oneshot::channel();
    let stop = Arc::new(Notify::new());
    let hooks = Hooks {
        spawn: SpawnOptions {
            new_group: true,
            stderr: Some(stderr_fd),
        },
        started: Some(started_tx),
        stop: Some(Arc::clone(&stop)),
    };
    let recording = tokio::spawn(record::run_with(
        record_options,
        None,
        Fleet::default(),
        hooks,
    ));
    let pid = match started_rx.await {
        Ok(pid) => pid,
        Err(_) => {
            // The recorder failed before the server ran: its error says why.
            return match recording.await {
                Ok(Err(e)) => Err(e.context("stage start: recording could not begin")),
                _ => Err(anyhow::anyhow!("stage start: recording could not begin")),
            };
        }
    };
    let run = Run {
        pgid: pid,
        authority,
    };
    let outcome = stages(&args, &run, pid).await;
    // The recorder takes its last sample of the running server, then the group is stopped.
    stop.notify_one();
    let recorded = recording.await;
    let stopped = stop_group(&run, args.stop_timeout).await;
    let _ = std::fs::remove_file(&stderr_path);
    if let Some(failure) = outcome.err().or(stopped.err()) {
        say!(
            "memwatch ci: FAILED at stage `{}`: {}\n--- last lines of the server's stderr ---\n{}\n---",
            failure.stage,
            failure.reason,
            tail(&mut stderr_file, 20)
        );
        return Ok(exit::INPUT);
    }
    match recorded {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(e.context("stage record")),
        Err(e) => anyhow::bail!("stage record: {e}"),
    }
    let profile = Profile::from_recording(&Recording::open(&args.output)?)?;
    if let Some(path) = &args.profile_out {
        crate::private::write(
            path,
            (serde_json::to_string_pretty(&profile)? + "\n").as_bytes(),
        )?;
        say!("memwatch ci: profile written to {}", path.display());
    }
    let Some(base) = baseline else {
        say!("memwatch ci: ok (no --baseline to compare with)");
        return Ok(exit::OK);
    };
    let d = diff(&base, &profile, args.thresholds.thresholds());
    super::print_out(&d.to_text())?;
    if let Some(path) = &args.markdown_out {
        crate::private::write(path, d.to_markdown().as_bytes())?;
    }
    Ok(if d.regressions > 0 {
        exit::REGRESSION
    } else {
        exit::OK
    })
}

#[cfg(test)]
mod tests {
    use super::parse_url;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("http://127.0.0.1:8080/health"),
            Some(("127.0.0.1:8080".into(), "/health".into()))
        );
        assert_eq!(
            parse_url("http://localhost"),
            Some(("localhost:80".into(), "/".into()))
        );
        assert_eq!(parse_url("https://x/"), None);
        assert_eq!(
            parse_url("http://[::1]:9000/ready?deep=1"),
            Some(("[::1]:9000".into(), "/ready?deep=1".into()))
        );
        assert_eq!(parse_url("not a url"), None);
    }
}
