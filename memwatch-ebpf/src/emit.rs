//! Ring-buffer submission and the loss counters.

use core::intrinsics::{AtomicOrdering, atomic_xadd};

use aya_ebpf::maps::{PerCpuArray, ring_buf::RingBufEntry};
use memwatch_common::{config::Counter, event::EventHeader};

use crate::maps::{COUNTERS, EVENTS, WAKEUP_BYTES, global};

const BPF_RB_AVAIL_DATA: u64 = 0;
const BPF_RB_NO_WAKEUP: u64 = 1;
const BPF_RB_FORCE_WAKEUP: u64 = 2;

/// Adds one to a per-CPU counter.
#[inline(always)]
pub(crate) fn count(counter: Counter) {
    add_one(&COUNTERS, counter as u32);
}

/// Adds one to slot `index` of a per-CPU array, atomically: a uprobe's program runs with
/// preemption on, so another program can run on the same CPU between a load and a store
/// (bcc's memleak uses an atomic add for the same reason).
#[inline(always)]
pub(crate) fn add_one(map: &PerCpuArray<u64>, index: u32) {
    if let Some(slot) = map.get_ptr_mut(index) {
        // SAFETY: `slot` points to this CPU's u64 in the map, valid and 8-byte aligned for
        // the program's run. (`AtomicU64::fetch_add` does not exist for the BPF target, which
        // only declares atomic loads and stores; the intrinsic compiles to BPF's atomic add.)
        unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(slot, 1) };
    }
}

/// Reserves room for a `T`, or counts a drop and returns `None`.
#[inline(always)]
pub(crate) fn reserve<T: 'static>() -> Option<RingBufEntry<T>> {
    let entry = EVENTS.reserve::<T>(0);
    if entry.is_none() {
        count(Counter::RingbufDrops);
    }
    entry
}

/// Submits an entry. The reader is woken only once enough data is waiting; otherwise it polls
/// on a short timer. Waking per event would cost more than the event itself.
#[inline(always)]
pub(crate) fn submit<T>(entry: RingBufEntry<T>) {
    let flags = if EVENTS.query(BPF_RB_AVAIL_DATA) >= global(&WAKEUP_BYTES) {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    entry.submit(flags);
}

/// Builds a header for the current task, stamped now.
#[inline(always)]
pub(crate) fn header(kind: memwatch_common::EventKind, tgid: u32, tid: u32) -> EventHeader {
    // SAFETY: helper with no preconditions.
    header_at(kind, tgid, tid, unsafe {
        aya_ebpf::helpers::bpf_ktime_get_ns()
    })
}

/// Builds a header stamped `ts_ns`, for a program that already read the clock.
#[inline(always)]
pub(crate) fn header_at(
    kind: memwatch_common::EventKind,
    tgid: u32,
    tid: u32,
    ts_ns: u64,
) -> EventHeader {
    EventHeader {
        kind: kind as u32,
        tgid,
        tid,
        _pad: 0,
        ts_ns,
    }
}
