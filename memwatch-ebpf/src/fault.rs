//! Resident growth: user page faults counted per thread in the kernel, never one event per fault.
//! User space reads the map at any instant; socket events carry the current thread's count.
//!
//! Which pages: each thread keeps the run of adjacent pages it has faulted in (upwards, as a
//! buffer is filled, or downwards, as a stack grows). A fault outside the run sends the run as
//! one [`GrowthEvent`] and starts a new one; [`flush_run`] sends it before any event of the thread
//! that may change whom the memory is charged to (a socket boundary, a memory syscall, an exit).

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use memwatch_common::{
    EventKind,
    config::Counter,
    proc::{
        FilePagesEvent, GrowthEvent, HUGE_FAULT_MIN, HUGE_PAGE, MM_ANONPAGES, MM_FILEPAGES,
        MM_SHMEMPAGES, RssSeen, ThreadFaults,
    },
    stack::{AT_FAULT, AT_SYSCALL},
    tracepoint,
};

use crate::{
    ctx::field,
    emit::{count, header, reserve, submit},
    maps::{PAGE_SIZE, RSS_SEEN, THREAD_FAULTS, global},
    stack::{self, DUE_NOW},
    target::{current, is_target},
};

#[inline(always)]
fn now() -> u64 {
    // SAFETY: helper with no preconditions.
    unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() }
}

/// Longest run sent as one event (1 GiB of 4 KiB pages): bounds what one event stands for.
const MAX_RUN: u64 = 1 << 30;

fn send_run(tgid: u32, tid: u32, start: u64, end: u64, first_ns: u64) {
    let Some(mut entry) = reserve::<GrowthEvent>() else {
        return;
    };
    let header = header(EventKind::Growth, tgid, tid);
    let first_ns = if first_ns == 0 {
        header.ts_ns
    } else {
        first_ns
    };
    entry.write(GrowthEvent {
        header,
        start,
        len: end - start,
        first_ns,
    });
    submit(entry);
}

#[tracepoint]
pub(crate) fn page_fault_user(ctx: TracePointContext) -> u32 {
    let (tgid, tid) = current();
    // Every user fault on the host comes here: the address is read only for traced threads.
    let page_of = |ctx: &TracePointContext, page: u64| {
        // A direct load at the offset preflight checked against this kernel's format file.
        field::<u64>(ctx, tracepoint::PAGE_FAULT_ADDRESS as usize) & !(page.wrapping_sub(1))
    };
    if let Some(slot) = THREAD_FAULTS.get_ptr_mut(tid) {
        let addr = page_of(&ctx, global(&PAGE_SIZE));
        // SAFETY: only this thread writes its own slot, and a thread runs on one CPU at a time.
        let t = unsafe { &mut *slot };
        t.faults += 1;
        // Growth once a resident counter confirms it (`rss_stat`).
        t.pending = addr;
        t.file_dropped = 0;
        return 0;
    }
    if is_target(tgid) {
        let addr = page_of(&ctx, global(&PAGE_SIZE));
        let value = ThreadFaults {
            tgid,
            _pad: 0,
            faults: 1,
            run_start: 0,
            run_end: 0,
            pending: addr,
            last: 0,
            file_dropped: 0,
            run_ns: 0,
            stack_due: DUE_NOW,
            map_due: DUE_NOW,
            serving_conn: 0,
            serving_since: 0,
        };
        if THREAD_FAULTS.insert(tid, value, 0).is_err() {
            count(Counter::MapFull);
        }
    }
    0
}

