//! The heap allocator (`record --heap`): glibc's `malloc`, `calloc`, `realloc` and `free`,
//! followed with uprobes on the target's own libc, and the Go runtime's spans ([`GO_PROBES`]). Only chunks of at least a page that glibc
//! carved from its heap are reported; chunks it mapped on their own (`IS_MMAPPED`) are already
//! followed through mmap and munmap.
//!
//! Why: a heap hands pages freed by one request to the next allocation, with no syscall and no
//! page fault. Without these events, a page stays with the request that first faulted it in,
//! and a leak that reuses a churning route's freed heap is charged to the churn.

use crate::event::EventHeader;

/// What a [`HeapEvent`] reports.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeapOp {
    /// `[addr, addr + len)` was handed out by malloc, calloc or realloc.
    Alloc = 1,
    /// `[addr, addr + len)` went back to the allocator (free, or the old block of a realloc).
    Free = 2,
}

impl HeapOp {
    pub const fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            1 => Self::Alloc,
            2 => Self::Free,
            _ => return None,
        })
    }
}

/// One heap block handed out or given back.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapEvent {
    pub header: EventHeader,
    /// A [`HeapOp`] as `u32`.
    pub op: u32,
    /// Explicit padding; always zero.
    pub _pad: u32,
    pub addr: u64,
    /// The usable size asked for (malloc's argument; calloc's product).
    pub len: u64,
    /// A glibc block handed out: its chunk's size word (the 8 bytes below `addr`), with which
    /// user space can later tell whether the block is still in use while the heap probes are
    /// off (see [`GLIBC_PREV_INUSE`]). 0 for a Go span and for a block given back.
    pub chunk: u64,
}

/// glibc's chunk header: the size word of the chunk *after* a block has this bit set while the
/// block is in use (`PREV_INUSE` in malloc.c). Blocks of a page or more are never kept in
/// glibc's per-thread caches or fast bins, which leave it set, so for them the bit is clear
/// once the block is freed (unless it merged into the top chunk, which rewrites its own size
/// word instead).
pub const GLIBC_PREV_INUSE: u64 = 0x1;
/// The flag bits of a glibc chunk's size word; the rest is the chunk's size.
pub const GLIBC_SIZE_FLAGS: u64 = 0x7;

/// Which heap probe a hit was on: the slots of [`crate::config::MAP_HEAP_HITS`], counted at
/// every hit, traced process or not, so that user space knows what the probes cost.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeapSite {
    /// (Unused since malloc and calloc are followed at their return alone.)
    Malloc = 0,
    Calloc = 1,
    Realloc = 2,
    Free = 3,
    /// The return of malloc, calloc or realloc.
    AllocReturn = 4,
    GoSpanAlloc = 5,
    GoSpanFree = 6,
}

/// Slots of [`crate::config::MAP_HEAP_HITS`].
pub const HEAP_SITES: u32 = 7;

/// An allocation between its entry and its return, keyed by tid.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapPending {
    /// Bytes asked for.
    pub size: u64,
    /// realloc's old block (0 for malloc and calloc).
    pub old: u64,
}

/// A live block, in [`crate::config::MAP_HEAP_LIVE`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HeapKey {
    pub tgid: u32,
    /// Explicit padding; always zero.
    pub _pad: u32,
    pub addr: u64,
}

/// glibc's chunk header: the size word just below the pointer malloc returns has this bit set
/// when the chunk was mapped on its own (`IS_MMAPPED` in malloc.c).
pub const GLIBC_IS_MMAPPED: u64 = 0x2;

/// The libc functions followed, each with its program: an entry probe, or (`heap_alloc_ret`)
/// a return probe. Which of the two a program is, is said by the program itself. malloc and
/// calloc need no entry program (the return reads the block's size from its chunk header).
/// In the order they are detached: the most called first, as each detach waits out a grace
/// period before the next probe's breakpoint is removed.
pub const HEAP_PROBES: &[(&str, &str)] = &[
    ("free", "heap_free"),
    ("malloc", "heap_alloc_ret"),
    ("calloc", "heap_alloc_ret"),
    ("realloc", "heap_alloc_ret"),
    ("realloc", "heap_realloc"),
];

/// The Go runtime's page heap (Go 1.17 and later on amd64, whose internal ABI passes arguments
/// in RAX, RBX, RCX, ...): spans handed out and given back, at entry only. (A return probe
/// would break Go, which moves goroutine stacks.)
/// * `runtime.(*mheap).allocNeedsZero(h, base, npages)` is called once for each span handed
///   out, right after it is set up;
/// * `runtime.(*pageAlloc).free(p, base, npages, scavenged)` once for each span given back.
///
/// Both take the span's base in RBX and its length in [`GO_PAGE_SIZE`] pages in RCX.
pub const GO_PROBES: &[(&str, &str)] = &[
    ("runtime.(*mheap).allocNeedsZero", "go_span_alloc"),
    ("runtime.(*pageAlloc).free", "go_span_free"),
];

/// The Go runtime's page size (`runtime.pageSize`).
pub const GO_PAGE_SIZE: u64 = 8192;

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain-old-data: repr(C), integer fields only, no implicit padding (layouts pinned
    // by tests/layout.rs), so every bit pattern is a valid value.
    unsafe impl aya::Pod for super::HeapEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::HeapPending {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::HeapKey {}
}
