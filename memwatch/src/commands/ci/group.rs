//! `ci`'s server runs in a process group of its own: who is in it, whether the server is
//! alive, and stopping the whole group, checking nothing of it is left.

use std::time::{Duration, Instant};

/// PIDs whose process group is `pgid`.
fn members(pgid: u32) -> Vec<u32> {
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

fn signal(pgid: u32, sig: i32) {
    // SAFETY: plain syscall; a negative PID addresses the process group we created.
    unsafe { libc::kill(-(pgid as i32), sig) };
}

/// Waits up to `timeout` for the group to be empty; returns who is left.
async fn left_after(pgid: u32, timeout: Duration) -> Vec<u32> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline && !members(pgid).is_empty() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    members(pgid)
}

/// Stops the group `pgid`: SIGTERM, then SIGKILL after `timeout`. `Err` says why it failed:
/// something survived, or `authority` still answers (a process outside the group serves it).
pub(super) async fn stop(pgid: u32, authority: &str, timeout: Duration) -> Result<(), String> {
    signal(pgid, libc::SIGTERM);
    let stubborn = left_after(pgid, timeout).await;
    if !stubborn.is_empty() {
        say!("memwatch ci: {stubborn:?} still running {timeout:?} after SIGTERM; sending SIGKILL");
        signal(pgid, libc::SIGKILL);
    }
    let left = left_after(pgid, Duration::from_secs(5)).await;
    if !left.is_empty() {
        return Err(format!(
            "processes {left:?} of the server's group survived SIGKILL"
        ));
    }
    if super::ready::get(authority, "/").await.is_ok() {
        return Err(format!(
            "something still answers on {authority} after the server's group exited: a \
             process outside the group (daemonized?) is serving it"
        ));
    }
    Ok(())
}