/// Adds a page the thread made resident to its run, or sends the run and starts a new one. A
/// stack due (`--stacks`: a [`crate::maps::STACK_EVERY`]'s worth of growth since the last one,
/// or a socket boundary) also starts a new run, after the run before it was sent, so that the
/// stack is the call site of the new run's pages. Within a long run, so, a stack is taken every
/// so many bytes: the first pages of a block are often faulted in by the allocator writing its
/// header, the rest by the code that fills it.
#[inline(always)]
fn add_to_run(ctx: &TracePointContext, t: &mut ThreadFaults, tid: u32, addr: u64, page: u64) {
    if addr >= t.run_start && addr < t.run_end {
        return;
    }
    if !stack::fault_stack_due(t) && t.run_end - t.run_start < MAX_RUN {
        if addr == t.run_end && t.run_end > t.run_start {
            t.run_end += page;
            t.stack_due = t.stack_due.saturating_add(page);
            return;
        }
        if addr.wrapping_add(page) == t.run_start {
            t.run_start = addr;
            t.stack_due = t.stack_due.saturating_add(page);
            return;
        }
    }
    send_open_run(t, tid);
    t.run_start = addr;
    t.run_end = addr.wrapping_add(page);
    t.run_ns = now();
    stack::maybe_take(ctx, t, tid, page, AT_FAULT);
}

/// Sends the thread's open run of faulted pages, if any, and closes it.
#[inline(always)]
fn send_open_run(t: &mut ThreadFaults, tid: u32) {
    if t.run_end > t.run_start {
        send_run(t.tgid, tid, t.run_start, t.run_end, t.run_ns);
        t.run_start = 0;
        t.run_end = 0;
    }
}

/// [`flush_run`] at the return of a memory syscall, before its event, in the same map lookup:
/// when it grew the address space by `grown` bytes (0: it did not) and a stack is due
/// (`--stacks`), the syscall's call site is sent first.
#[inline(always)]
pub(crate) fn flush_before_syscall(ctx: &TracePointContext, tid: u32, grown: u64) {
    let Some(slot) = THREAD_FAULTS.get_ptr_mut(tid) else {
        return;
    };
    // SAFETY: only this thread writes its own slot, and a thread runs on one CPU at a time.
    let t = unsafe { &mut *slot };
    send_open_run(t, tid);
    if grown != 0 {
        stack::maybe_take(ctx, t, tid, grown, AT_SYSCALL);
    }
}

/// A memory syscall of this thread begins: a fault no counter confirmed is over, and the
/// counter changes the syscall makes (unmapping) are not its.
#[inline(always)]
pub(crate) fn end_fault(tid: u32) {
    if let Some(slot) = THREAD_FAULTS.get_ptr_mut(tid) {
        // SAFETY: only this thread writes its own slot, and a thread runs on one CPU at a time.
        let t = unsafe { &mut *slot };
        t.pending = 0;
        t.file_dropped = 0;
    }
}

/// Sends the current thread's pending run of faulted pages, if any, and returns its fault count
/// (0 when it has taken none yet): one map lookup for both, on paths that run per transfer.
#[inline(always)]
pub(crate) fn flush_run(tid: u32) -> u64 {
    let Some(slot) = THREAD_FAULTS.get_ptr_mut(tid) else {
        return 0;
    };
    // SAFETY: only this thread writes its own slot, and a thread runs on one CPU at a time.
    let t = unsafe { &mut *slot };
    send_open_run(t, tid);
    t.faults
}

/// [`flush_run`] at a socket boundary, where the request a thread serves may change: the
/// thread's next growth takes a stack (`--stacks`), so that it is not charged to the call site of
/// growth before the boundary. Also returns the thread's slot (null when it has none), for the
/// boundary's own bookkeeping ([`ThreadFaults::serving_conn`]) without a second lookup.
#[inline(always)]
pub(crate) fn flush_at_boundary(tid: u32) -> (u64, *mut ThreadFaults) {
    let Some(slot) = THREAD_FAULTS.get_ptr_mut(tid) else {
        return (0, core::ptr::null_mut());
    };
    // SAFETY: only this thread writes its own slot, and a thread runs on one CPU at a time.
    let t = unsafe { &mut *slot };
    t.stack_due = DUE_NOW;
    t.map_due = DUE_NOW;
    send_open_run(t, tid);
    (t.faults, slot)
}

