//! The two clocks: the kernel's (CLOCK_MONOTONIC, what events are stamped with) and the wall
//! clock the recording is written in, and the offset between them.

use super::Session;
use crate::units::NS_PER_SEC;

/// CLOCK_MONOTONIC now, in ns: the clock of `bpf_ktime_get_ns`.
pub(super) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * NS_PER_SEC as u64 + ts.tv_nsec as u64
}

/// Now, in wall-clock nanoseconds since the Unix epoch.
pub(crate) fn wall_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

impl Session {
    pub(super) fn wall(&self, mono: u64) -> i64 {
        mono as i64 + self.offset
    }
}
