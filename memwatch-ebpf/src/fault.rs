//! Resident growth: user page faults counted per thread in the kernel, never one event per fault.
//! User space reads the map at any instant; socket events carry the current thread's count.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use memwatch_common::{config::Counter, proc::ThreadFaults};

use crate::{
    emit::count,
    maps::THREAD_FAULTS,
    target::{current, is_target},
};

#[tracepoint]
pub fn page_fault_user(_ctx: TracePointContext) -> u32 {
    let (tgid, tid) = current();
    if let Some(slot) = THREAD_FAULTS.get_ptr_mut(tid) {
        // SAFETY: only this thread writes its own slot, and a thread runs on one CPU at a time.
        unsafe { (*slot).faults += 1 };
        return 0;
    }
    if is_target(tgid) {
        let value = ThreadFaults {
            tgid,
            _pad: 0,
            faults: 1,
        };
        if THREAD_FAULTS.insert(tid, value, 0).is_err() {
            count(Counter::MapFull);
        }
    }
    0
}

/// The current thread's fault count (0 when it has taken none yet).
#[inline(always)]
pub fn thread_faults(tid: u32) -> u64 {
    // SAFETY: the value is copied out.
    unsafe { THREAD_FAULTS.get(tid) }.map_or(0, |v| v.faults)
}
