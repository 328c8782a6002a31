//! glibc's allocator (`record --heap`), the libbpf-tools memleak way: the size is stashed per
//! thread at entry and paired with the pointer at return; live blocks are kept by address so
//! that `free` knows their size. User space attaches these uprobes per traced process, to that
//! process's own libc, so no other process on the host pays for them.
//!
//! Only blocks of at least a page that glibc carved from its heap are followed. Smaller blocks
//! cannot own a whole page; blocks glibc mapped on their own are followed through mmap and
//! munmap already, and their `free` is an munmap.
//!
//! Every hit is counted per probe (`HEAP_HITS`), whatever process it is in: a hit costs the
//! target a trap whether or not a block is followed, and user space keeps that cost within its
//! budget by attaching these probes only part of the time. User space places each probe on an
//! instruction the kernel emulates (`capture/probe/heap/sites.rs`), so the arguments are read
//! from the registers as they were at the function's entry.

use aya_ebpf::{
    helpers::bpf_probe_read_user,
    macros::{uprobe, uretprobe},
    programs::{ProbeContext, RetProbeContext},
};
use memwatch_common::{
    EventKind,
    config::Counter,
    heap::{
        GLIBC_IS_MMAPPED, GLIBC_SIZE_FLAGS, GO_PAGE_SIZE, HeapEvent, HeapKey, HeapOp, HeapPending,
        HeapSite,
    },
};

use crate::{
    emit::{add_one, count, header, reserve, submit},
    fault::flush_run,
    maps::{HEAP_HITS, HEAP_LIVE, HEAP_PENDING, PAGE_SIZE, global},
    stack,
    target::{current, is_target},
};

/// Counts a hit on `site`.
#[inline(always)]
fn hit(site: HeapSite) {
    add_one(&HEAP_HITS, site as u32);
}

// Inlined: BPF calls take at most five arguments.
#[inline(always)]
fn send(op: HeapOp, tgid: u32, tid: u32, addr: u64, len: u64, chunk: u64) {
    // Pages this thread faulted in before the call are reported first: they belong to whoever
    // held them before the block changed hands.
    let _ = flush_run(tid);
    let Some(mut entry) = reserve::<HeapEvent>() else {
        return;
    };
    entry.write(HeapEvent {
        header: header(EventKind::Heap, tgid, tid),
        op: op as u32,
        _pad: 0,
        addr,
        len,
        chunk,
    });
    submit(entry);
}

/// A block at `addr` went back to the allocator: reported if it was followed.
#[inline(always)]
fn release(tgid: u32, tid: u32, addr: u64) {
    let key = HeapKey {
        tgid,
        _pad: 0,
        addr,
    };
    // SAFETY: the value is copied out before the entry is removed.
    let Some(len) = (unsafe { HEAP_LIVE.get(key) }).copied() else {
        return;
    };
    let _ = HEAP_LIVE.remove(key);
    send(HeapOp::Free, tgid, tid, addr, len, 0);
}

#[inline(always)]
fn stash(size: u64, old: u64) {
    let (tgid, tid) = current();
    if !is_target(tgid) {
        return;
    }
    if size < global(&PAGE_SIZE) && old == 0 {
        return;
    }
    if HEAP_PENDING
        .insert(tid, HeapPending { size, old }, 0)
        .is_err()
    {
        count(Counter::MapFull);
    }
}

#[uprobe]
pub(crate) fn heap_realloc(ctx: ProbeContext) -> u32 {
    hit(HeapSite::Realloc);
    stash(
        ctx.arg::<u64>(1).unwrap_or(0),
        ctx.arg::<u64>(0).unwrap_or(0),
    );
    0
}

#[uprobe]
pub(crate) fn heap_free(ctx: ProbeContext) -> u32 {
    hit(HeapSite::Free);
    let (tgid, tid) = current();
    let addr = ctx.arg::<u64>(0).unwrap_or(0);
    if addr != 0 && is_target(tgid) {
        release(tgid, tid, addr);
    }
    0
}

/// The return of malloc, calloc or realloc. A realloc's entry stashed its size and old block;
/// malloc and calloc have no entry program (the kernel traps at their entry all the same, to
/// set up the return): their block's size is read from glibc's chunk header. One perf event
/// fewer per function: detaching each one waits out an RCU grace period in the kernel.
#[uretprobe]
pub(crate) fn heap_alloc_ret(ctx: RetProbeContext) -> u32 {
    hit(HeapSite::AllocReturn);
    let (tgid, tid) = current();
    if !is_target(tgid) {
        return 0;
    }
    let addr: u64 = ctx.ret();
    // SAFETY: the value is copied out before the entry is removed.
    let pending = (unsafe { HEAP_PENDING.get(tid) }).copied();
    if pending.is_some() {
        let _ = HEAP_PENDING.remove(tid);
    }
    if let Some(p) = pending
        && p.old != 0
        && addr != 0
    {
        // realloc succeeded: the old block is gone (moved, or resized in place).
        release(tgid, tid, p.old);
    }
    if addr < 16 {
        return 0;
    }
    // SAFETY: reads the chunk header glibc keeps just below the block; a bad address fails
    // safely and the block is then not followed.
    let Ok(word) = (unsafe { bpf_probe_read_user((addr - 8) as *const u64) }) else {
        return 0;
    };
    if word & GLIBC_IS_MMAPPED != 0 {
        return 0;
    }
    // The bytes asked for (realloc), or the chunk's usable size less its slack (malloc,
    // calloc): whole pages inside the block are what can change hands.
    let size = match pending {
        Some(p) => p.size,
        None => (word & !GLIBC_SIZE_FLAGS).saturating_sub(16),
    };
    if size < global(&PAGE_SIZE) {
        return 0;
    }
    let key = HeapKey {
        tgid,
        _pad: 0,
        addr,
    };
    if HEAP_LIVE.insert(key, size, 0).is_err() {
        count(Counter::MapFull);
        return 0;
    }
    // With --stacks, the call site of the block (at most as often as the stack budget allows):
    // memory a block takes from the heap changes hands without a fault, so no fault's stack
    // would name the code that holds it.
    stack::take_at_heap(&ctx, tgid, tid);
    send(HeapOp::Alloc, tgid, tid, addr, size, word);
    0
}

/// A Go span: base in RBX, length in Go pages in RCX (`memwatch_common::heap::GO_PROBES`).
#[inline(always)]
fn go_span(ctx: &ProbeContext, op: HeapOp) {
    let (tgid, tid) = current();
    if !is_target(tgid) {
        return;
    }
    // SAFETY: a uprobe's context is the task's saved registers; the verifier checks the reads.
    let (base, npages) = unsafe { ((*ctx.regs).rbx, (*ctx.regs).rcx) };
    if base == 0 || npages == 0 || npages > (1 << 40) / GO_PAGE_SIZE {
        return;
    }
    send(op, tgid, tid, base, npages * GO_PAGE_SIZE, 0);
}

#[uprobe]
pub(crate) fn go_span_alloc(ctx: ProbeContext) -> u32 {
    hit(HeapSite::GoSpanAlloc);
    go_span(&ctx, HeapOp::Alloc);
    0
}

#[uprobe]
pub(crate) fn go_span_free(ctx: ProbeContext) -> u32 {
    hit(HeapSite::GoSpanFree);
    go_span(&ctx, HeapOp::Free);
    0
}
