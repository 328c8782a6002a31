//! Reading tracepoint records: the verifier helpers in one place.
//!
//! Syscall records have a fixed layout (`memwatch_common::tracepoint`), read with direct context
//! loads: one instruction each, where `TracePointContext::read_at` would make a helper call per
//! field. On syscall hooks that run for every process on the host, the difference is paid on
//! every read and write. User space checks each of those fields against the kernel's format
//! files before loading. Fields of other tracepoints are read at offsets user space took from the
//! format files ([`field_at`]).

use aya_ebpf::{EbpfContext as _, helpers::bpf_probe_read_kernel, programs::TracePointContext};
use memwatch_common::tracepoint::{self, FIELD_REACH};

/// A field of the record at byte `offset`. `T` must be at most 8 bytes and `offset` a multiple
/// of its size (the verifier rejects the program otherwise, at load time).
#[inline(always)]
pub(crate) fn field<T: Copy>(ctx: &TracePointContext, offset: usize) -> T {
    // SAFETY: the kernel passes a pointer to the whole record; the verifier checks every access
    // against the context bounds.
    unsafe { core::ptr::read_volatile(ctx.as_ptr().cast::<u8>().add(offset).cast::<T>()) }
}

/// A field at a byte offset set at load time (a global holding what the format file says), or
/// `None` when it would end past [`FIELD_REACH`] (the offset is unset) or cannot be read.
///
/// The verifier refuses a direct context load at such an offset ("dereference of modified ctx
/// ptr"), even though it knows the global's value: the offset must be in the instruction. So
/// this costs a `bpf_probe_read_kernel` call; keep it off hot paths.
#[inline(always)]
pub(crate) fn field_at<T: Copy>(ctx: &TracePointContext, offset: u32) -> Option<T> {
    if offset > FIELD_REACH - size_of::<T>() as u32 {
        return None;
    }
    let src = ctx
        .as_ptr()
        .cast::<u8>()
        .wrapping_add(offset as usize)
        .cast::<T>();
    // SAFETY: the helper reads `size_of::<T>()` bytes from the record (the offset is bounded
    // above) into a local, and fails safely on a bad address.
    unsafe { bpf_probe_read_kernel(src) }.ok()
}

/// Syscall enter records: argument `n`, at `memwatch_common::tracepoint::syscall_arg(n)`.
#[inline(always)]
pub(crate) fn syscall_arg(ctx: &TracePointContext, n: u32) -> u64 {
    field::<u64>(ctx, tracepoint::syscall_arg(n) as usize)
}

/// Syscall exit records: the return value, at `memwatch_common::tracepoint::SYSCALL_RET`.
#[inline(always)]
pub(crate) fn syscall_ret(ctx: &TracePointContext) -> i64 {
    field::<i64>(ctx, tracepoint::SYSCALL_RET as usize)
}
