//! Reading tracepoint records: the verifier helpers in one place.
//!
//! A tracepoint program may load from its context directly (aligned, within the record), which
//! costs one instruction; `TracePointContext::read_at` calls `bpf_probe_read_kernel` instead, a
//! helper call per field. On syscall hooks that run for every process on the host, the
//! difference is paid on every read and write.

use aya_ebpf::{EbpfContext as _, programs::TracePointContext};

/// A field of the record at byte `offset`. `T` must be at most 8 bytes and `offset` a multiple
/// of its size (the verifier rejects the program otherwise, at load time).
#[inline(always)]
pub fn field<T: Copy>(ctx: &TracePointContext, offset: usize) -> T {
    // SAFETY: the kernel passes a pointer to the whole record; offsets come from the tracepoint
    // format files and the verifier checks every access against the context bounds.
    unsafe { core::ptr::read_volatile(ctx.as_ptr().cast::<u8>().add(offset).cast::<T>()) }
}

/// Syscall enter records: argument `n` (each in its own 8-byte slot from offset 16).
#[inline(always)]
pub fn syscall_arg(ctx: &TracePointContext, n: usize) -> u64 {
    field::<u64>(ctx, 16 + 8 * n)
}

/// Syscall exit records: the return value at offset 16.
#[inline(always)]
pub fn syscall_ret(ctx: &TracePointContext) -> i64 {
    field::<i64>(ctx, 16)
}
