//! Memory syscalls: arguments are stashed per thread at `sys_enter_*` and sent with the result
//! at `sys_exit_*`, so failed calls are reported as failed.
//!
//! Records are read at the syscall layout of `memwatch_common::tracepoint` (arguments in 8-byte
//! slots from offset 16, `ret` at 16). Every field read here is listed, by name, in user space's
//! hook table (`capture/probe/loader.rs`), and preflight checks each against this kernel's
//! format files before anything is loaded.

use aya_ebpf::{helpers::bpf_ktime_get_ns, macros::tracepoint, programs::TracePointContext};
use memwatch_common::{
    EventKind,
    config::Counter,
    mem::{MemArgs, MemEvent, MemOp},
};

use crate::{
    ctx::{syscall_arg, syscall_ret},
    emit::{count, header, reserve, submit},
    fault::{end_fault, flush_before_syscall},
    maps::PENDING_MEM,
    target::{current, is_target},
};

#[inline(always)]
fn stash(mut args: MemArgs) {
    let (tgid, tid) = current();
    if !is_target(tgid) {
        return;
    }
    end_fault(tid);
    // SAFETY: helper with no preconditions.
    args.began_ns = unsafe { bpf_ktime_get_ns() };
    if PENDING_MEM.insert(tid, args, 0).is_err() {
        count(Counter::MapFull);
    }
}

#[inline(always)]
fn finish(ctx: &TracePointContext, op: MemOp) {
    let (tgid, tid) = current();
    // SAFETY: the value is copied out before the entry is removed.
    let Some(args) = (unsafe { PENDING_MEM.get(tid) }).copied() else {
        if is_target(tgid) {
            count(Counter::UnpairedExits);
        }
        return;
    };
    let _ = PENDING_MEM.remove(tid);
    if args.op != op as u32 {
        count(Counter::UnpairedExits);
        return;
    }
    let ret = syscall_ret(ctx);
    // Address space grown: its call site goes before the event, when one is due (`--stacks`).
    let grown = match op {
        _ if ret < 0 => 0,
        MemOp::Mmap => args.len,
        MemOp::Mremap => args.new_len.saturating_sub(args.len),
        // The old break is not known here: a call that moved it counts as its first page.
        MemOp::Brk => 1,
        _ => 0,
    };
    // Pages faulted in before this call are reported before it, so that a release never
    // precedes the growth it releases.
    flush_before_syscall(ctx, tid, grown);
    let Some(mut entry) = reserve::<MemEvent>() else {
        return;
    };
    entry.write(MemEvent {
        header: header(EventKind::Mem, tgid, tid),
        args,
        ret,
    });
    submit(entry);
}

#[tracepoint]
pub(crate) fn mmap_enter(ctx: TracePointContext) -> u32 {
    stash(MemArgs {
        op: MemOp::Mmap as u32,
        addr: syscall_arg(&ctx, 0),
        len: syscall_arg(&ctx, 1),
        prot: syscall_arg(&ctx, 2) as u32,
        flags: syscall_arg(&ctx, 3),
        fd: i64::from(syscall_arg(&ctx, 4) as i32),
        ..MemArgs::default()
    });
    0
}

#[tracepoint]
pub(crate) fn mmap_exit(ctx: TracePointContext) -> u32 {
    finish(&ctx, MemOp::Mmap);
    0
}

#[tracepoint]
pub(crate) fn munmap_enter(ctx: TracePointContext) -> u32 {
    stash(MemArgs {
        op: MemOp::Munmap as u32,
        addr: syscall_arg(&ctx, 0),
        len: syscall_arg(&ctx, 1),
        ..MemArgs::default()
    });
    0
}

#[tracepoint]
pub(crate) fn munmap_exit(ctx: TracePointContext) -> u32 {
    finish(&ctx, MemOp::Munmap);
    0
}

#[tracepoint]
pub(crate) fn mremap_enter(ctx: TracePointContext) -> u32 {
    stash(MemArgs {
        op: MemOp::Mremap as u32,
        addr: syscall_arg(&ctx, 0),
        len: syscall_arg(&ctx, 1),
        new_len: syscall_arg(&ctx, 2),
        flags: syscall_arg(&ctx, 3),
        ..MemArgs::default()
    });
    0
}

#[tracepoint]
pub(crate) fn mremap_exit(ctx: TracePointContext) -> u32 {
    finish(&ctx, MemOp::Mremap);
    0
}

#[tracepoint]
pub(crate) fn brk_enter(ctx: TracePointContext) -> u32 {
    stash(MemArgs {
        op: MemOp::Brk as u32,
        addr: syscall_arg(&ctx, 0),
        ..MemArgs::default()
    });
    0
}

#[tracepoint]
pub(crate) fn brk_exit(ctx: TracePointContext) -> u32 {
    finish(&ctx, MemOp::Brk);
    0
}

#[tracepoint]
pub(crate) fn mprotect_enter(ctx: TracePointContext) -> u32 {
    stash(MemArgs {
        op: MemOp::Mprotect as u32,
        addr: syscall_arg(&ctx, 0),
        len: syscall_arg(&ctx, 1),
        prot: syscall_arg(&ctx, 2) as u32,
        ..MemArgs::default()
    });
    0
}

#[tracepoint]
pub(crate) fn mprotect_exit(ctx: TracePointContext) -> u32 {
    finish(&ctx, MemOp::Mprotect);
    0
}

#[tracepoint]
pub(crate) fn madvise_enter(ctx: TracePointContext) -> u32 {
    stash(MemArgs {
        op: MemOp::Madvise as u32,
        addr: syscall_arg(&ctx, 0),
        len: syscall_arg(&ctx, 1),
        flags: syscall_arg(&ctx, 2),
        ..MemArgs::default()
    });
    0
}

#[tracepoint]
pub(crate) fn madvise_exit(ctx: TracePointContext) -> u32 {
    finish(&ctx, MemOp::Madvise);
    0
}
