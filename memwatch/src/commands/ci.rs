//! `memwatch ci`: start the server traced in its own process group, wait until it really
//! answers ([`ready`]), run the workload, stop every process of the group and check nothing is
//! left ([`group`]), then profile and compare with a baseline. Each failure names its stage,
//! says why, and shows the end of the server's standard error.

mod group;
mod ready;

use std::{
    ffi::OsString,
    io::{Read as _, Seek as _, SeekFrom},
    os::fd::OwnedFd,
    sync::Arc,
    time::Duration,
};

use tokio::sync::{Notify, oneshot};

use self::ready::ReadyUrl;
use crate::{
    capture::{procfs::alive, spawn::SpawnOptions},
    cli::CiArgs,
    commands::record,
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

/// The last `n` lines of the server's standard error.
fn tail(file: &mut std::fs::File, n: usize) -> String {
    let mut text = String::new();
    let _ = file.seek(SeekFrom::Start(0));
    let _ = file.read_to_string(&mut text);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The stages between the server's start and its stop: ready, then the workload.
async fn stages(args: &CiArgs, ready: &ReadyUrl, pid: u32) -> Result<(), Failure> {
    ready
        .wait(args.ready_timeout, || alive(pid))
        .await
        .map_err(|reason| fail("ready", reason))?;
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
    let Some(ready) = ReadyUrl::parse(&args.ready) else {
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
    let outcome = stages(&args, &ready, pid).await;
    // The recorder takes its last sample of the running server, then the group (its leader
    // is the server) is stopped.
    stop.notify_one();
    let recorded = recording.await;
    let stopped = group::stop(pid, &ready.authority, args.stop_timeout)
        .await
        .map_err(|reason| fail("stop", reason));
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
