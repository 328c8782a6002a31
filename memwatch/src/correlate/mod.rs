//! Correlation: connections → HTTP requests → attribution. Pure logic: typed events in, rows
//! out, no I/O, so attribution is unit-tested with hand-built event sequences.
//!
//! The [`Correlator`] is one state, declared here, whose methods are split by job:
//! `requests.rs` follows requests through connections and threads and charges them their
//! syscalls and faults; `resident.rs` charges resident memory to its owner and credits releases
//! back; `vm_origin.rs` does the same for address space, `stack_origin.rs` per call site.
//!
//! # What is exact and what is not
//!
//! A request starts at the read that begins it and ends at the last write of its response
//! (known at the connection's next request or close, from the kernel's per-connection state;
//! a request still open when its process exits ends at the exit).
//! While it runs, the thread that read it is busy with it:
//! - memory syscalls on that thread between start and end are charged to it (net virtual
//!   growth and count);
//! - page faults on that thread between start and end are counted for it, exactly, from the
//!   kernel's per-thread counter read at each boundary (`faults`; `rss_bytes` is that count
//!   times the machine's page size, a rough figure: a fault may add no page, or a huge one);
//! - resident growth (`grown`) is the memory the thread made resident meanwhile, each page
//!   once, from the kernel side's runs of faulted pages and the resident counters: a
//!   transparent huge page counts whole (2 MiB), and file pages mapped around a fault count
//!   too (see `memwatch-ebpf/src/fault.rs`). With the heap probes, a heap block's resident
//!   pages move to whoever holds it; a request the heap probes did not follow (sampled out)
//!   leaves its growth to the outside-requests row. What becomes of that memory afterwards is
//!   [`origin`]'s.
//!
//! That is exact for thread-per-request servers. When a thread starts another request before
//! the current one ends (event loops such as nginx, pipelining), each event is charged to the
//! request most recently read on that thread, and every request involved is marked
//! approximate. A response written by a thread other than the reader is followed from its
//! first write on, and the request is marked approximate.

pub mod conn;
pub mod heap_window;
pub mod http;
pub mod intern;
pub mod interval;
pub mod join;
pub mod mem;
pub mod origin;
mod requests;
mod resident;
pub mod route;
mod stack_origin;
mod vm_origin;

// Keys are pids, tids, fds and kernel timestamps, not attacker-chosen strings: a fast
// non-cryptographic hash is safe here and is paid on every event.
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::sync::Arc;

use conn::ConnTrack;
pub use requests::ServedRequest;

use crate::model::{MemRow, RequestRow};
use origin::OriginMap;
use route::Router;

/// Bound on the spans of pages resident before tracing began, all processes together (about
/// 64 bytes each: 16 MiB). A process whose pages do not fit keeps the upper bound.
const BEFORE_MAX_SPANS: usize = 1 << 18;

type ReqId = i64;
type ConnKey = (u32, u32, u64);

#[derive(Debug)]
struct InFlight {
    row: RequestRow,
    key: ConnKey,
    /// Memory rows charged so far, held until the end is known.
    mem: Vec<MemRow>,
    /// Threads whose `current` was set to this request, to clear at its end.
    serving: smallvec::SmallVec<[u32; 2]>,
    /// Address space it mapped, and of that, unmapped before it ended ([`vm_origin`]).
    vm_grown: u64,
    vm_released: u64,
    /// Resident memory per call site (`--stacks`): grown, released before its end, pages.
    stacks: Vec<stack_origin::StackSums>,
}

/// Whom resident pages are charged to: a request (or [`OUTSIDE`] any), and the call site that
/// made them resident (`stacks.id`; 0 when stacks are off or none was taken).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Charge {
    pub request: ReqId,
    pub stack: u32,
}

#[derive(Debug, Default)]
struct ThreadState {
    /// The thread's fault counter at the last boundary seen on it.
    faults_seen: u64,
    /// The request this thread is working for.
    current: Option<ReqId>,
    /// The call site of its growth from now on (`--stacks`): its latest stack, 0 for none.
    stack: u32,
}

