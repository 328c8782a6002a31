//! /proc: the RSS/VmSize sampler, process discovery (descendants), and the socket scan that
//! finds connections opened before memwatch attached.

use std::collections::{BTreeSet, HashMap, HashSet};

use procfs::process::{FDTarget, Process};

use crate::units::NS_PER_SEC;

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

/// Whether process `pid` still runs: it has an address space. A zombie (exited, not yet
/// reaped) has none, nor has a process that is exiting.
pub fn alive(pid: u32) -> bool {
    memory(pid).is_some_and(|(rss, vm)| rss > 0 || vm > 0)
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
        boot as i64 * NS_PER_SEC + (stat.starttime as i64 * NS_PER_SEC) / ticks as i64
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

/// memwatch's own CPU time so far, user and system, every thread, in µs.
pub fn own_cpu_us() -> Option<u64> {
    let stat = Process::myself().ok()?.stat().ok()?;
    let ticks = procfs::ticks_per_second();
    Some((stat.utime + stat.stime).saturating_mul(1_000_000) / ticks.max(1))
}

/// The calling thread's CPU time so far, in ns (`CLOCK_THREAD_CPUTIME_ID`): what one stage of
/// memwatch's own work costs, read around it.
pub fn thread_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// This process's CPU time so far, all threads, in ns (`CLOCK_PROCESS_CPUTIME_ID`).
pub fn process_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// `clock`'s time in ns; 0 if the kernel refuses it.
fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock ids used are constants the kernel
    // knows.
    let rc = unsafe { libc::clock_gettime(clock, &raw mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// The first file among `pid`'s mappings (`maps`, the text of its `/proc/PID/maps`) whose
/// file name `is` picks, as a path this process can open whatever its mount namespace: through
/// `/proc/PID/root`.
pub fn mapped_file(pid: u32, maps: &str, is: impl Fn(&str) -> bool) -> Option<std::path::PathBuf> {
    let file = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| {
            std::path::Path::new(p)
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(&is)
        })?;
    Some(std::path::PathBuf::from(format!("/proc/{pid}/root")).join(file.trim_start_matches('/')))
}

/// End of the `[heap]` mapping: the current program break, so that brk growth can be measured
/// from the first brk memwatch sees.
pub fn heap_end(pid: u32) -> Option<u64> {
    let maps = Process::new(pid as i32).ok()?.maps().ok()?;
    maps.into_iter()
        .find(|m| matches!(m.pathname, procfs::process::MMapPath::Heap))
        .map(|m| m.address.1)
}

/// The pages of `pid` resident now, as coalesced `[start, end)` address ranges: the present bit
/// of /proc/PID/pagemap (no privilege needed beyond reading the process's memory maps) over
/// every mapping that can hold a page (`---p` reservations and `[vsyscall]` are skipped). `None`
/// when the process is gone or unreadable, or when its mappings span more than `max_pages`
/// pages, which bounds the time and memory this costs at attach.
pub fn resident_ranges(pid: u32, max_pages: u64) -> Option<Vec<(u64, u64)>> {
    use std::os::unix::fs::FileExt as _;
    let page = procfs::page_size();
    let maps = Process::new(pid as i32).ok()?.maps().ok()?;
    let wanted: Vec<(u64, u64)> = maps
        .iter()
        .filter(|m| {
            use procfs::process::MMPermissions as P;
            m.perms.intersects(P::READ | P::WRITE | P::EXECUTE)
        })
        .filter(|m| !matches!(m.pathname, procfs::process::MMapPath::Vsyscall))
        .map(|m| m.address)
        .collect();
    let pages: u64 = wanted.iter().map(|(a, b)| (b - a) / page).sum();
    if pages > max_pages {
        return None;
    }
    let pagemap = std::fs::File::open(format!("/proc/{pid}/pagemap")).ok()?;
    const PRESENT: u64 = 1 << 63;
    const CHUNK: u64 = 8192;
    let mut out: Vec<(u64, u64)> = Vec::new();
    let mut buf = vec![0u8; (CHUNK * 8) as usize];
    for (start, end) in wanted {
        let mut at = start;
        while at < end {
            let n = ((end - at) / page).min(CHUNK);
            let bytes = &mut buf[..(n * 8) as usize];
            pagemap.read_exact_at(bytes, at / page * 8).ok()?;
            for (i, entry) in bytes.as_chunks::<8>().0.iter().enumerate() {
                if u64::from_ne_bytes(*entry) & PRESENT == 0 {
                    continue;
                }
                let addr = at + i as u64 * page;
                match out.last_mut() {
                    Some(last) if last.1 == addr => last.1 = addr + page,
                    _ => out.push((addr, addr + page)),
                }
            }
            at += n * page;
        }
    }
    Some(out)
}

/// Whether `pid` holds any socket (a listener it serves from, a connection): such a process may
/// serve requests at any moment, where one without is a helper until it opens one.
pub fn holds_socket(pid: u32) -> bool {
    let Ok(proc) = Process::new(pid as i32) else {
        return false;
    };
    proc.fd().is_ok_and(|fds| {
        fds.flatten()
            .any(|fd| matches!(fd.target, FDTarget::Socket(_)))
    })
}

/// Server-side TCP connections of the processes memwatch attaches to, found from /proc.
///
/// The TCP tables list every socket of a network namespace, tens of thousands on a busy host
/// (TIME_WAIT included), and are slow to read: they are read only for a process that holds a
/// socket, and once per namespace for one attach. (Read per process, 150 descendants on a host
/// with 14,000 sockets took 4.6 s to attach.)
#[derive(Debug, Default)]
pub struct ConnScan {
    /// Per network namespace (the inode of `/proc/PID/ns/net`): the inodes of established
    /// sockets whose local port some socket listens on.
    tables: HashMap<u64, HashSet<u64>>,
}

impl ConnScan {
    /// Server-side TCP connections `pid` holds: established sockets whose local port is one
    /// that some socket listens on. Returns fds.
    pub fn server_connections(&mut self, pid: u32) -> Vec<u32> {
        let Ok(proc) = Process::new(pid as i32) else {
            return Vec::new();
        };
        let Ok(fds) = proc.fd() else {
            return Vec::new();
        };
        let sockets: Vec<(u32, u64)> = fds
            .flatten()
            .filter_map(|fd| match fd.target {
                FDTarget::Socket(inode) => Some((fd.fd as u32, inode)),
                _ => None,
            })
            .collect();
        if sockets.is_empty() {
            return Vec::new();
        }
        let netns = std::fs::metadata(format!("/proc/{pid}/ns/net"))
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m));
        // A namespace that cannot be told is read for this process alone.
        let own;
        let established = match netns {
            Ok(netns) => self
                .tables
                .entry(netns)
                .or_insert_with(|| established_server_sockets(&proc)),
            Err(_) => {
                own = established_server_sockets(&proc);
                &own
            }
        };
        sockets
            .into_iter()
            .filter(|(_, inode)| established.contains(inode))
            .map(|(fd, _)| fd)
            .collect()
    }
}

