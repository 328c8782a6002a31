//! Where the kernel side reads tracepoint records, shared with the user-space preflight that
//! checks it against this kernel's format files (`events/<category>/<name>/format` in tracefs).
//!
//! - Syscall tracepoints (`syscalls:sys_enter_*`, `sys_exit_*`) share one layout: an 8-byte
//!   common header, `__syscall_nr` at 8, then each argument in its own 8-byte slot from 16 (even
//!   an `int`); `sys_exit_*` has `long ret` at 16. The kernel side reads them at these constant
//!   offsets, with one direct context load each: the verifier accepts a context load only at an
//!   offset encoded in the instruction, and these hooks run for every process on the host. User
//!   space checks every field read this way before loading anything.
//! - Other tracepoints' fields are read at offsets user space takes from the format files and
//!   passes as load-time globals (`config::GLOBAL_*_OFFSET`), through a helper call each.

/// Offset of the first argument in a `sys_enter_*` record.
pub const SYSCALL_ARGS: u32 = 16;
/// Size of each argument's slot in a `sys_enter_*` record, whatever the argument's C type.
pub const SYSCALL_ARG_SIZE: u32 = 8;
/// Offset of `long ret` in a `sys_exit_*` record.
pub const SYSCALL_RET: u32 = 16;
/// Size of `long ret` in a `sys_exit_*` record.
pub const SYSCALL_RET_SIZE: u32 = 8;

/// Offset of argument `n` (from 0) in a `sys_enter_*` record.
#[inline(always)]
pub const fn syscall_arg(n: u32) -> u32 {
    SYSCALL_ARGS + SYSCALL_ARG_SIZE * n
}

/// `address` of `exceptions:page_fault_user`: read with a direct context load on every user
/// page fault of the host, hence a fixed offset (checked against the format before loading).
pub const PAGE_FAULT_ADDRESS: u32 = 8;
/// Size of `unsigned long address`.
pub const PAGE_FAULT_ADDRESS_SIZE: u32 = 8;

/// `kmem:rss_stat`, read with direct context loads: it fires on every change of any process's
/// resident counters on the host, so its fields are at fixed offsets (checked against the format
/// before loading). `curr` (unsigned int): the changed mm is the current task's.
pub const RSS_STAT_CURR: u32 = 12;
/// `member` (int): which counter (`proc::MM_FILEPAGES`, ...).
pub const RSS_STAT_MEMBER: u32 = 16;
/// `size` (long): the counter's value, in bytes.
pub const RSS_STAT_SIZE: u32 = 24;

/// A field read at a load-time offset must end within this many bytes of the record's start.
/// The kernel side reads nothing past it, and user space refuses a format that puts such a field
/// there, so a bad offset can never make the kernel side read outside the record.
pub const FIELD_REACH: u32 = 512;

/// The value of an offset global that user space did not set: beyond [`FIELD_REACH`], so the
/// kernel side reads nothing rather than guess.
pub const OFFSET_UNSET: u32 = u32::MAX;