/// Turns socket boundaries and memory events into requests.
#[derive(Debug)]
pub struct Correlator {
    router: Router,
    routes: route::RouteCache,
    /// Methods and Host headers, shared by the rows that carry them.
    names: intern::Interner,
    redact_query: bool,
    /// The target's page size: resident growth is faults × this (one fault, one page).
    page_size: i64,
    next_id: ReqId,
    inflight: HashMap<ReqId, InFlight>,
    threads: HashMap<u32, ThreadState>,
    conns: HashMap<ConnKey, ConnTrack>,
    /// The last connection serial handed out.
    conn_serial: u64,
    completed: u64,
    /// Requests whose response started since the last [`Correlator::take_candidates`]; kept
    /// only when an access log is joined (see [`Correlator::joining`]).
    candidates: Vec<join::Candidate>,
    joining: bool,
    /// Which request (and call site) made each resident page resident.
    origin: OriginMap<Charge>,
    /// Whether growth is charged to call sites too (`--stacks`).
    stacks: bool,
    /// Completed requests that still hold resident memory: releases are credited to them.
    retained: HashMap<ReqId, Retained>,
    /// The pages resident when memwatch began to trace each process it attached to (pagemap),
    /// less those released or faulted in again since: releasing them is releasing memory of no
    /// known origin. A process is in `seeded` from its seeding to its exit or exec.
    before: OriginMap<()>,
    seeded: HashSet<u32>,
    /// Which request mapped each range of address space ([`vm_origin`]).
    vm_origin: OriginMap,
    /// Completed requests that still hold address space they mapped.
    vm_retained: HashMap<ReqId, Retained>,
    /// When the heap probes were on (their budget); `None` when the heap is not followed.
    heap: Option<heap_window::HeapWindows>,
}

/// A heap block handed out (`alloc`) or given back: `[addr, addr + len)`, and for one handed
/// out, the call site of its allocation when a stack was taken there (`--stacks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapBlock {
    pub alloc: bool,
    pub addr: u64,
    pub len: u64,
    pub stack: Option<u32>,
}

impl HeapBlock {
    pub fn given_back(addr: u64, len: u64) -> Self {
        Self {
            alloc: false,
            addr,
            len,
            stack: None,
        }
    }
}

/// The correlator's state, counted: what memwatch's memory grows with besides the origin
/// maps' spans.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateSizes {
    /// Connections followed.
    pub conns: u64,
    /// Traced threads seen at a boundary.
    pub threads: u64,
    /// Requests in flight.
    pub requests: u64,
    /// Completed requests that still hold memory or address space they made.
    pub retaining: u64,
}

impl StateSizes {
    /// The larger of each count.
    #[must_use]
    pub fn max(self, other: Self) -> Self {
        let Self {
            conns,
            threads,
            requests,
            retaining,
        } = self;
        Self {
            conns: conns.max(other.conns),
            threads: threads.max(other.threads),
            requests: requests.max(other.requests),
            retaining: retaining.max(other.retaining),
        }
    }
}

/// A completed request that still holds resident memory.
#[derive(Debug)]
struct Retained {
    end_ns: i64,
    method: Option<Arc<str>>,
    route: Option<Arc<str>>,
    /// Bytes it made resident that are still tracked.
    held: u64,
}

impl Correlator {
    pub fn new(router: Router, redact_query: bool, page_size: u64) -> Self {
        Self {
            router,
            routes: route::RouteCache::default(),
            names: intern::Interner::default(),
            redact_query,
            page_size: i64::try_from(page_size).unwrap_or(4096),
            next_id: 1,
            inflight: HashMap::default(),
            threads: HashMap::default(),
            conns: HashMap::default(),
            conn_serial: 0,
            completed: 0,
            candidates: Vec::new(),
            joining: false,
            origin: OriginMap::new(origin::DEFAULT_MAX_SPANS),
            stacks: false,
            retained: HashMap::default(),
            before: OriginMap::new(BEFORE_MAX_SPANS),
            seeded: HashSet::default(),
            vm_origin: OriginMap::new(origin::DEFAULT_MAX_SPANS),
            vm_retained: HashMap::default(),
            heap: None,
        }
    }

    /// The heap is followed (its probes may be off part of the time: see
    /// [`Correlator::heap_probes`]).
    #[must_use]
    pub fn following_heap(mut self) -> Self {
        self.heap = Some(heap_window::HeapWindows::default());
        self
    }

    /// Offers every request to the access-log join ([`Correlator::take_candidates`]). Off by
    /// default: without a log to join, the candidates would only be cloned and held.
    #[must_use]
    pub fn joining(mut self, on: bool) -> Self {
        self.joining = on;
        self
    }

    /// How much per-connection, per-thread and per-request state is held now.
    pub fn state_sizes(&self) -> StateSizes {
        StateSizes {
            conns: self.conns.len() as u64,
            threads: self.threads.len() as u64,
            requests: self.inflight.len() as u64,
            retaining: (self.retained.len() + self.vm_retained.len()) as u64,
        }
    }
}

#[cfg(test)]
mod tests;