/// The inodes of established TCP sockets, in `proc`'s network namespace, whose local port some
/// socket listens on.
fn established_server_sockets(proc: &Process) -> HashSet<u64> {
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
    entries
        .iter()
        .filter(|e| {
            e.state == procfs::net::TcpState::Established
                && listening.contains(&e.local_address.port())
        })
        .map(|e| e.inode)
        .collect()
}

/// The processes (PID and name) holding a socket that listens on TCP `port` in memwatch's own
/// network namespace: who holds an address memwatch could not bind. Empty when nobody can be
/// found (a process of another namespace or user).
pub fn port_holders(port: u16) -> Vec<(u32, String)> {
    let mut entries = Vec::new();
    if let Ok(tcp) = procfs::net::tcp() {
        entries.extend(tcp);
    }
    if let Ok(tcp6) = procfs::net::tcp6() {
        entries.extend(tcp6);
    }
    let inodes: HashSet<u64> = entries
        .iter()
        .filter(|e| e.state == procfs::net::TcpState::Listen && e.local_address.port() == port)
        .map(|e| e.inode)
        .collect();
    if inodes.is_empty() {
        return Vec::new();
    }
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    let mut holders: Vec<(u32, String)> = all
        .flatten()
        .filter(|p| {
            p.fd().is_ok_and(|fds| {
                fds.flatten()
                    .any(|fd| matches!(fd.target, FDTarget::Socket(i) if inodes.contains(&i)))
            })
        })
        .map(|p| {
            let comm = p.stat().map(|s| s.comm).unwrap_or_default();
            (p.pid as u32, comm)
        })
        .collect();
    holders.sort();
    holders
}

/// CPU time `pids` have used so far, user and system, in ns (processes gone count 0).
pub fn cpu_ns(pids: impl IntoIterator<Item = u32>) -> u64 {
    let ticks = procfs::ticks_per_second().max(1);
    pids.into_iter()
        .filter_map(|pid| Process::new(pid as i32).ok()?.stat().ok())
        .map(|s| (s.utime + s.stime) * NS_PER_SEC as u64 / ticks)
        .sum()
}

/// The running kernel's release string.
pub fn kernel_release() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|s| s.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process is alive until it exits: a zombie (exited, not yet reaped) is not, nor is one
    /// reaped.
    #[test]
    fn a_zombie_and_a_reaped_process_are_not_alive() {
        assert!(alive(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Not reaped yet: a zombie once it has exited.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while alive(pid) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
        assert!(!alive(pid));
        child.wait().unwrap();
        assert!(!alive(pid));
    }

    /// Of a fresh 16-page private mapping of this process with pages 0 to 3 and 8 written, the
    /// resident ranges hold exactly those pages.
    #[test]
    fn resident_ranges_are_the_pages_written() {
        let page = procfs::page_size();
        let len = (16 * page) as usize;
        // SAFETY: a fresh anonymous private mapping, unmapped below, touched only within it.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED);
        let start = base as u64;
        for i in [0u64, 1, 2, 3, 8] {
            // SAFETY: inside the mapping.
            unsafe { *((start + i * page) as *mut u8) = 1 };
        }
        let ranges = resident_ranges(std::process::id(), u64::MAX).expect("own pagemap");
        let end = start + 16 * page;
        let inside: Vec<(u64, u64)> = ranges
            .iter()
            .filter(|&&(a, b)| a < end && b > start)
            .map(|&(a, b)| (a.max(start), b.min(end)))
            .collect();
        assert_eq!(
            inside,
            vec![
                (start, start + 4 * page),
                (start + 8 * page, start + 9 * page)
            ]
        );
        assert_eq!(
            resident_ranges(std::process::id(), 1),
            None,
            "past the bound"
        );
        // SAFETY: the mapping made above.
        unsafe { libc::munmap(base, len) };
    }

    #[test]
    fn the_holder_of_a_listening_port_is_found() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let holders = port_holders(port);
        assert!(
            holders.iter().any(|(pid, _)| *pid == std::process::id()),
            "{holders:?}"
        );
        drop(listener);
        assert_eq!(port_holders(port), vec![]);
    }
}
