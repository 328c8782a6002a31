//! Is this task traced?

use aya_ebpf::helpers::bpf_get_current_pid_tgid;

use crate::maps::{SELF_TGID, TARGETS, global};

/// The current task's `(tgid, tid)`.
#[inline(always)]
pub(crate) fn current() -> (u32, u32) {
    let id = bpf_get_current_pid_tgid();
    ((id >> 32) as u32, id as u32)
}

/// True when `tgid` is a target. memwatch's own tgid never is, whatever the map holds: a
/// tracer that traces itself feeds back forever.
#[inline(always)]
pub(crate) fn is_target(tgid: u32) -> bool {
    // SAFETY: the value is only tested for presence.
    tgid != global(&SELF_TGID) && unsafe { TARGETS.get(tgid) }.is_some()
}
