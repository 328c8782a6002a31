//! Following processes: new processes of a target become targets (unless user space turned
//! that off), exits are reported with the thread's final fault count, and exec renames.

use aya_ebpf::{helpers::bpf_get_current_comm, macros::tracepoint, programs::TracePointContext};
use memwatch_common::{
    EventKind,
    config::Counter,
    proc::{CLONE_THREAD, ProcEvent},
};

use crate::{
    ctx::field,
    emit::{count, header, reserve, submit},
    fault::{flush_run, thread_faults},
    maps::{FOLLOW_FORKS, TARGETS, THREAD_FAULTS, global},
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
pub fn task_newtask(ctx: TracePointContext) -> u32 {
    let (tgid, tid) = current();
    if global(&FOLLOW_FORKS) == 0 || !is_target(tgid) {
        return 0;
    }
    // Offsets from /sys/kernel/tracing/events/task/task_newtask/format.
    let pid = field::<i32>(&ctx, 8) as u32;
    let flags = field::<u64>(&ctx, 32);
    if pid == 0 || flags & CLONE_THREAD != 0 {
        return 0;
    }
    if TARGETS.insert(pid, 1, 0).is_err() {
        count(Counter::MapFull);
        return 0;
    }
    send(EventKind::Fork, tgid, tid, pid, 0, 0);
    0
}

#[tracepoint]
pub fn sched_process_exec(_ctx: TracePointContext) -> u32 {
    let (tgid, tid) = current();
    if is_target(tgid) {
        send(EventKind::Exec, tgid, tid, 0, 0, 0);
    }
    0
}

#[tracepoint]
pub fn sched_process_exit(ctx: TracePointContext) -> u32 {
    let (tgid, tid) = current();
    if !is_target(tgid) {
        return 0;
    }
    // Offset from /sys/kernel/tracing/events/sched/sched_process_exit/format.
    let group_dead = u32::from(field::<u8>(&ctx, 32));
    flush_run(tid);
    let faults = thread_faults(tid);
    let _ = THREAD_FAULTS.remove(tid);
    if group_dead != 0 {
        let _ = TARGETS.remove(tgid);
    }
    send(EventKind::Exit, tgid, tid, 0, group_dead, faults);
    0
}
