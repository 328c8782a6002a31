//! Leaving the kernel's detach work behind when memwatch stops.
//!
//! Closing a uprobe waits for a grace period under a kernel-wide lock (`event_mutex`): about
//! 0.1 s each, one after another whatever the threads. Five heap probes per followed process
//! made a server with 24 workers take 17 s to stop, and its user's Ctrl-C look ignored.
//!
//! So at the end, a child forked for the purpose inherits the probes' file descriptors (perf
//! events, BPF links, programs and maps), closes everything else (the recording, sockets,
//! the terminal, the page's listener) and names itself `memwatch-detach`. memwatch's own
//! closes then only drop references and return at once; once they are done (the pipe between
//! them closes), the child exits and its exit does the slow part, in the background. The
//! probes keep trapping until then (seconds), and their events go to a ring buffer nobody
//! reads.
//!
//! This is a workaround for the kernel's serial detach, not a design: `uprobe_multi` links
//! (one detach for many probes) would remove the need, once the eBPF loader can attach them.

use std::os::fd::{FromRawFd as _, OwnedFd, RawFd};

/// What a descriptor of this process is, from `/proc/self/fd`'s link.
/// Perf events, and BPF links, programs and maps (`bpf_link`, `bpf-prog`, `bpf-map`).
fn is_probe_fd(link: &str) -> bool {
    link == "anon_inode:[perf_event]" || link.starts_with("anon_inode:bpf")
}

/// The descriptors the child closes at once: all but the probes'.
fn others() -> Option<Vec<RawFd>> {
    let dir = std::fs::read_dir("/proc/self/fd").ok()?;
    let mut close = Vec::new();
    let mut probes = 0usize;
    for entry in dir.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<RawFd>().ok())
        else {
            continue;
        };
        match std::fs::read_link(entry.path()) {
            Ok(link) if is_probe_fd(&link.to_string_lossy()) => probes += 1,
            // The listing's own descriptor is among them, closed by the fork (its number may
            // be another's by then, which the child does not need either).
            _ => close.push(fd),
        }
    }
    (probes > 0).then_some(close)
}

/// Tells the child forked by [`hand_off`] that memwatch has dropped its references to the
/// probes: dropped after them, it lets the child exit and close them for good.
#[derive(Debug)]
pub struct Release(
    #[expect(dead_code, reason = "held for its drop, which closes the pipe")] OwnedFd,
);

/// Forks the child that closes the probes in the background (see the module's docs), and
/// returns what to drop once memwatch has dropped its own references; `None` when it could
/// not, and memwatch closes them itself, as slowly as the kernel takes.
pub fn hand_off() -> Option<Release> {
    const NAME: &[u8] = b"memwatch-detach\0";
    let mut ends = [0; 2];
    // SAFETY: `ends` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "no pipe to hand the probes off");
        return None;
    }
    let [read_end, write_end] = ends;
    // Listed after the pipe is made: the listing's own descriptor, closed by then, may have
    // had the number the pipe now takes.
    let Some(close) = others().map(|fds| {
        fds.into_iter()
            .filter(|&fd| fd != read_end && fd != write_end)
            .collect::<Vec<_>>()
    }) else {
        // SAFETY: both ends were opened above and are owned by nothing else.
        unsafe {
            libc::close(read_end);
            libc::close(write_end);
        }
        return None;
    };
    // SAFETY: the child runs only async-signal-safe system calls (close, prctl, read, _exit)
    // on memory the parent prepared before the fork, as POSIX requires after fork in a
    // multi-threaded process; it never returns into Rust code.
    let pid = unsafe { libc::fork() };
    match pid {
        0 => {
            // SAFETY: closing descriptor numbers, naming the process and reading a
            // pipe into a local byte; in the child, nothing else uses them.
            unsafe {
                for &fd in &close {
                    libc::close(fd);
                }
                libc::close(write_end);
                libc::prctl(libc::PR_SET_NAME, NAME.as_ptr());
                // Until memwatch has closed its own references (or died): had the child gone
                // first, memwatch's closes would be the last, and as slow as ever.
                let mut byte = 0u8;
                while libc::read(read_end, (&raw mut byte).cast(), 1) != 0
                    && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
                {
                }
                // Its remaining descriptors (the probes) are closed by the kernel as it exits.
                libc::_exit(0)
            }
        }
        -1 => {
            tracing::debug!(
                error = %std::io::Error::last_os_error(),
                "no child to detach the probes in the background: detaching them here"
            );
            // SAFETY: both ends were opened above and are owned by nothing else.
            unsafe {
                libc::close(read_end);
                libc::close(write_end);
            }
            None
        }
        child => {
            // SAFETY: opened above, owned by nothing else; the child has its own copy.
            unsafe { libc::close(read_end) };
            tracing::debug!(
                child,
                "the probes are detached in the background by memwatch-detach"
            );
            // Reaped when it is done, so that it is no zombie while a page stays up.
            let reaped = std::thread::Builder::new()
                .name("memwatch-reap".into())
                .spawn(move || {
                    let mut status = 0;
                    // SAFETY: waits for the child forked above; `status` outlives the call.
                    unsafe { libc::waitpid(child, &raw mut status, 0) };
                });
            if let Err(e) = reaped {
                tracing::debug!(error = %e, "no thread to reap memwatch-detach");
            }
            // SAFETY: opened above by pipe2, owned by nothing else from here on.
            Some(Release(unsafe { OwnedFd::from_raw_fd(write_end) }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_probe_fd;

    #[test]
    fn only_the_probes_descriptors_are_kept() {
        for kept in [
            "anon_inode:[perf_event]",
            "anon_inode:bpf_link",
            "anon_inode:bpf-prog",
            "anon_inode:bpf-map",
        ] {
            assert!(is_probe_fd(kept), "{kept}");
        }
        for closed in [
            "socket:[12345]",
            "/tmp/x.db",
            "pipe:[77]",
            "/dev/pts/0",
            "anon_inode:[eventfd]",
        ] {
            assert!(!is_probe_fd(closed), "{closed}");
        }
    }
}
