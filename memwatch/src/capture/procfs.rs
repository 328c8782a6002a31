//! /proc: the RSS/VmSize sampler, process discovery (descendants), and the socket scan that
//! finds connections opened before memwatch attached.

use std::collections::{BTreeSet, HashMap, HashSet};

use procfs::process::{FDTarget, Process};

/// What /proc says about a process when memwatch first sees it.
#[derive(Debug, Clone)]
pub struct ProcInfo {
    pub pid: u32,
    pub ppid: u32,
    pub comm: String,
    pub cmdline: Option<String>,
    /// Wall-clock ns when the process started.
    pub started_ns: Option<i64>,
}

/// Reads a process's identity; `None` when it is gone.
pub fn info(pid: u32) -> Option<ProcInfo> {
    let proc = Process::new(pid as i32).ok()?;
    let stat = proc.stat().ok()?;
    let cmdline = proc
        .cmdline()
        .ok()
        .filter(|v| !v.is_empty())
        .map(|v| truncate(v.join(" "), 512));
    let started_ns = procfs::boot_time_secs().ok().map(|boot| {
        let ticks = procfs::ticks_per_second().max(1);
        boot as i64 * 1_000_000_000 + (stat.starttime as i64 * 1_000_000_000) / ticks as i64
    });
    Some(ProcInfo {
        pid,
        ppid: stat.ppid as u32,
        comm: stat.comm,
        cmdline,
        started_ns,
    })
}

fn truncate(mut s: String, max: usize) -> String {
    let kept = crate::units::cut(&s, max).len();
    s.truncate(kept);
    s
}

/// `roots` plus every living descendant of them, parents before children.
pub fn with_descendants(roots: &[u32]) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(all) = procfs::process::all_processes() {
        for proc in all.flatten() {
            if let Ok(stat) = proc.stat() {
                children
                    .entry(stat.ppid as u32)
                    .or_default()
                    .push(stat.pid as u32);
            }
        }
    }
    let mut seen: HashSet<u32> = HashSet::new();
    let mut out = Vec::new();
    let mut queue: std::collections::VecDeque<u32> = roots.iter().copied().collect();
    while let Some(pid) = queue.pop_front() {
        if !seen.insert(pid) {
            continue;
        }
        out.push(pid);
        if let Some(kids) = children.get(&pid) {
            queue.extend(kids.iter().copied());
        }
    }
    out
}

/// RSS and VmSize in bytes, from /proc/PID/statm; `None` once the process is gone.
pub fn memory(pid: u32) -> Option<(u64, u64)> {
    let statm = Process::new(pid as i32).ok()?.statm().ok()?;
    let page = procfs::page_size();
    Some((statm.resident * page, statm.size * page))
}

/// memwatch's own peak resident set (`VmHWM`), in bytes.
pub fn own_peak_rss() -> Option<u64> {
    Process::myself()
        .ok()?
        .status()
        .ok()?
        .vmhwm
        .map(|kib| kib * 1024)
}

/// End of the `[heap]` mapping: the current program break, so that brk growth can be measured
/// from the first brk memwatch sees.
pub fn heap_end(pid: u32) -> Option<u64> {
    let maps = Process::new(pid as i32).ok()?.maps().ok()?;
    maps.into_iter()
        .find(|m| matches!(m.pathname, procfs::process::MMapPath::Heap))
        .map(|m| m.address.1)
}

/// Server-side TCP connections the process holds: established sockets whose local port is one
/// that some socket listens on. Returns fds.
pub fn server_connections(pid: u32) -> Vec<u32> {
    let Ok(proc) = Process::new(pid as i32) else {
        return Vec::new();
    };
    let mut entries = Vec::new();
    if let Ok(tcp) = proc.tcp() {
        entries.extend(tcp);
    }
    if let Ok(tcp6) = proc.tcp6() {
        entries.extend(tcp6);
    }
    let listening: BTreeSet<u16> = entries
        .iter()
        .filter(|e| e.state == procfs::net::TcpState::Listen)
        .map(|e| e.local_address.port())
        .collect();
    let established: HashSet<u64> = entries
        .iter()
        .filter(|e| {
            e.state == procfs::net::TcpState::Established
                && listening.contains(&e.local_address.port())
        })
        .map(|e| e.inode)
        .collect();
    let Ok(fds) = proc.fd() else {
        return Vec::new();
    };
    fds.flatten()
        .filter_map(|fd| match fd.target {
            FDTarget::Socket(inode) if established.contains(&inode) => Some(fd.fd as u32),
            _ => None,
        })
        .collect()
}

/// The running kernel's release string.
pub fn kernel_release() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|s| s.trim().to_owned())
}