/// Resident counters of a traced process changed, in the thread that changed them. This is
/// what turns the thread's latest fault into growth:
///
/// - anonymous or shmem pages: the faulting page was made resident (a fault no counter follows
///   is a copy-on-write of a page shared since fork, a read of never-written memory, or
///   spurious: no growth). A jump of the anonymous counter by half a huge page or more is a
///   transparent huge page: the whole huge page is sent as growth.
/// - file-backed pages: a fault on a file mapping maps up to sixteen pages at once
///   (fault-around). The counter's change carries them all and is sent as a
///   [`FilePagesEvent`]; the faulting page is not added on its own, unless an anonymous page
///   follows in the same fault (a copy-on-write of a file page: the file page goes, the
///   anonymous one comes).
///
/// Fires for every process on the host: the member and `curr` are tested before any map
/// lookup.
#[tracepoint]
pub(crate) fn rss_stat(ctx: TracePointContext) -> u32 {
    let member = field::<i32>(&ctx, tracepoint::RSS_STAT_MEMBER as usize);
    if (member != MM_FILEPAGES && member != MM_ANONPAGES && member != MM_SHMEMPAGES)
        || field::<u32>(&ctx, tracepoint::RSS_STAT_CURR as usize) == 0
    {
        return 0;
    }
    let (tgid, tid) = current();
    if !is_target(tgid) {
        return 0;
    }
    let page = global(&PAGE_SIZE);
    // The page of the thread's latest confirmed fault, for the huge-page check below (one map
    // lookup per event).
    let mut last_fault = 0;
    if let Some(slot) = THREAD_FAULTS.get_ptr_mut(tid) {
        // SAFETY: only this thread writes its own slot, and a thread runs on one CPU at a time.
        let t = unsafe { &mut *slot };
        if member == MM_FILEPAGES {
            if t.pending != 0 {
                t.file_dropped = t.pending;
                t.pending = 0;
                // The file pages this fault mapped are sent below, as a counter change: their
                // call site, when one is due, goes first, after the run it does not belong to.
                if stack::fault_stack_due(t) {
                    send_open_run(t, tid);
                }
                stack::maybe_take(&ctx, t, tid, page, AT_FAULT);
            }
        } else {
            if t.file_dropped != 0 {
                let p = t.file_dropped;
                t.file_dropped = 0;
                add_to_run(&ctx, t, tid, p, page);
                t.last = p;
            }
            if t.pending != 0 {
                let p = t.pending;
                t.pending = 0;
                add_to_run(&ctx, t, tid, p, page);
                t.last = p;
            }
        }
        last_fault = t.last;
    }
    if member == MM_SHMEMPAGES {
        return 0;
    }
    let size = field::<i64>(&ctx, tracepoint::RSS_STAT_SIZE as usize);
    let Some(seen) = RSS_SEEN.get_ptr_mut(tgid) else {
        // The first event of a process sets the baseline of both counters; the other one is
        // set by its own first event (0 is taken as unset).
        let first = if member == MM_FILEPAGES {
            RssSeen {
                file: size,
                anon: 0,
            }
        } else {
            RssSeen {
                file: 0,
                anon: size,
            }
        };
        if RSS_SEEN.insert(tgid, first, 0).is_err() {
            count(Counter::MapFull);
        }
        return 0;
    };
    // SAFETY: a map value; concurrent updates by another CPU can only make one delta stale,
    // which the next event corrects (the counter itself is what is compared).
    let seen = unsafe { &mut *seen };
    if member == MM_FILEPAGES {
        let last = seen.file;
        seen.file = size;
        if last == 0 || size == last {
            return 0;
        }
        // Faults of this thread come first: a release of file pages must not precede their
        // growth.
        let _ = flush_run(tid);
        let Some(mut entry) = reserve::<FilePagesEvent>() else {
            return 0;
        };
        entry.write(FilePagesEvent {
            header: header(EventKind::FilePages, tgid, tid),
            delta: size - last,
        });
        submit(entry);
        return 0;
    }
    let last = seen.anon;
    seen.anon = size;
    if last == 0 || size - last < HUGE_FAULT_MIN {
        return 0;
    }
    if last_fault == 0 {
        return 0;
    }
    let _ = flush_run(tid);
    let start = last_fault & !(HUGE_PAGE - 1);
    send_run(tgid, tid, start, start + HUGE_PAGE, 0);
    0
}
