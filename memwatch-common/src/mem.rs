//! Memory syscalls: mmap, munmap, mremap, brk, mprotect, madvise.

use crate::event::EventHeader;

/// Which memory syscall a [`MemEvent`] reports.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemOp {
    Mmap = 1,
    Munmap = 2,
    Mremap = 3,
    Brk = 4,
    Mprotect = 5,
    /// `madvise`: `flags` holds the advice (`MADV_DONTNEED`, `MADV_FREE`, `MADV_REMOVE` give
    /// memory back).
    Madvise = 6,
}

impl MemOp {
    pub const fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            1 => Self::Mmap,
            2 => Self::Munmap,
            3 => Self::Mremap,
            4 => Self::Brk,
            5 => Self::Mprotect,
            6 => Self::Madvise,
            _ => return None,
        })
    }
}

/// The arguments of a memory syscall, stashed at `sys_enter_*` until `sys_exit_*` gives the result.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemArgs {
    /// A [`MemOp`] as `u32`.
    pub op: u32,
    /// `prot` for mmap and mprotect.
    pub prot: u32,
    /// `flags` for mmap and mremap; the advice for madvise.
    pub flags: u64,
    /// `addr` (mmap hint, munmap/mprotect/madvise start, mremap old address, brk requested
    /// break).
    pub addr: u64,
    /// `len` (mmap, munmap, mprotect, madvise) or `old_len` (mremap).
    pub len: u64,
    /// `new_len` for mremap; zero otherwise.
    pub new_len: u64,
    /// `fd` for mmap (-1 for anonymous); zero otherwise.
    pub fd: i64,
    /// When the syscall began (`bpf_ktime_get_ns` at `sys_enter_*`). A release takes effect
    /// somewhere between this and the event's own time (its return): another thread may map the
    /// same addresses again and fault them in before this thread returns, and those pages are
    /// that thread's, not gone.
    pub began_ns: u64,
}

/// A completed memory syscall.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemEvent {
    pub header: EventHeader,
    pub args: MemArgs,
    /// The syscall's return value: an address for mmap/mremap/brk, 0 for success, or -errno.
    pub ret: i64,
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain-old-data: repr(C), integer fields only, no implicit padding (layouts pinned
    // by tests/layout.rs), so every bit pattern is a valid value.
    unsafe impl aya::Pod for super::MemArgs {}
    // SAFETY: as above; its fields are an EventHeader, a MemArgs and an i64.
    unsafe impl aya::Pod for super::MemEvent {}
}
