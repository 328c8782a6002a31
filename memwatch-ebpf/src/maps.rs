//! Every map and load-time global, in one place.

use aya_ebpf::{
    macros::map,
    maps::{HashMap, LruHashMap, PerCpuArray, RingBuf, StackTrace},
};
use memwatch_common::{
    config::COUNTER_SLOTS,
    heap::{HeapKey, HeapPending},
    mem::MemArgs,
    net::ConnState,
    proc::{RssSeen, ThreadFaults},
    tracepoint::OFFSET_UNSET,
};

// Load-time globals (set by user space before verification; names in memwatch_common::config).
#[unsafe(no_mangle)]
pub(crate) static SELF_TGID: u32 = 0;
#[unsafe(no_mangle)]
pub(crate) static FOLLOW_FORKS: u32 = 1;
#[unsafe(no_mangle)]
pub(crate) static CAPTURE_LEN: u32 = memwatch_common::net::DEFAULT_CAPTURE;
#[unsafe(no_mangle)]
pub(crate) static DEFER_RESPONSES: u32 = 1;
#[unsafe(no_mangle)]
pub(crate) static WAKEUP_BYTES: u64 = 64 * 1024;
#[unsafe(no_mangle)]
pub(crate) static PAGE_SIZE: u64 = 4096;
#[unsafe(no_mangle)]
pub(crate) static STACK_EVERY: u64 = 0;
#[unsafe(no_mangle)]
pub(crate) static STACK_RATE: u64 = memwatch_common::stack::DEFAULT_STACK_RATE;
#[unsafe(no_mangle)]
pub(crate) static STACK_COPY_ROOM: u64 = 1024 * 1024;
// Tracepoint field offsets from this kernel's format files (see memwatch_common::tracepoint).
#[unsafe(no_mangle)]
pub(crate) static NEWTASK_PID_OFFSET: u32 = OFFSET_UNSET;
#[unsafe(no_mangle)]
pub(crate) static NEWTASK_CLONE_FLAGS_OFFSET: u32 = OFFSET_UNSET;
#[unsafe(no_mangle)]
pub(crate) static EXIT_GROUP_DEAD_OFFSET: u32 = OFFSET_UNSET;

/// Reads a load-time global. `read_volatile` stops the compiler from folding the default value.
#[inline(always)]
pub(crate) fn global<T: Copy>(g: &'static T) -> T {
    // SAFETY: `g` is a valid, aligned static.
    unsafe { core::ptr::read_volatile(g) }
}

/// Traced processes (at most 4096; unlike the ring buffer, user space does not resize it).
#[map]
pub(crate) static TARGETS: HashMap<u32, u32> = HashMap::with_max_entries(4096, 0);

/// Every event. User space sizes it at load time.
#[map]
pub(crate) static EVENTS: RingBuf = RingBuf::with_byte_size(4 * 1024 * 1024, 0);

/// What could not be done: ring-buffer drops, unpaired exits, full maps.
#[map]
pub(crate) static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

/// User page faults per live traced thread.
#[map]
pub(crate) static THREAD_FAULTS: HashMap<u32, ThreadFaults> = HashMap::with_max_entries(65536, 0);

/// Memory-syscall arguments stashed at enter, keyed by tid, consumed at exit.
#[map]
pub(crate) static PENDING_MEM: HashMap<u32, MemArgs> = HashMap::with_max_entries(16384, 0);

/// Server-side connections, keyed by `memwatch_common::net::conn_key`.
#[map]
pub(crate) static CONNS: HashMap<u64, ConnState> = HashMap::with_max_entries(65536, 0);

/// Heap allocations between entry and return, keyed by tid (`record --heap`).
#[map]
pub(crate) static HEAP_PENDING: HashMap<u32, HeapPending> = HashMap::with_max_entries(16384, 0);

/// Live heap blocks of at least a page, by process and address, with their size.
#[map]
pub(crate) static HEAP_LIVE: HashMap<HeapKey, u64> = HashMap::with_max_entries(262_144, 0);

/// Hits on each heap probe (`memwatch_common::heap::HeapSite`), every hit counted: what user
/// space measures the heap probes' cost from.
#[map]
pub(crate) static HEAP_HITS: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(memwatch_common::heap::HEAP_SITES, 0);

/// The last resident counters seen per traced process; LRU, so processes gone need no cleanup.
#[map]
pub(crate) static RSS_SEEN: LruHashMap<u32, RssSeen> = LruHashMap::with_max_entries(4096, 0);

/// User stacks taken along frame pointers (`--stacks`), each distinct stack once. Entries are
/// never removed: user space reads each id once, and a full map is counted (`StacksLost`).
#[map]
pub(crate) static STACKS: StackTrace = StackTrace::with_max_entries(8192, 0);

/// Each CPU's stack token bucket (`--stacks`).
#[map]
pub(crate) static STACK_BUDGET: PerCpuArray<memwatch_common::stack::StackBudget> =
    PerCpuArray::with_max_entries(1, 0);
