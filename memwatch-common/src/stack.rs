//! Call sites of growth (`record --stacks`): the user stack, taken at most once per
//! [`crate::config::GLOBAL_STACK_EVERY`] bytes a thread makes resident (at a page fault), and
//! separately per as many bytes it maps (at a memory syscall's return), and at the first of each
//! after a socket boundary (so that a request's growth is not charged to the previous request's
//! call site).
//!
//! Two ways, chosen per process by user space ([`TARGET_COPY_STACK`] in the targets map):
//! - **frame pointers**: the kernel walks them (`bpf_get_stackid`), keeps each distinct stack once
//!   in a stack map, and sends its id in a [`StackEvent`];
//! - **a copy of the stack**: for binaries built without frame pointers, the kernel copies up to
//!   [`STACK_COPY`] bytes from the stack pointer and the registers unwinding starts from, in a
//!   [`StackCopyEvent`]; user space unwinds it with the binaries' unwind tables.
//!
//! Either event is sent before the growth it is the call site of: user space charges a thread's
//! growth to the thread's latest stack.

use crate::event::EventHeader;

/// Value bit of the targets map: the process is traced (every target has it).
pub const TARGET_TRACED: u32 = 1;
/// Value bit of the targets map: take this process's stacks as copies ([`StackCopyEvent`]), not
/// along frame pointers. Inherited over fork; user space sets it again after exec.
pub const TARGET_COPY_STACK: u32 = 2;

/// Bytes of user stack a [`StackCopyEvent`] can carry.
pub const STACK_COPY: usize = 16 * 1024;
/// The copy is read in chunks of this size: the last chunk that reads is where it ends (the
/// stack's top is not always [`STACK_COPY`] bytes above the stack pointer).
pub const STACK_CHUNK: usize = 1024;

/// Frames the kernel's stack map holds per stack (the kernel's `PERF_MAX_STACK_DEPTH`).
pub const MAX_FP_FRAMES: usize = 127;

/// Where a stack was taken (`at` of [`StackEvent`] and [`StackCopyEvent`]): at a page fault that
/// made memory resident. The thread's resident growth from then on is charged to it.
pub const AT_FAULT: u32 = 0;
/// At the return of a memory syscall that grew the address space (mmap, brk, mremap): the call
/// site of the [`crate::mem::MemEvent`] that follows it on the same thread.
pub const AT_SYSCALL: u32 = 1;

/// At the return of a heap allocation (`malloc`, `calloc`, `realloc`) of a block the heap
/// probes follow: the call site of the [`crate::heap::HeapEvent`] that follows it on the same
/// thread.
pub const AT_HEAP: u32 = 2;

/// Stacks a CPU may take at once before [`crate::config::GLOBAL_STACK_RATE`] limits it.
pub const STACK_BURST: u64 = 256;
/// Default of [`crate::config::GLOBAL_STACK_RATE`]: stacks per CPU per second.
pub const DEFAULT_STACK_RATE: u64 = 2000;

/// `stack_id` of a [`StackEvent`] for a stack skipped to keep memwatch's cost bounded: the CPU's
/// budget was spent, or the ring buffer too full for a copy (`-EBUSY`). The thread's growth
/// stays with its latest stack of the same request (none after a socket boundary).
pub const SKIPPED: i64 = -16;

/// A CPU's stack token bucket: tokens in billionths, and when it was last filled.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StackBudget {
    pub nano_tokens: u64,
    pub last_ns: u64,
}

/// A stack taken along frame pointers.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StackEvent {
    pub header: EventHeader,
    /// The id in the stack map (`memwatch_common::config::MAP_STACKS`), or a negative errno when
    /// the kernel could not keep it (the map full, or a different stack with the same hash).
    pub stack_id: i64,
    /// [`AT_FAULT`] or [`AT_SYSCALL`].
    pub at: u32,
    pub _pad: u32,
}

/// A copy of the user stack and the registers unwinding starts from.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackCopyEvent {
    pub header: EventHeader,
    /// Instruction, stack and frame pointer of the user code, where it trapped into the kernel.
    pub ip: u64,
    pub sp: u64,
    pub bp: u64,
    /// Bytes of `data` copied from `sp` upwards (a multiple of [`STACK_CHUNK`]).
    pub len: u64,
    /// [`AT_FAULT`] or [`AT_SYSCALL`].
    pub at: u32,
    pub _pad: u32,
    pub data: [u8; STACK_COPY],
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain-old-data: repr(C), integer fields only, no implicit padding (layouts pinned
    // by tests/layout.rs), so every bit pattern is a valid value.
    unsafe impl aya::Pod for super::StackEvent {}
    // SAFETY: as above; an EventHeader, integers and a byte array.
    unsafe impl aya::Pod for super::StackCopyEvent {}
    // SAFETY: as above; integers.
    unsafe impl aya::Pod for super::StackBudget {}
}
