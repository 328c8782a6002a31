//! Following processes: new processes of a target become targets (unless user space turned
//! that off), exits are reported with the thread's final fault count, and exec renames.

use aya_ebpf::{helpers::bpf_get_current_comm, macros::tracepoint, programs::TracePointContext};
use memwatch_common::{
    EventKind,
    config::Counter,
    proc::{CLONE_THREAD, ProcEvent},
    stack::TARGET_TRACED,
};

use crate::{
    ctx::field_at,
    emit::{count, header, reserve, submit},
    fault::flush_run,
    maps::{
        EXIT_GROUP_DEAD_OFFSET, FOLLOW_FORKS, HEAP_PENDING, NEWTASK_CLONE_FLAGS_OFFSET,
        NEWTASK_PID_OFFSET, PENDING_MEM, RSS_SEEN, TARGETS, THREAD_FAULTS, global,
    },
    target::{current, is_target},
};

fn send(kind: EventKind, tgid: u32, tid: u32, child: u32, group_dead: u32, faults: u64) {
    let Some(mut entry) = reserve::<ProcEvent>() else {
        return;
    };
    entry.write(ProcEvent {
        header: header(kind, tgid, tid),
        child,
        group_dead,
        faults,
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
    });
    submit(entry);
}

/// `task:task_newtask` fires in the parent while the child cannot run yet, with the child's
/// pid and clone flags: the one place that tells a new process from a new thread.
#[tracepoint]
pub(crate) fn task_newtask(ctx: TracePointContext) -> u32 {
    let (tgid, tid) = current();
    if global(&FOLLOW_FORKS) == 0 || !is_target(tgid) {
        return 0;
    }
    // At the offsets this kernel's format file gives (set by user space, which checked the
    // widths); without them nothing is followed rather than a guess.
    let (Some(pid), Some(flags)) = (
        field_at::<i32>(&ctx, global(&NEWTASK_PID_OFFSET)),
        field_at::<u64>(&ctx, global(&NEWTASK_CLONE_FLAGS_OFFSET)),
    ) else {
        return 0;
    };
    let pid = pid as u32;
    if pid == 0 || flags & CLONE_THREAD != 0 {
        return 0;
    }
    // The child runs its parent's binary until it execs: it inherits how its stacks are taken.
    // SAFETY: the value is copied out.
    let flags = unsafe { TARGETS.get(tgid) }
        .copied()
        .unwrap_or(TARGET_TRACED);
    if TARGETS.insert(pid, flags, 0).is_err() {
        count(Counter::MapFull);
        return 0;
    }
    send(EventKind::Fork, tgid, tid, pid, 0, 0);
    0
}

#[tracepoint]
pub(crate) fn sched_process_exec(_ctx: TracePointContext) -> u32 {
    let (tgid, tid) = current();
    if is_target(tgid) {
        send(EventKind::Exec, tgid, tid, 0, 0, 0);
    }
    0
}

#[tracepoint]
pub(crate) fn sched_process_exit(ctx: TracePointContext) -> u32 {
    let (tgid, tid) = current();
    if !is_target(tgid) {
        return 0;
    }
    // At the offset this kernel's format file gives (set by user space). Without it, 0: the
    // process stays a target, and user space notices it is gone from /proc.
    let group_dead = field_at::<u8>(&ctx, global(&EXIT_GROUP_DEAD_OFFSET)).map_or(0, u32::from);
    let faults = flush_run(tid);
    // The thread's entries go with it, so that the maps return to their idle size however
    // threads end: one killed inside a memory syscall or an allocation leaves its enter behind.
    let _ = THREAD_FAULTS.remove(tid);
    let _ = PENDING_MEM.remove(tid);
    let _ = HEAP_PENDING.remove(tid);
    if group_dead != 0 {
        let _ = TARGETS.remove(tgid);
        let _ = RSS_SEEN.remove(tgid);
        // Its connections (closed by the exit, which no close syscall reports) are swept by
        // user space: a hash map cannot be walked here.
    }
    send(EventKind::Exit, tgid, tid, 0, group_dead, faults);
    0
}
