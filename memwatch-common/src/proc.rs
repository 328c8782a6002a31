//! Process lifecycle (fork, exec, exit) and per-thread page-fault counters.

use crate::event::EventHeader;

/// `clone_flags` bit that makes a new task a thread of its creator's process.
pub const CLONE_THREAD: u64 = 0x0001_0000;

/// A fork, exec or exit of a traced task.
///
/// - Fork: `header.tgid`/`tid` are the parent; `child` is the new process id.
/// - Exec: `header` is the task that exec'd; `comm` its new name.
/// - Exit: `header` is the exiting thread; `faults` its final page-fault count, and
///   `group_dead` is 1 when it was the last thread of its process.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcEvent {
    pub header: EventHeader,
    pub child: u32,
    pub group_dead: u32,
    pub faults: u64,
    pub comm: [u8; 16],
}

/// Value of the per-thread page-fault map: readable from user space at any instant.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadFaults {
    pub tgid: u32,
    pub _pad: u32,
    /// User page faults this thread has taken since memwatch started watching it.
    pub faults: u64,
    /// The run of adjacent pages the thread has faulted in since its last [`GrowthEvent`]:
    /// `[run_start, run_end)`, empty when equal. Sent as one event when a fault breaks the run,
    /// and before any event of the thread that could change whom the memory is charged to.
    pub run_start: u64,
    pub run_end: u64,
    /// The page of the thread's latest fault, until a resident counter confirms it (0 when
    /// none). A fault is growth only when the kernel counts a page for it: a copy-on-write of a
    /// page shared since fork, a read of never-written memory (the shared zero page) and a
    /// spurious fault change no counter, and are not growth.
    pub pending: u64,
    /// The page the thread's latest confirmed fault added (0 when none): where a huge page it
    /// made resident lies (see [`RssSeen`]).
    pub last: u64,
    /// The page of a fault the file counter counted (a file mapping; fault-around maps it with
    /// its neighbours, and the file counter's change carries them all); added after all if an
    /// anonymous page follows in the same fault (a copy-on-write of a file page). 0 when none.
    pub file_dropped: u64,
    /// When the run's first page was faulted in (`bpf_ktime_get_ns`).
    pub run_ns: u64,
    /// Bytes made resident since the thread's last stack at a fault (`--stacks`); `u64::MAX`
    /// after a socket boundary, so that the next growth takes one.
    pub stack_due: u64,
    /// The same for address space mapped, and stacks at memory syscalls.
    pub map_due: u64,
    /// The request user space charges this thread to, as far as the kernel side can tell: the
    /// connection ([`crate::net::conn_key`]) and [`crate::net::ConnState::request_ns`] of the
    /// last request boundary this thread sent (a read of a request, or a response's start).
    /// 0 when none.
    pub serving_conn: u64,
    pub serving_since: u64,
}

/// The last resident counters (`kmem:rss_stat`, bytes) seen per traced process.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RssSeen {
    /// `MM_FILEPAGES`. A change is sent as a [`FilePagesEvent`]; the page of the fault that made
    /// it is not added to the thread's run, so that it is not counted twice.
    pub file: i64,
    /// `MM_ANONPAGES`. A jump of at least [`HUGE_FAULT_MIN`] in the faulting thread is a
    /// transparent huge page made resident by its latest fault, which the fault run counted as
    /// one page: the kernel side then sends the whole huge page as growth.
    pub anon: i64,
}

/// `member` of `kmem:rss_stat` for anonymous pages.
pub const MM_ANONPAGES: i32 = 1;
/// `member` of `kmem:rss_stat` for shared memory pages (MAP_SHARED anonymous, tmpfs).
pub const MM_SHMEMPAGES: i32 = 3;

/// Bytes of a PMD-sized transparent huge page on x86-64.
pub const HUGE_PAGE: u64 = 2 * 1024 * 1024;

/// The smallest jump of the anonymous counter taken as a huge page fault: half of one. The
/// counter is per CPU and folds in batches of a few dozen pages, far below this.
pub const HUGE_FAULT_MIN: i64 = (HUGE_PAGE / 2) as i64;

/// Pages a traced thread made resident: `[start, start + len)`, faulted in one after another
/// (a fault on a page already in the run is not counted twice).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrowthEvent {
    pub header: EventHeader,
    pub start: u64,
    pub len: u64,
    /// When the first page of the run was faulted in (the header has when it was sent). A run
    /// is sent late, when the thread breaks it or reaches a boundary: another thread may have
    /// released some of its pages in between, which user space then knows not to count.
    pub first_ns: u64,
}

/// A change of a traced process's file-backed resident pages (`kmem:rss_stat`, `MM_FILEPAGES`),
/// seen in the thread that made it. One fault on a file mapping can map many pages at once
/// (fault-around), which the fault runs count as one page: this carries the rest.
///
/// `delta` is the change of the counter since the process's previous event. The counter is read
/// per CPU and can lag by a batch, so one delta may carry pages of an earlier fault; sums are
/// exact.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilePagesEvent {
    pub header: EventHeader,
    /// Bytes.
    pub delta: i64,
}

/// `member` of `kmem:rss_stat` for file-backed pages.
pub const MM_FILEPAGES: i32 = 0;

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain-old-data: repr(C), integer fields only, no implicit padding (layouts pinned
    // by tests/layout.rs), so every bit pattern is a valid value.
    unsafe impl aya::Pod for super::ThreadFaults {}
    // SAFETY: as above; its fields are an EventHeader, integers and a byte array.
    unsafe impl aya::Pod for super::ProcEvent {}
    // SAFETY: as above; an EventHeader and integers.
    unsafe impl aya::Pod for super::GrowthEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::FilePagesEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::RssSeen {}
}
