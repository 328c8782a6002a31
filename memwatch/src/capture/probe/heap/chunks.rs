//! Whether a followed glibc block is still in use, read from outside while the heap probes are
//! off (their budget spent), so that a block freed then is not kept by its allocator forever.
//!
//! glibc keeps a size word just below each block it hands out; the chunk after a block has the
//! `PREV_INUSE` bit of its own size word set while the block is in use. Blocks of a page or more
//! never go to the per-thread caches or fast bins (which leave the bit set), so once such a
//! block is freed, either its own size word changes (merged into the top chunk, or with the
//! free chunk after it) or the next chunk's bit is cleared. One case reads as still in use: a
//! block merged into the free chunk *before* it keeps its stale header. Such a block stays with
//! its owner until a later allocation the probes see takes its pages.

use memwatch_common::heap::{GLIBC_PREV_INUSE, GLIBC_SIZE_FLAGS};

/// What a block's chunk header says now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    InUse,
    Freed,
    /// The memory could not be read (unmapped, or the process is gone).
    Unreadable,
}

/// Reads `len` words at each of `addrs` of process `pid`; `None` for a word that cannot be read.
fn read_words(pid: u32, addrs: &[u64]) -> Vec<Option<u64>> {
    addrs
        .iter()
        .map(|&addr| {
            let mut word = 0u64;
            let local = libc::iovec {
                iov_base: (&raw mut word).cast(),
                iov_len: 8,
            };
            let remote = libc::iovec {
                iov_base: addr as *mut libc::c_void,
                iov_len: 8,
            };
            // SAFETY: `local` describes the 8 bytes of `word`, which outlives the call; the
            // remote address is only read by the kernel, which checks it.
            let n = unsafe { libc::process_vm_readv(pid as i32, &local, 1, &remote, 1, 0) };
            (n == 8).then_some(word)
        })
        .collect()
}

/// The state of the block at `addr` of `pid` whose chunk size word was `chunk` when it was
/// handed out.
pub fn state(pid: u32, addr: u64, chunk: u64) -> State {
    let size = chunk & !GLIBC_SIZE_FLAGS;
    if size < 16 || addr < 8 {
        return State::Unreadable;
    }
    // The chunk starts 16 bytes below the block; its size word is the 8 bytes below the block,
    // and the next chunk's size word 8 bytes into the next chunk.
    let next = addr
        .saturating_sub(16)
        .saturating_add(size)
        .saturating_add(8);
    let words = read_words(pid, &[addr - 8, next]);
    match (words[0], words[1]) {
        (Some(own), Some(next)) => judge(chunk, own, next),
        _ => State::Unreadable,
    }
}

/// The verdict from the block's size word when handed out (`chunk`), its size word now (`own`)
/// and the next chunk's size word now.
fn judge(chunk: u64, own: u64, next: u64) -> State {
    if own != chunk || next & GLIBC_PREV_INUSE == 0 {
        State::Freed
    } else {
        State::InUse
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        let chunk = 0x40010 | 1;
        assert_eq!(judge(chunk, chunk, 0x2001), State::InUse);
        assert_eq!(
            judge(chunk, chunk, 0x2000),
            State::Freed,
            "next's bit cleared"
        );
        assert_eq!(
            judge(chunk, 0x81001, 0x2001),
            State::Freed,
            "merged into top"
        );
    }

    /// This process's own glibc: a 256 KiB block (below the mmap threshold once raised, so
    /// glibc may still map it on its own: then it is left out, as the kernel side does) reads in
    /// use while held, and freed once freed.
    #[test]
    fn a_block_of_this_process_reads_in_use_then_freed() {
        // Raise the mmap threshold as a free of a mapped chunk does, so the block is on the heap.
        // SAFETY: plain libc allocation calls on this process's heap.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
            let p = libc::malloc(256 * 1024) as u64;
            let guard = libc::malloc(64);
            let chunk = *((p - 8) as *const u64);
            assert_eq!(chunk & 2, 0, "a heap chunk, not mapped on its own");
            let pid = std::process::id();
            assert_eq!(state(pid, p, chunk), State::InUse);
            libc::free(p as *mut libc::c_void);
            assert_eq!(state(pid, p, chunk), State::Freed);
            libc::free(guard);
        }
        assert_eq!(state(std::process::id(), 8, 0x41), State::Unreadable);
    }
}
