//! Names shared by both sides: load-time globals and maps.
//!
//! User space sets the globals with `EbpfLoader::override_global` before the programs are
//! verified, so the verifier sees them as constants.

/// `u32`: memwatch's own tgid. Never traced, whatever the targets map says.
pub const GLOBAL_SELF_TGID: &str = "SELF_TGID";
/// `u32`: 1 when new processes forked by a target become targets.
pub const GLOBAL_FOLLOW_FORKS: &str = "FOLLOW_FORKS";
/// `u32`: bytes of socket payload to copy per read or write, at most [`crate::net::MAX_CAPTURE`].
pub const GLOBAL_CAPTURE_LEN: &str = "CAPTURE_LEN";
/// `u32`: 1 when a response's start may be folded into its connection's next event (see
/// `net::ConnState::response_ns`); 0 sends every start at once, as the access-log join needs.
pub const GLOBAL_DEFER_RESPONSES: &str = "DEFER_RESPONSES";
/// `u64`: the target's page size; faults are followed at this granularity.
pub const GLOBAL_PAGE_SIZE: &str = "PAGE_SIZE";
/// `u64`: ring-buffer fill (bytes) above which a submit wakes the reader; below it, user space
/// polls on a timer. Batching wake-ups saves 7 to 15 µs per event on a busy server.
pub const GLOBAL_WAKEUP_BYTES: &str = "WAKEUP_BYTES";
/// `u64`: bytes a thread makes resident or maps between two stacks; 0 takes no stacks
/// (`record --stacks`, `--stack-every`). See [`crate::stack`].
pub const GLOBAL_STACK_EVERY: &str = "STACK_EVERY";
/// `u64`: stacks each CPU may take per second (a token bucket, bursts of
/// [`crate::stack::STACK_BURST`]); past it a stack is skipped (`--stacks`).
pub const GLOBAL_STACK_RATE: &str = "STACK_RATE";
/// `u64`: ring-buffer fill (bytes) above which no stack is copied: a copy must never crowd out
/// the events every figure depends on.
pub const GLOBAL_STACK_COPY_ROOM: &str = "STACK_COPY_ROOM";

// Tracepoint field offsets (`u32`, bytes from the record's start), taken by user space from this
// kernel's format files; see `crate::tracepoint`. Unset, they hold `tracepoint::OFFSET_UNSET`.
/// `u32`: offset of `pid` (`pid_t`, 4 bytes) in `task:task_newtask` records.
pub const GLOBAL_NEWTASK_PID_OFFSET: &str = "NEWTASK_PID_OFFSET";
/// `u32`: offset of `clone_flags` (8 bytes) in `task:task_newtask` records.
pub const GLOBAL_NEWTASK_CLONE_FLAGS_OFFSET: &str = "NEWTASK_CLONE_FLAGS_OFFSET";
/// `u32`: offset of `group_dead` (`bool`, 1 byte) in `sched:sched_process_exit` records.
pub const GLOBAL_EXIT_GROUP_DEAD_OFFSET: &str = "EXIT_GROUP_DEAD_OFFSET";

/// `HashMap<u32 tgid, u32 flags>`: the processes being traced ([`crate::stack::TARGET_TRACED`],
/// [`crate::stack::TARGET_COPY_STACK`]).
pub const MAP_TARGETS: &str = "TARGETS";
/// `RingBuf`: every event.
pub const MAP_EVENTS: &str = "EVENTS";
/// `HashMap<u32 tid, ThreadFaults>`: user page faults per live traced thread.
pub const MAP_THREAD_FAULTS: &str = "THREAD_FAULTS";
/// `PerCpuArray<u64>` indexed by [`Counter`]: what the kernel side could not do.
pub const MAP_COUNTERS: &str = "COUNTERS";
/// `HashMap<u64, ConnState>`: server-side connections, keyed by [`crate::net::conn_key`].
pub const MAP_CONNS: &str = "CONNS";
/// `HashMap<u32 tid, MemArgs>`: memory-syscall arguments between enter and exit.
pub const MAP_PENDING_MEM: &str = "PENDING_MEM";
/// `LruHashMap<u32 tgid, RssSeen>`: the last resident counters seen per traced process.
pub const MAP_RSS_SEEN: &str = "RSS_SEEN";

/// `HashMap<u32 tid, HeapPending>`: allocations between entry and return.
pub const MAP_HEAP_PENDING: &str = "HEAP_PENDING";
/// `HashMap<HeapKey, u64 len>`: live heap blocks of at least a page, per process.
pub const MAP_HEAP_LIVE: &str = "HEAP_LIVE";
/// `PerCpuArray<u64>` indexed by [`crate::heap::HeapSite`]: hits on each heap probe, what
/// the heap budget is measured from.
pub const MAP_HEAP_HITS: &str = "HEAP_HITS";

/// `StackTrace`: user stacks taken along frame pointers, each distinct stack once.
pub const MAP_STACKS: &str = "STACKS";
/// `PerCpuArray<StackBudget>` (one slot): the stack token bucket of each CPU.
pub const MAP_STACK_BUDGET: &str = "STACK_BUDGET";

/// Indexes into [`MAP_COUNTERS`].
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Ring-buffer reservations that failed: events lost.
    RingbufDrops = 0,
    /// A memory-syscall exit with no stashed enter (memwatch attached between the two).
    UnpairedExits = 1,
    /// A new connection or process could not be inserted because a map was full.
    MapFull = 2,
    /// A stack the kernel could not copy (its registers unreadable). Stacks the stack map could
    /// not keep are sent with a negative id instead, and counted by user space.
    StacksLost = 3,
}

/// Number of slots in [`MAP_COUNTERS`].
pub const COUNTER_SLOTS: u32 = 4;
