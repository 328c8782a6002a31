//! Call sites (`record --stacks`): the user stack of the current thread, sent before the growth
//! it is the call site of. See `memwatch_common::stack` for when a stack is taken and the two
//! ways it is taken.

use aya_ebpf::{
    bindings::{BPF_F_USER_STACK, pt_regs},
    helpers::{
        bpf_probe_read_kernel,
        generated::{bpf_get_current_task_btf, bpf_probe_read_user, bpf_task_pt_regs},
    },
    programs::tracing::StackIdContext,
};
use memwatch_common::{
    EventKind,
    config::Counter,
    proc::ThreadFaults,
    stack::{
        AT_FAULT, AT_HEAP, SKIPPED, STACK_BURST, STACK_CHUNK, STACK_COPY, StackCopyEvent,
        StackEvent, TARGET_COPY_STACK,
    },
};

use crate::{
    emit::{count, header, reserve, submit},
    maps::{
        EVENTS, STACK_BUDGET, STACK_COPY_ROOM, STACK_EVERY, STACK_RATE, STACKS, TARGETS, global,
    },
};

const BPF_RB_AVAIL_DATA: u64 = 0;
const NS_PER_S: u64 = 1_000_000_000;

/// Takes a token from this CPU's bucket, refilled at [`crate::maps::STACK_RATE`] per second up
/// to [`STACK_BURST`]; false when none is left.
#[inline(always)]
fn budget() -> bool {
    let Some(slot) = STACK_BUDGET.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: per-CPU slot; programs do not preempt each other on one CPU.
    let b = unsafe { &mut *slot };
    // SAFETY: helper with no preconditions.
    let now = unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() };
    // At most a second's refill at most a million a second: the product fits in 64 bits (a
    // checked multiplication would need a 128-bit helper the verifier lacks).
    let elapsed = now.saturating_sub(b.last_ns).min(NS_PER_S);
    b.last_ns = now;
    let rate = global(&STACK_RATE).min(1_000_000);
    let full = STACK_BURST * NS_PER_S;
    b.nano_tokens = b
        .nano_tokens
        .saturating_add(elapsed.wrapping_mul(rate))
        .min(full);
    if b.nano_tokens < NS_PER_S {
        return false;
    }
    b.nano_tokens -= NS_PER_S;
    true
}

/// `stack_due` after a socket boundary: the next growth takes a stack.
pub(crate) const DUE_NOW: u64 = u64::MAX;

/// Whether the thread's next resident growth takes a stack (`--stacks`).
#[inline(always)]
pub(crate) fn fault_stack_due(t: &ThreadFaults) -> bool {
    let every = global(&STACK_EVERY);
    every != 0 && t.stack_due >= every
}

/// Adds `bytes` of growth to the thread's count since its last stack taken `at` a fault
/// (`stack_due`) or a syscall (`map_due`), and takes one when a [`crate::maps::STACK_EVERY`]'s
/// worth has been reached (or a boundary made it due). Does nothing when stacks are off.
#[inline(always)]
pub(crate) fn maybe_take<C: StackIdContext>(
    ctx: &C,
    t: &mut ThreadFaults,
    tid: u32,
    bytes: u64,
    at: u32,
) {
    let every = global(&STACK_EVERY);
    if every == 0 {
        return;
    }
    let due = if at == AT_FAULT {
        &mut t.stack_due
    } else {
        &mut t.map_due
    };
    if *due < every {
        *due = due.saturating_add(bytes);
        return;
    }
    *due = 0;
    take(ctx, t.tgid, tid, at);
}

/// Sends the current thread's user stack as the call site of the heap block the allocator is
/// returning ([`AT_HEAP`]), when stacks are on and the budget allows.
#[inline(always)]
pub(crate) fn take_at_heap<C: StackIdContext>(ctx: &C, tgid: u32, tid: u32) {
    if global(&STACK_EVERY) != 0 {
        take(ctx, tgid, tid, AT_HEAP);
    }
}

/// Sends the current thread's user stack: along frame pointers, or as a copy for a process user
/// space marked [`TARGET_COPY_STACK`].
#[inline(always)]
fn take<C: StackIdContext>(ctx: &C, tgid: u32, tid: u32, at: u32) {
    // SAFETY: the value is copied out.
    let flags = unsafe { TARGETS.get(tgid) }.copied().unwrap_or(0);
    let copying = flags & TARGET_COPY_STACK != 0;
    // Skipped, and said so, when this CPU's budget is spent or a copy would crowd the ring
    // buffer: the thread's growth stays with its latest stack.
    let skip = !budget() || (copying && EVENTS.query(BPF_RB_AVAIL_DATA) > global(&STACK_COPY_ROOM));
    if copying && !skip {
        copy(tgid, tid, at);
        return;
    }
    // A failure is sent as the negative errno: user space counts it as lost.
    let stack_id = if skip {
        SKIPPED
    } else {
        match ctx.get_stackid(&STACKS, u64::from(BPF_F_USER_STACK)) {
            Ok(id) => id,
            Err(e) => i64::from(e),
        }
    };
    let Some(mut entry) = reserve::<StackEvent>() else {
        return;
    };
    entry.write(StackEvent {
        header: header(EventKind::Stack, tgid, tid),
        stack_id,
        at,
        _pad: 0,
    });
    submit(entry);
}

/// Sends the user registers and up to `STACK_COPY` bytes of the user stack from its pointer.
#[inline(always)]
fn copy(tgid: u32, tid: u32, at: u32) {
    // SAFETY: the helper returns the current task, always valid in a tracing program.
    let task = unsafe { bpf_get_current_task_btf() };
    // SAFETY: `task` is the current task; the helper returns its user registers.
    let regs = unsafe { bpf_task_pt_regs(task) } as *const pt_regs;
    // SAFETY: a kernel read into a local; it fails safely on a bad pointer.
    let Ok(regs) = (unsafe { bpf_probe_read_kernel(regs) }) else {
        count(Counter::StacksLost);
        return;
    };
    let Some(mut entry) = reserve::<StackCopyEvent>() else {
        return;
    };
    let event = entry.as_mut_ptr();
    // SAFETY: `event` points to the reserved record, written field by field before submission
    // (the record is too large to build on the 512-byte stack).
    unsafe {
        (*event).header = header(EventKind::StackCopy, tgid, tid);
        (*event).ip = regs.rip;
        (*event).sp = regs.rsp;
        (*event).bp = regs.rbp;
        (*event).at = at;
        (*event)._pad = 0;
        let data = (*event).data.as_mut_ptr();
        let mut len = 0;
        for i in 0..STACK_COPY / STACK_CHUNK {
            let off = i * STACK_CHUNK;
            let src = regs.rsp.wrapping_add(off as u64) as *const core::ffi::c_void;
            if bpf_probe_read_user(data.add(off).cast(), STACK_CHUNK as u32, src) != 0 {
                break;
            }
            len = off + STACK_CHUNK;
        }
        (*event).len = len as u64;
    }
    submit(entry);
}
