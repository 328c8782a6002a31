//! Correlation: connections → HTTP requests → attribution. Pure logic: typed events in, rows
//! out, no I/O, so attribution is unit-tested with hand-built event sequences.
//!
//! # What is exact and what is not
//!
//! A request starts at the read that begins it and ends at the last write of its response
//! (known at the connection's next request or close, from the kernel's per-connection state).
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
pub mod interval;
pub mod join;
pub mod mem;
pub mod origin;
pub mod route;
mod stack_origin;
mod vm_origin;

// Keys are pids, tids, fds and kernel timestamps, not attacker-chosen strings: a fast
// non-cryptographic hash is safe here and is paid on every event.
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::sync::Arc;

use conn::{ConnTrack, Parsed};
use memwatch_common::net::NetOp;

use crate::{
    capture::probe::NetRecord,
    model::{MemRow, ReleaseRow, RequestRow, Row},
};
use origin::{OUTSIDE, OriginCounts, OriginMap, Resident};
use route::Router;

/// Bound on the spans of pages resident before tracing began, all processes together (about
/// 64 bytes each: 16 MiB). A process whose pages do not fit keeps the upper bound.
const BEFORE_MAX_SPANS: usize = 1 << 18;

/// Memory rows held for one request before they are written early.
const MAX_HELD_ROWS: usize = 100_000;

type ReqId = i64;
type ConnKey = (u32, u32, u64);

#[derive(Debug)]
struct InFlight {
    row: RequestRow,
    key: ConnKey,
    /// Memory rows charged so far, held until the end is known.
    mem: Vec<MemRow>,
    /// Threads whose `current` was set to this request, to clear at its end.
    serving: Vec<u32>,
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

/// A connection's traffic that is not HTTP/1.x, as a row.
fn non_http_row(ev: &NetRecord, conn: u64, ts_ns: i64, kind: conn::NonHttp, bytes: u64) -> Row {
    Row::NonHttp {
        ts_ns,
        pid: ev.meta.header.tgid,
        conn,
        kind: kind.name(),
        bytes,
    }
}

/// Turns socket boundaries and memory events into requests.
#[derive(Debug)]
pub struct Correlator {
    router: Router,
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

    /// From `ts_ns` on the heap probes are `on`, or off: requests that start while they are
    /// off are sampled out.
    pub fn heap_probes(&mut self, ts_ns: i64, on: bool) {
        if let Some(w) = self.heap.as_mut() {
            w.set(ts_ns, on);
        }
    }

    /// Requests in flight that the heap probes follow: they are kept on until these end.
    pub fn followed_in_flight(&self) -> usize {
        self.inflight
            .values()
            .filter(|r| !r.row.sampled_out)
            .count()
    }

    /// Whether the heap probes were ever off while recording.
    pub fn heap_sampled(&self) -> bool {
        self.heap
            .as_ref()
            .is_some_and(heap_window::HeapWindows::sampled)
    }

    /// `ranges` of `pid` were resident when memwatch began to trace it (read from its pagemap
    /// after the probes were attached, before any of its events is handled). From then on a
    /// release there is told apart: pages of `ranges` are of unknown origin, other pages no span
    /// covers were never seen resident. Returns false, and keeps nothing, when the ranges do
    /// not fit under the bound: the process's releases then stay of unknown origin.
    pub fn resident_before(&mut self, pid: u32, ranges: &[(u64, u64)]) -> bool {
        let untracked = self.before.counts().untracked_bytes;
        for &(start, end) in ranges {
            self.before.grow(pid, start, end.saturating_sub(start), ());
        }
        if self.before.counts().untracked_bytes != untracked {
            self.before.exit(pid);
            return false;
        }
        self.seeded.insert(pid);
        true
    }

    /// `pid` is a new process (a fork): nothing is known of what it inherited. (Its PID's
    /// previous holder is forgotten at its exit; this also covers an exit whose event was lost.)
    pub fn forked(&mut self, pid: u32) {
        if self.seeded.remove(&pid) {
            self.before.exit(pid);
        }
    }

    /// What the origin map could not attribute, and what it holds.
    pub fn origin_counts(&self) -> OriginCounts {
        self.origin.counts()
    }

    /// `[start, start + len)` of `pid` became resident on thread `tid`, the first page at
    /// `first_ns`: charged to the request the thread serves, or to the outside-requests row.
    /// Pages another thread released after `first_ns` are not counted (see
    /// [`OriginMap::grow_run`]).
    #[expect(
        clippy::too_many_arguments,
        reason = "one growth event, taken apart by the caller"
    )]
    pub fn grow(
        &mut self,
        ts_ns: i64,
        pid: u32,
        tid: u32,
        start: u64,
        len: u64,
        first_ns: i64,
        out: &mut Vec<Row>,
    ) {
        let serving = self.resident_owner(tid);
        let owner = Charge {
            request: serving.unwrap_or(OUTSIDE),
            stack: self.stack_of(tid),
        };
        if self.seeded.contains(&pid) {
            // A page resident before that faults in again (after a swap-out, or a
            // copy-on-write) is a new page, the faulting thread's.
            self.before.release(pid, start, len);
        }
        let added = self.origin.grow_run(pid, (start, len), owner, first_ns);
        self.charge_growth(serving, ts_ns, pid, added, out);
        self.charge_stack(owner, ts_ns, pid, added, out);
    }

    /// The request thread `tid` is serving now, if it is still in flight.
    fn serving(&self, tid: u32) -> Option<ReqId> {
        self.threads
            .get(&tid)
            .and_then(|t| t.current)
            .filter(|id| self.inflight.contains_key(id))
    }

    /// The request resident memory made on thread `tid` is charged to: the one it serves,
    /// unless that request is sampled out (the heap probes were off as it started), whose
    /// memory goes to the outside-requests row.
    fn resident_owner(&self, tid: u32) -> Option<ReqId> {
        self.serving(tid)
            .filter(|id| self.inflight.get(id).is_some_and(|r| !r.row.sampled_out))
    }

    /// `bytes` made resident: charged to the request `serving`, or to the outside-requests row.
    fn charge_growth(
        &mut self,
        serving: Option<ReqId>,
        ts_ns: i64,
        pid: u32,
        bytes: u64,
        out: &mut Vec<Row>,
    ) {
        if bytes == 0 {
            return;
        }
        match serving.and_then(|id| self.inflight.get_mut(&id)) {
            Some(req) => req.row.grown += bytes,
            None => out.push(Row::OutsideGrowth { ts_ns, pid, bytes }),
        }
    }

    /// `[start, start + len)` of `pid` was released (munmap, madvise, a brk shrink). Called
    /// before the same syscall's effect on the address space ([`Correlator::vm`]), which an
    /// unmapping would remove. Returns the resident bytes known to be released: pages seen made
    /// resident, and pages resident before memwatch began to trace the process.
    pub fn release(
        &mut self,
        ts_ns: i64,
        pid: u32,
        start: u64,
        len: u64,
        out: &mut Vec<Row>,
    ) -> u64 {
        let resident = self.resident(pid, start, len);
        self.origin.note_release(pid, ts_ns, start, len, resident);
        let credits = self.origin.release_as(pid, start, len, resident);
        let seen: u64 = credits.iter().map(|&(_, bytes)| bytes).sum();
        let before = match resident {
            Resident::Known { before } => before,
            Resident::Unknown => 0,
        };
        self.credit(ts_ns, pid, credits, out);
        seen.saturating_add(before).min(len)
    }

    /// What is known of the pages resident in `[start, start + len)` of `pid`, which is being
    /// released (its pages resident before memwatch began leave [`Correlator::before`]).
    ///
    /// Every resident page is known when memwatch read the process's pagemap as it began to
    /// trace it, or when the process mapped all of the range itself while traced: pages made
    /// resident since were all seen. Not when some growth went untracked (the span bound): an
    /// untracked page could be anywhere.
    fn resident(&mut self, pid: u32, start: u64, len: u64) -> Resident {
        let seeded = self.seeded.contains(&pid);
        let before: u64 = if seeded {
            let credits = self.before.release(pid, start, len);
            credits.iter().map(|&((), bytes)| bytes).sum()
        } else {
            0
        };
        let all_seen = seeded || self.vm_origin.covers(pid, start, start.saturating_add(len));
        if all_seen && self.origin.counts().untracked_bytes == 0 {
            Resident::Known { before }
        } else {
            Resident::Unknown
        }
    }

    /// mremap moved or resized `[old, old + old_len)` to `[new, new + new_len)`.
    pub fn remap(
        &mut self,
        ts_ns: i64,
        pid: u32,
        (old, old_len): (u64, u64),
        (new, new_len): (u64, u64),
        out: &mut Vec<Row>,
    ) {
        // A shrink releases the tail; a move or a growth releases nothing.
        let resident = if new_len < old_len {
            let (tail, tail_len) = (old.saturating_add(new_len), old_len - new_len);
            let resident = self.resident(pid, tail, tail_len);
            self.origin
                .note_release(pid, ts_ns, tail, tail_len, resident);
            resident
        } else {
            Resident::Unknown
        };
        if self.seeded.contains(&pid) {
            // Pages resident before move with the mapping (its tail is out already).
            self.before.remap(pid, (old, old_len), (new, new_len));
        }
        let credits = self
            .origin
            .remap_as(pid, (old, old_len), (new, new_len), resident);
        self.credit(ts_ns, pid, credits, out);
    }

    /// A heap block of `pid` changed hands: handed out on thread `tid` (`alloc`), its resident
    /// pages go to the request the thread serves, or to the outside row; given back, they go to
    /// the outside row (the allocator keeps them). Either way the previous owner is credited
    /// with a release, and the resident set is unchanged: only whole pages of the block move.
    pub fn heap(&mut self, ts_ns: i64, pid: u32, tid: u32, block: HeapBlock, out: &mut Vec<Row>) {
        let HeapBlock {
            alloc,
            addr,
            len,
            stack,
        } = block;
        let page = self.page_size as u64;
        let start = addr.div_ceil(page).saturating_mul(page);
        let end = (addr.saturating_add(len) / page) * page;
        let serving = if alloc {
            self.resident_owner(tid)
        } else {
            None
        };
        // A block handed out goes to the call site of its allocation when one was taken, else
        // to the allocating thread's latest.
        let owner = Charge {
            request: serving.unwrap_or(OUTSIDE),
            stack: match (alloc, stack) {
                (false, _) => 0,
                (true, Some(stack)) => stack,
                (true, None) => self.stack_of(tid),
            },
        };
        let (mut credits, mut moved) = self.origin.transfer(pid, start, end, owner);
        if alloc && self.seeded.contains(&pid) {
            // Pages of the block that were resident before memwatch began to trace the process
            // (a warm server's heap, freed before the attach) have no owner yet: the block's
            // holder takes them, from the outside row, as it would take pages the allocator kept.
            let mut adopted = 0;
            for (s, e) in self.before.take(pid, start, end) {
                adopted += self.origin.grow(pid, s, e - s, owner);
            }
            if adopted > 0 {
                credits.push((
                    Charge {
                        request: OUTSIDE,
                        stack: 0,
                    },
                    adopted,
                ));
                moved += adopted;
            }
        }
        if moved == 0 {
            return;
        }
        self.credit(ts_ns, pid, credits, out);
        self.charge_growth(serving, ts_ns, pid, moved, out);
        self.charge_stack(owner, ts_ns, pid, moved, out);
    }

    /// `pid`'s file-backed resident pages changed by `delta` bytes, on thread `tid`: the pages a
    /// fault on a file mapping mapped around the faulting one (fault-around), and file pages
    /// unmapped. Growth is charged to the request the thread serves, or to the outside row;
    /// a release has no known origin (the pages have no address here) and goes to the outside
    /// row. (The kernel side leaves the faulting page of a file fault out of its fault runs, so
    /// nothing is counted twice.)
    pub fn file_pages(&mut self, ts_ns: i64, pid: u32, tid: u32, delta: i64, out: &mut Vec<Row>) {
        if delta < 0 {
            out.push(Row::Release(Box::new(ReleaseRow {
                ts_ns,
                pid,
                bytes: delta.unsigned_abs(),
                ..ReleaseRow::default()
            })));
            return;
        }
        let serving = self.resident_owner(tid);
        self.charge_growth(serving, ts_ns, pid, delta as u64, out);
        let owner = Charge {
            request: serving.unwrap_or(OUTSIDE),
            stack: self.stack_of(tid),
        };
        self.charge_stack(owner, ts_ns, pid, delta as u64, out);
    }

    /// The process's address space is gone (exit, or exec): everything it held is released.
    pub fn address_space_gone(&mut self, ts_ns: i64, pid: u32, out: &mut Vec<Row>) {
        // An exec's new image is mapped while traced; an exited PID may be reused.
        self.before.exit(pid);
        self.seeded.remove(&pid);
        let credits = self.origin.exit(pid);
        self.credit(ts_ns, pid, credits, out);
        let credits = self.vm_origin.exit(pid);
        self.vm_credit(ts_ns, credits, out);
    }

    /// Credits released bytes back to the requests (or the outside row) that made them resident.
    fn credit(
        &mut self,
        ts_ns: i64,
        pid: u32,
        credits: origin::Credits<Charge>,
        out: &mut Vec<Row>,
    ) {
        for (charge, bytes) in credits {
            self.credit_stack(charge, ts_ns, pid, bytes, out);
            let owner = charge.request;
            if owner == OUTSIDE {
                out.push(Row::Release(Box::new(ReleaseRow {
                    ts_ns,
                    pid,
                    bytes,
                    ..ReleaseRow::default()
                })));
            } else if let Some(req) = self.inflight.get_mut(&owner) {
                // Released while the request still runs: its own churn.
                req.row.released += bytes;
            } else if let Some(r) = self.retained.get_mut(&owner) {
                r.held = r.held.saturating_sub(bytes);
                out.push(Row::Release(Box::new(ReleaseRow {
                    ts_ns,
                    pid,
                    request_id: owner,
                    request_end_ns: r.end_ns,
                    method: r.method.clone(),
                    route: r.route.clone(),
                    bytes,
                })));
                if r.held == 0 {
                    self.retained.remove(&owner);
                }
            }
        }
    }

    /// Offers every request to the access-log join ([`Correlator::take_candidates`]). Off by
    /// default: without a log to join, the candidates would only be cloned and held.
    #[must_use]
    pub fn joining(mut self, on: bool) -> Self {
        self.joining = on;
        self
    }

    /// Requests whose response has started since the last call, for the access-log join.
    pub fn take_candidates(&mut self) -> Vec<join::Candidate> {
        std::mem::take(&mut self.candidates)
    }

    /// Requests completed so far.
    pub fn requests(&self) -> u64 {
        self.completed
    }

    /// A memory syscall: charged to the request its thread is serving, if any.
    pub fn mem(&mut self, mut row: MemRow, out: &mut Vec<Row>) {
        let current = self.threads.get(&row.tid).and_then(|t| t.current);
        match current.and_then(|id| self.inflight.get_mut(&id)) {
            Some(req) => {
                row.request_id = Some(req.row.id);
                req.mem.push(row);
                if req.mem.len() >= MAX_HELD_ROWS {
                    // Bounded memory: write early; the request keeps its charge.
                    for r in req.mem.drain(..) {
                        req.row.vm_bytes += r.vm_delta;
                        req.row.mem_calls += 1;
                        out.push(Row::Mem(r));
                    }
                }
            }
            None => out.push(Row::Mem(row)),
        }
    }

    /// Charges the faults a thread took since its last boundary, up to `now_faults`.
    fn charge_faults(&mut self, tid: u32, now_faults: u64) {
        let t = self.threads.entry(tid).or_default();
        let delta = now_faults.saturating_sub(t.faults_seen);
        t.faults_seen = now_faults;
        // Faults outside any request are not kept here: the report derives them as the
        // process total minus what requests were charged.
        if let Some(req) = t.current.and_then(|id| self.inflight.get_mut(&id)) {
            req.row.faults += delta;
        }
    }

    /// Makes `tid` work for request `id` from now on. Its growth has no call site until its next
    /// stack (the kernel side takes one at its next growth).
    fn set_current(&mut self, tid: u32, id: ReqId) {
        let t = self.threads.entry(tid).or_default();
        if t.current != Some(id) {
            t.stack = 0;
        }
        t.current = Some(id);
        if let Some(r) = self.inflight.get_mut(&id)
            && !r.serving.contains(&tid)
        {
            r.serving.push(tid);
        }
    }

    fn mark_approximate(&mut self, id: ReqId) {
        if let Some(r) = self.inflight.get_mut(&id) {
            r.row.exact = false;
        }
    }

    /// A socket boundary event. `offset` turns monotonic into wall-clock ns.
    pub fn net(&mut self, ev: &NetRecord, offset: i64, out: &mut Vec<Row>) {
        let m = &ev.meta;
        let tid = m.header.tid;
        let pid = m.header.tgid;
        let key = (pid, m.fd, m.generation);
        let wall = |mono: u64| mono as i64 + offset;
        let now = wall(m.header.ts_ns);

        // The previous response on this connection is complete: its last write is known.
        if matches!(ev.op, NetOp::ReadStart | NetOp::Close)
            && let Some(id) = self.conns.get_mut(&key).and_then(|c| c.responding.take())
        {
            let writer = m.last_write_tid;
            if writer != 0 && self.threads.get(&writer).and_then(|t| t.current) == Some(id) {
                self.charge_faults(writer, m.last_write_faults);
            }
            let end = if m.last_write_ns != 0 {
                wall(m.last_write_ns)
            } else {
                now
            };
            self.finish(id, end, Some(m.last_bytes_out), out);
        }
        self.charge_faults(tid, m.faults);

        match ev.op {
            NetOp::Accept => {
                self.conn_serial += 1;
                self.conns.insert(key, ConnTrack::new(self.conn_serial));
            }
            NetOp::ReadStart | NetOp::ReadMore => {
                // A connection accepted before attach is first seen at a read.
                let conn = self.conns.entry(key).or_insert_with(|| {
                    self.conn_serial += 1;
                    ConnTrack::new(self.conn_serial)
                });
                let serial = conn.serial;
                if conn.non_http.is_some() {
                    return;
                }
                if ev.op == NetOp::ReadStart
                    && let Some(kind) = conn.abandon_phase()
                {
                    out.push(non_http_row(ev, serial, now, kind, 0));
                }
                let parsed = conn.push(&ev.data, m.bytes, ev.op == NetOp::ReadStart);
                match parsed {
                    Parsed::Requests(heads) => {
                        let pipelined = heads.len() > 1;
                        let mut first = None;
                        for head in heads {
                            let id = self.next_id;
                            self.next_id += 1;
                            let target = head.target.map(|t| {
                                if self.redact_query {
                                    route::redact_query(&t).into_owned()
                                } else {
                                    t
                                }
                            });
                            let route = target.as_deref().map(|t| self.router.route(t));
                            let row = RequestRow {
                                id,
                                pid,
                                tid,
                                conn: serial,
                                method: head.method,
                                target,
                                route,
                                host: head.host,
                                start_ns: now,
                                end_ns: now,
                                bytes_in: m.bytes,
                                exact: !pipelined,
                                sampled_out: self.heap.as_ref().is_some_and(|w| !w.on_at(now)),
                                ..RequestRow::default()
                            };
                            self.inflight.insert(
                                id,
                                InFlight {
                                    row,
                                    key,
                                    mem: Vec::new(),
                                    serving: Vec::new(),
                                    vm_grown: 0,
                                    stacks: Vec::new(),
                                    vm_released: 0,
                                },
                            );
                            if let Some(c) = self.conns.get_mut(&key) {
                                c.awaiting.push_back(id);
                            }
                            first.get_or_insert(id);
                        }
                        if let Some(id) = first {
                            let previous = self.threads.entry(tid).or_default().current;
                            if let Some(prev) = previous
                                && self.inflight.contains_key(&prev)
                            {
                                // The thread already serves another request: an event loop.
                                self.mark_approximate(prev);
                                self.mark_approximate(id);
                            }
                            self.set_current(tid, id);
                        }
                    }
                    Parsed::More => {
                        if let Some(id) = conn.awaiting.back().copied()
                            && let Some(r) = self.inflight.get_mut(&id)
                        {
                            r.row.bytes_in += m.bytes;
                        }
                    }
                    Parsed::NonHttp(kind) => {
                        if kind.is_permanent() {
                            conn.non_http = Some(kind);
                        }
                        out.push(non_http_row(ev, serial, now, kind, m.bytes));
                    }
                }
            }
            NetOp::WriteStart => {
                let Some(conn) = self.conns.get_mut(&key) else {
                    return;
                };
                if conn.non_http.is_some() {
                    return;
                }
                let Some(id) = conn.awaiting.pop_front() else {
                    return;
                };
                let previous = conn.responding.replace(id);
                if let Some(prev) = previous {
                    // Pipelined responses written back to back: the previous one ended here.
                    self.finish(prev, now, None, out);
                }
                if let Some(r) = self.inflight.get_mut(&id) {
                    r.row.first_byte_ns = Some(now);
                    r.row.status = http::response::parse_status(&ev.data).map(|s| s.code);
                    if self.joining
                        && let (Some(method), Some(target), Some(status)) =
                            (&r.row.method, &r.row.target, r.row.status)
                    {
                        self.candidates.push(join::Candidate {
                            id,
                            method: method.clone(),
                            target: target.clone(),
                            status,
                            start_ns: r.row.start_ns,
                            first_byte_ns: now,
                        });
                    }
                    if r.row.tid != tid {
                        r.row.exact = false;
                    }
                }
                self.set_current(tid, id);
            }
            NetOp::Close => self.close_conn(key, now, out),
        }
    }

    /// Completes a request: memory after `end` is not its own.
    fn finish(&mut self, id: ReqId, end: i64, bytes_out: Option<u64>, out: &mut Vec<Row>) {
        let Some(mut req) = self.inflight.remove(&id) else {
            return;
        };
        for tid in &req.serving {
            if let Some(t) = self.threads.get_mut(tid)
                && t.current == Some(id)
            {
                t.current = None;
                t.stack = 0;
            }
        }
        if let Some(conn) = self.conns.get_mut(&req.key) {
            conn.awaiting.retain(|&a| a != id);
            if conn.responding == Some(id) {
                conn.responding = None;
            }
        }
        req.row.end_ns = end.max(req.row.start_ns);
        if let Some(b) = bytes_out {
            req.row.bytes_out = b;
        }
        for mut m in std::mem::take(&mut req.mem) {
            if m.ts_ns <= req.row.end_ns {
                req.row.vm_bytes += m.vm_delta;
                req.row.mem_calls += 1;
            } else {
                m.request_id = None;
            }
            out.push(Row::Mem(m));
        }
        req.row.rss_bytes = req.row.faults as i64 * self.page_size;
        self.vm_finish(id, &req, out);
        self.stack_finish(&req, out);
        let held = req.row.grown.saturating_sub(req.row.released);
        if held > 0 {
            self.retained.insert(
                id,
                Retained {
                    end_ns: req.row.end_ns,
                    method: req.row.method.as_deref().map(Arc::from),
                    route: req.row.route.as_deref().map(Arc::from),
                    held,
                },
            );
        }
        self.completed += 1;
        out.push(Row::Request(Box::new(req.row)));
    }

    /// A traced thread exited.
    pub fn thread_exit(&mut self, tid: u32) {
        self.threads.remove(&tid);
    }

    /// Connection `key` closed at `ts_ns` (by a close, or by its process's exit): a request head
    /// still incomplete is counted as such, and its requests still open end now.
    fn close_conn(&mut self, key: ConnKey, ts_ns: i64, out: &mut Vec<Row>) {
        let Some(mut conn) = self.conns.remove(&key) else {
            return;
        };
        if conn.non_http.is_none()
            && let Some(kind) = conn.abandon_phase()
        {
            out.push(Row::NonHttp {
                ts_ns,
                pid: key.0,
                conn: conn.serial,
                kind: kind.name(),
                bytes: 0,
            });
        }
        for id in conn.awaiting.into_iter().chain(conn.responding) {
            self.finish(id, ts_ns, None, out);
        }
    }

    /// Process `pid` is gone. The exit closed its connections without a close syscall, so
    /// their state goes here: a request head still incomplete is counted as such, and requests
    /// still open end now. (A later process given the same PID starts with none of it.)
    pub fn process_gone(&mut self, ts_ns: i64, pid: u32, out: &mut Vec<Row>) {
        let keys: Vec<ConnKey> = self
            .conns
            .keys()
            .filter(|&&(p, _, _)| p == pid)
            .copied()
            .collect();
        for key in keys {
            self.close_conn(key, ts_ns, out);
        }
        let mut open: Vec<ReqId> = self
            .inflight
            .iter()
            .filter(|(_, r)| r.row.pid == pid)
            .map(|(&id, _)| id)
            .collect();
        open.sort_unstable();
        for id in open {
            self.finish(id, ts_ns, None, out);
        }
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

    /// End of recording: requests still open are written as they are.
    pub fn finish_all(&mut self, out: &mut Vec<Row>) {
        let mut ids: Vec<(ReqId, i64)> = self
            .inflight
            .iter()
            .map(|(&id, r)| (id, r.row.first_byte_ns.unwrap_or(r.row.start_ns)))
            .collect();
        ids.sort_unstable();
        for (id, end) in ids {
            self.finish(id, end, None, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use memwatch_common::{EventHeader, mem::MemOp, net::NetMeta};

    use super::{vm_origin::VmEffect, *};

    const PID: u32 = 100;
    const TID: u32 = 101;
    const PAGE: u64 = 4096;

    /// A socket event on fd 5 of thread TID at `ts` with the thread's fault counter `faults`.
    fn ev(op: NetOp, ts: u64, faults: u64, data: &[u8], last_write_ns: u64) -> NetRecord {
        ev_on(5, TID, op, ts, faults, data, (last_write_ns, TID))
    }

    /// A socket event on `fd` of thread `tid`; `last_write` is the (time, thread) of the
    /// connection's last write, carried by this boundary (time 0: none).
    fn ev_on(
        fd: u32,
        tid: u32,
        op: NetOp,
        ts: u64,
        faults: u64,
        data: &[u8],
        last_write: (u64, u32),
    ) -> NetRecord {
        let (last_write_ns, writer) = last_write;
        NetRecord {
            meta: NetMeta {
                header: EventHeader {
                    tgid: PID,
                    tid,
                    ts_ns: ts,
                    ..EventHeader::default()
                },
                op: op as u32,
                fd,
                generation: 1,
                faults,
                bytes: data.len() as u64,
                last_write_ns,
                last_write_faults: faults,
                last_bytes_out: 300,
                last_write_tid: if last_write_ns == 0 { 0 } else { writer },
                captured: data.len() as u32,
            },
            op,
            data: data.to_vec(),
        }
    }

    fn correlator() -> Correlator {
        Correlator::new(Router::new(Vec::<String>::new()).unwrap(), false, PAGE)
    }

    fn requests(rows: &[Row]) -> Vec<&RequestRow> {
        rows.iter()
            .filter_map(|r| match r {
                Row::Request(r) => Some(&**r),
                _ => None,
            })
            .collect()
    }

    fn mmap(ts: i64, len: i64) -> MemRow {
        MemRow {
            ts_ns: ts,
            pid: PID,
            tid: TID,
            op: MemOp::Mmap,
            addr: 0,
            len: len as u64,
            new_len: 0,
            prot: 3,
            flags: 0x22,
            fd: -1,
            ret: 0x7000_0000,
            ok: true,
            vm_delta: len,
            request_id: None,
            stack: None,
        }
    }

    /// Two requests on one kept-alive connection: each ends at its last write, is charged the
    /// memory and faults between its read and that write, and both carry the same connection
    /// number.
    #[test]
    fn keep_alive_requests_are_charged_exactly() {
        let mut c = Correlator::new(Router::new(Vec::<String>::new()).unwrap(), false, PAGE);
        let mut out = Vec::new();
        c.net(&ev(NetOp::Accept, 10, 0, b"", 0), 0, &mut out);
        c.net(
            &ev(
                NetOp::ReadStart,
                100,
                2,
                b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n",
                0,
            ),
            0,
            &mut out,
        );
        c.mem(mmap(150, 8192), &mut out);
        c.net(
            &ev(NetOp::WriteStart, 200, 5, b"HTTP/1.1 201 Created\r\n", 0),
            0,
            &mut out,
        );
        // Outside any request (after the last write): not charged.
        c.mem(mmap(260, 4096), &mut out);
        c.net(
            &ev(
                NetOp::ReadStart,
                300,
                7,
                b"GET /b?x=1 HTTP/1.1\r\n\r\n",
                250,
            ),
            0,
            &mut out,
        );
        c.net(
            &ev(NetOp::WriteStart, 320, 7, b"HTTP/1.1 404 Not Found\r\n", 0),
            0,
            &mut out,
        );
        c.net(&ev(NetOp::Close, 400, 9, b"", 330), 0, &mut out);

        let reqs = requests(&out);
        assert_eq!(reqs.len(), 2, "{out:#?}");
        let (a, b) = (reqs[0], reqs[1]);
        assert_eq!(
            (a.target.as_deref(), a.host.as_deref(), a.status),
            (Some("/a"), Some("h"), Some(201))
        );
        assert_eq!(
            (a.start_ns, a.first_byte_ns, a.end_ns),
            (100, Some(200), 250)
        );
        // Faults 2 -> 7: the counter at the read, and at the last write (carried by the next
        // read); the 2 before the read belong to no request.
        assert_eq!(
            (a.vm_bytes, a.mem_calls, a.faults, a.rss_bytes),
            (8192, 1, 5, 5 * PAGE as i64)
        );
        assert_eq!((b.target.as_deref(), b.status), (Some("/b?x=1"), Some(404)));
        assert_eq!(
            (b.start_ns, b.end_ns, b.vm_bytes, b.faults),
            (300, 330, 0, 2)
        );
        assert_eq!((a.conn, b.conn), (1, 1));
        assert!(a.exact && b.exact);
        assert_eq!(c.requests(), 2);
        // Without an access log to join, nothing is held for the join.
        assert!(c.take_candidates().is_empty());
    }

    /// A process that exits with connections open: its requests end at the exit, a head that
    /// never completed is counted, and no state is left for a later process with its PID.
    #[test]
    fn a_process_gone_ends_its_requests_and_connections() {
        let mut c = correlator();
        let mut out = Vec::new();
        let get = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
        c.net(
            &ev_on(5, TID, NetOp::ReadStart, 100, 0, get, (0, 0)),
            0,
            &mut out,
        );
        c.net(
            &ev_on(6, TID, NetOp::ReadStart, 110, 0, b"GET /b HT", (0, 0)),
            0,
            &mut out,
        );
        assert_eq!(c.state_sizes().conns, 2);
        assert_eq!(c.state_sizes().requests, 1);
        c.process_gone(500, PID, &mut out);
        let requests: Vec<_> = out
            .iter()
            .filter_map(|r| match r {
                Row::Request(r) => Some((r.target.clone(), r.end_ns)),
                _ => None,
            })
            .collect();
        assert_eq!(requests, [(Some("/a".to_owned()), 500)]);
        let incomplete = out
            .iter()
            .filter(|r| {
                matches!(
                    r,
                    Row::NonHttp {
                        kind: "incomplete",
                        ..
                    }
                )
            })
            .count();
        assert_eq!(incomplete, 1);
        assert_eq!(
            c.state_sizes(),
            StateSizes {
                threads: 1,
                ..StateSizes::default()
            }
        );
    }

    #[test]
    fn candidates_are_offered_only_when_joining() {
        let mut c =
            Correlator::new(Router::new(Vec::<String>::new()).unwrap(), false, PAGE).joining(true);
        let mut out = Vec::new();
        c.net(
            &ev(NetOp::ReadStart, 100, 0, b"GET /a HTTP/1.1\r\n\r\n", 0),
            0,
            &mut out,
        );
        c.net(
            &ev(NetOp::WriteStart, 200, 0, b"HTTP/1.1 200 OK\r\n", 0),
            0,
            &mut out,
        );
        let cands = c.take_candidates();
        assert_eq!(cands.len(), 1);
        assert_eq!(
            (cands[0].target.as_str(), cands[0].status, cands[0].start_ns),
            ("/a", 200, 100)
        );
        // A connection first seen at a read (accepted before attach) still gets a number.
        c.finish_all(&mut out);
        assert_eq!(requests(&out)[0].conn, 1);
    }

    /// An event loop: one thread reads a second request before the first is answered. Both
    /// are marked approximate, and memory from then on goes to the request read last.
    #[test]
    fn an_event_loop_thread_makes_its_requests_approximate() {
        let mut c = correlator();
        let mut out = Vec::new();
        let get = |path: &str| format!("GET {path} HTTP/1.1\r\n\r\n").into_bytes();
        c.net(
            &ev_on(5, TID, NetOp::ReadStart, 100, 0, &get("/a"), (0, 0)),
            0,
            &mut out,
        );
        c.mem(mmap(110, 4096), &mut out);
        c.net(
            &ev_on(6, TID, NetOp::ReadStart, 120, 1, &get("/b"), (0, 0)),
            0,
            &mut out,
        );
        c.mem(mmap(130, 8192), &mut out);
        let ok = b"HTTP/1.1 200 OK\r\n";
        c.net(
            &ev_on(6, TID, NetOp::WriteStart, 140, 3, ok, (0, 0)),
            0,
            &mut out,
        );
        c.net(
            &ev_on(5, TID, NetOp::WriteStart, 150, 3, ok, (0, 0)),
            0,
            &mut out,
        );
        c.net(
            &ev_on(6, TID, NetOp::Close, 200, 3, b"", (145, TID)),
            0,
            &mut out,
        );
        c.net(
            &ev_on(5, TID, NetOp::Close, 210, 3, b"", (155, TID)),
            0,
            &mut out,
        );
        let reqs = requests(&out);
        assert_eq!(reqs.len(), 2, "{out:#?}");
        let (b, a) = (reqs[0], reqs[1]);
        assert_eq!(
            (a.target.as_deref(), b.target.as_deref()),
            (Some("/a"), Some("/b"))
        );
        assert!(!a.exact && !b.exact, "both are approximate");
        // /a had the thread until /b was read; /b has it from then on.
        assert_eq!((a.vm_bytes, a.faults), (4096, 1));
        assert_eq!((b.vm_bytes, b.faults), (8192, 2));
        assert_eq!((a.conn, b.conn), (1, 2));
    }

    /// A response written by another thread than the one that read the request: the request
    /// is approximate, and the writer's faults up to its last write are charged to it.
    #[test]
    fn a_response_written_by_another_thread_is_charged_and_approximate() {
        const WRITER: u32 = 202;
        let mut c = correlator();
        let mut out = Vec::new();
        let get = b"GET /w HTTP/1.1\r\n\r\n";
        c.net(
            &ev_on(5, TID, NetOp::ReadStart, 100, 10, get, (0, 0)),
            0,
            &mut out,
        );
        // The writer thread's counter stands at 40 when it starts the response...
        let ok = b"HTTP/1.1 200 OK\r\n";
        c.net(
            &ev_on(5, WRITER, NetOp::WriteStart, 200, 40, ok, (0, 0)),
            0,
            &mut out,
        );
        // ...and at 43 at its last write, which the close carries (seen on the reader's thread).
        let mut close = ev_on(5, TID, NetOp::Close, 400, 10, b"", (300, WRITER));
        close.meta.last_write_faults = 43;
        c.net(&close, 0, &mut out);
        let reqs = requests(&out);
        assert_eq!(reqs.len(), 1, "{out:#?}");
        let r = reqs[0];
        assert!(!r.exact);
        assert_eq!((r.tid, r.status, r.end_ns), (TID, Some(200), 300));
        assert_eq!(
            r.faults, 3,
            "the writer's faults between its first and last write"
        );
        assert_eq!(r.rss_bytes, 3 * PAGE as i64);
    }

    /// A request that holds more memory rows than MAX_HELD_ROWS writes them early and keeps
    /// their charge; rows after its end are still not its own.
    #[test]
    fn held_memory_rows_are_flushed_early_and_keep_their_charge() {
        let mut c = correlator();
        let mut out = Vec::new();
        c.net(
            &ev(NetOp::ReadStart, 100, 0, b"GET /big HTTP/1.1\r\n\r\n", 0),
            0,
            &mut out,
        );
        for i in 0..MAX_HELD_ROWS + 5 {
            c.mem(mmap(101 + i as i64, 4096), &mut out);
        }
        let early = out.iter().filter(|r| matches!(r, Row::Mem(_))).count();
        assert_eq!(
            early, MAX_HELD_ROWS,
            "one full batch written before the request ended"
        );
        assert!(requests(&out).is_empty());
        let end = 101 + MAX_HELD_ROWS as u64 + 10;
        c.net(
            &ev(NetOp::WriteStart, end - 5, 0, b"HTTP/1.1 200 OK\r\n", 0),
            0,
            &mut out,
        );
        c.net(&ev(NetOp::Close, end + 50, 0, b"", end), 0, &mut out);
        let reqs = requests(&out);
        assert_eq!(reqs.len(), 1);
        let calls = MAX_HELD_ROWS as u64 + 5;
        assert_eq!(reqs[0].mem_calls, calls);
        assert_eq!(reqs[0].vm_bytes, calls as i64 * 4096);
        let charged = out
            .iter()
            .filter(|r| matches!(r, Row::Mem(m) if m.request_id == Some(reqs[0].id)))
            .count();
        assert_eq!(charged as u64, calls, "every row names its request");
    }

    /// The bytes made resident outside any request, summed over `rows`.
    fn outside_grown(rows: &[Row]) -> u64 {
        rows.iter()
            .filter_map(|r| match r {
                Row::OutsideGrowth { bytes, .. } => Some(*bytes),
                _ => None,
            })
            .sum()
    }

    fn releases(rows: &[Row]) -> Vec<(i64, i64, Option<&str>, u64)> {
        rows.iter()
            .filter_map(|r| match r {
                Row::Release(r) => {
                    Some((r.request_id, r.request_end_ns, r.route.as_deref(), r.bytes))
                }
                _ => None,
            })
            .collect()
    }

    /// Memory a request made resident and kept is credited back to it when another request
    /// releases it later; its own churn is counted as released before it ended; memory made
    /// outside any request is its own row.
    #[test]
    fn a_heap_block_reused_by_another_request_changes_hands() {
        let p = PAGE;
        let mut c = correlator();
        let mut out = Vec::new();
        let outside = outside_grown;
        // /churn allocates a 16-page block (plus a byte: the block's edges are not whole
        // pages), faults it in, and frees it before it ends: the allocator keeps the pages.
        c.net(
            &ev(NetOp::ReadStart, 100, 0, b"GET /churn HTTP/1.1\r\n\r\n", 0),
            0,
            &mut out,
        );
        c.heap(
            101,
            PID,
            TID,
            HeapBlock {
                alloc: true,
                addr: 100 * p - 8,
                len: 16 * p + 16,
                stack: None,
            },
            &mut out,
        );
        c.grow(102, PID, TID, 100 * p, 16 * p, 102, &mut out);
        c.heap(
            103,
            PID,
            TID,
            HeapBlock::given_back(100 * p - 8, 16 * p + 16),
            &mut out,
        );
        c.net(
            &ev(NetOp::WriteStart, 110, 0, b"HTTP/1.1 200 OK\r\n", 0),
            0,
            &mut out,
        );
        c.net(&ev(NetOp::Close, 120, 0, b"", 115), 0, &mut out);
        let churn = requests(&out)[0].clone();
        assert_eq!((churn.grown, churn.released), (16 * p, 16 * p));
        assert_eq!(
            outside(&out),
            16 * p,
            "the freed block is held outside any request"
        );
        // /leak gets 4 of those pages from malloc and keeps them: they are its own now, with
        // no fault and no syscall; the outside row gives them up.
        out.clear();
        c.net(
            &ev(NetOp::ReadStart, 200, 0, b"GET /leak HTTP/1.1\r\n\r\n", 0),
            0,
            &mut out,
        );
        c.heap(
            201,
            PID,
            TID,
            HeapBlock {
                alloc: true,
                addr: 100 * p,
                len: 4 * p,
                stack: None,
            },
            &mut out,
        );
        c.net(
            &ev(NetOp::WriteStart, 210, 0, b"HTTP/1.1 200 OK\r\n", 0),
            0,
            &mut out,
        );
        c.net(&ev(NetOp::Close, 220, 0, b"", 215), 0, &mut out);
        let leak = requests(&out)[0].clone();
        assert_eq!((leak.grown, leak.released), (4 * p, 0));
        assert_eq!(releases(&out), vec![(0, 0, None, 4 * p)]);
        // A free from another thread (a collector) later: credited back to /leak.
        out.clear();
        c.heap(
            500,
            PID,
            TID + 1,
            HeapBlock::given_back(100 * p, 4 * p),
            &mut out,
        );
        assert_eq!(releases(&out), vec![(leak.id, 215, Some("/leak"), 4 * p)]);
        assert_eq!(
            c.origin_counts().tracked_bytes,
            16 * p,
            "nothing left the resident set"
        );
        assert_eq!(c.origin_counts().unmatched_release_bytes, 0);
    }

    /// `(route, stack, grown, released)` of every call-site row.
    fn stack_rows(rows: &[Row]) -> Vec<(Option<&str>, u32, u64, u64)> {
        rows.iter()
            .filter_map(|r| match r {
                Row::StackCharge(c) => Some((c.route.as_deref(), c.stack, c.grown, c.released)),
                _ => None,
            })
            .collect()
    }

    /// With stacks on, growth is charged to the thread's latest stack as well as its request:
    /// per call site at the request's end (its own churn as released), a later release by
    /// another thread credited back to the call site, growth outside requests at once. A new
    /// request starts with no call site until its first stack.
    #[test]
    fn growth_is_charged_to_its_call_site_with_the_origin_model() {
        let p = PAGE;
        let mut c = correlator().with_stacks(true);
        let mut out = Vec::new();
        c.set_stack(TID, Some(9));
        c.grow(50, PID, TID, 900 * p, 2 * p, 50, &mut out);
        assert_eq!(stack_rows(&out), vec![(Some(""), 9, 2 * p, 0)]);
        out.clear();
        c.net(
            &ev(NetOp::ReadStart, 100, 0, b"GET /leak HTTP/1.1\r\n\r\n", 0),
            0,
            &mut out,
        );
        // Before the request's first stack: no call site.
        c.grow(105, PID, TID, 5 * p, p, 105, &mut out);
        c.set_stack(TID, Some(1));
        c.grow(110, PID, TID, 10 * p, 4 * p, 110, &mut out);
        c.set_stack(TID, Some(2));
        c.grow(112, PID, TID, 50 * p, 8 * p, 112, &mut out);
        c.release(113, PID, 50 * p, 8 * p, &mut out);
        c.net(
            &ev(NetOp::WriteStart, 120, 0, b"HTTP/1.1 200 OK\r\n", 0),
            0,
            &mut out,
        );
        c.net(&ev(NetOp::Close, 200, 0, b"", 150), 0, &mut out);
        let mut rows = stack_rows(&out);
        rows.sort_unstable();
        assert_eq!(
            rows,
            vec![
                (Some("/leak"), 0, p, 0),
                (Some("/leak"), 1, 4 * p, 0),
                (Some("/leak"), 2, 8 * p, 8 * p),
            ]
        );
        out.clear();
        // Another thread frees half of stack 1's pages, and one startup page.
        c.release(500, PID, 10 * p, 2 * p, &mut out);
        c.release(510, PID, 900 * p, p, &mut out);
        assert_eq!(
            stack_rows(&out),
            vec![(Some("/leak"), 1, 0, 2 * p), (Some(""), 9, 0, p)]
        );
        // Off, no call-site rows at all.
        let mut off = correlator();
        out.clear();
        off.set_stack(TID, Some(9));
        off.grow(50, PID, TID, 900 * p, 2 * p, 50, &mut out);
        assert_eq!(stack_rows(&out), vec![]);
    }

    /// A thread stack mapped while recording, mostly never touched, released by madvise and
    /// then munmap: its untouched bytes are never-seen address space, not releases of unknown
    /// origin. The same addresses after the unmapping, or a range reaching past the mapping,
    /// are of unknown origin again. (Recording a thread-per-connection server had shown 38.83
    /// GiB of "releases of unknown origin" for a process of 2.3 MiB RSS.)
    #[test]
    fn untouched_address_space_mapped_while_recording_is_not_of_unknown_origin() {
        let p = PAGE;
        let mut c = correlator();
        let mut out = Vec::new();
        let stack = VmEffect::Map {
            start: 1000 * p,
            len: 512 * p,
        };
        c.vm(10, PID, TID, stack, &mut out);
        c.grow(20, PID, TID, 1510 * p, 2 * p, 20, &mut out);
        c.release(30, PID, 1000 * p, 512 * p, &mut out);
        c.release(40, PID, 1000 * p, 512 * p, &mut out);
        c.vm(
            40,
            PID,
            TID,
            VmEffect::Unmap {
                start: 1000 * p,
                len: 512 * p,
            },
            &mut out,
        );
        let counts = c.origin_counts();
        assert_eq!(
            (counts.unseen_release_bytes, counts.unmatched_release_bytes),
            (510 * p + 512 * p, 0)
        );
        assert_eq!(releases(&out), vec![(0, 0, None, 2 * p)]);
        c.release(50, PID, 1000 * p, p, &mut out);
        c.vm(60, PID, TID, stack, &mut out);
        c.release(70, PID, 1000 * p, 513 * p, &mut out);
        let counts = c.origin_counts();
        assert_eq!(
            (counts.unseen_release_bytes, counts.unmatched_release_bytes),
            (1022 * p, 514 * p)
        );
    }

    /// A process whose resident pages were read as tracing began: releasing them is of
    /// unknown origin, exactly; releasing pages never resident is not, wherever they were
    /// mapped; a page faulted in again is the faulting thread's; an mremap moves the pages
    /// resident before with the mapping; an exec forgets them.
    #[test]
    fn pages_resident_before_tracing_are_the_releases_of_unknown_origin() {
        let p = PAGE;
        let mut c = correlator();
        let mut out = Vec::new();
        // Resident before: 4 pages of a heap at 100, 2 of an arena at 1000.
        assert!(c.resident_before(PID, &[(100 * p, 104 * p), (1000 * p, 1002 * p)]));
        // The heap's 8 pages released: 4 were resident.
        c.release(10, PID, 100 * p, 8 * p, &mut out);
        let counts = c.origin_counts();
        assert_eq!(
            (counts.unmatched_release_bytes, counts.unseen_release_bytes),
            (4 * p, 4 * p)
        );
        // Released again: nothing of them is resident any more.
        c.release(20, PID, 100 * p, 4 * p, &mut out);
        assert_eq!(c.origin_counts().unmatched_release_bytes, 4 * p);
        // One arena page faults in again (swapped out meanwhile): it is the thread's now.
        c.grow(30, PID, TID, 1000 * p, p, 30, &mut out);
        // The arena moves to 5000, its 2 pages with it; then it is released there.
        c.remap(40, PID, (1000 * p, 2 * p), (5000 * p, 2 * p), &mut out);
        c.release(50, PID, 5000 * p, 16 * p, &mut out);
        let counts = c.origin_counts();
        assert_eq!(
            (counts.unmatched_release_bytes, counts.unseen_release_bytes),
            (5 * p, 8 * p + 14 * p)
        );
        assert_eq!(releases(&out), vec![(0, 0, None, p)]);
        // After an exec nothing is known of the new image's releases but its own mappings.
        c.resident_before(PID, &[(200 * p, 201 * p)]);
        c.address_space_gone(60, PID, &mut out);
        c.release(70, PID, 200 * p, p, &mut out);
        assert_eq!(c.origin_counts().unmatched_release_bytes, 6 * p);
        // Another process, never read: every uncovered byte is of unknown origin.
        c.release(80, PID + 1, 0, 3 * p, &mut out);
        assert_eq!(c.origin_counts().unmatched_release_bytes, 9 * p);
        // A PID read at attach and given to a forked child (its exit unseen): nothing known.
        c.resident_before(PID + 2, &[(0, p)]);
        c.forked(PID + 2);
        c.release(90, PID + 2, 10 * p, 2 * p, &mut out);
        assert_eq!(c.origin_counts().unmatched_release_bytes, 11 * p);
    }

    #[test]
    fn releases_are_credited_back_to_the_request_that_grew_the_memory() {
        let p = PAGE;
        let mut c = correlator();
        let mut out = Vec::new();
        // Outside any request: startup memory.
        c.grow(50, PID, TID, 900 * p, 2 * p, 50, &mut out);
        c.net(
            &ev(NetOp::ReadStart, 100, 0, b"GET /leak HTTP/1.1\r\n\r\n", 0),
            0,
            &mut out,
        );
        c.grow(110, PID, TID, 10 * p, 4 * p, 110, &mut out);
        // A re-fault of a page already resident is not growth.
        c.grow(111, PID, TID, 11 * p, p, 111, &mut out);
        // Churn: grown and released within the request.
        c.grow(112, PID, TID, 50 * p, 8 * p, 112, &mut out);
        c.release(113, PID, 50 * p, 8 * p, &mut out);
        c.net(
            &ev(NetOp::WriteStart, 120, 0, b"HTTP/1.1 200 OK\r\n", 0),
            0,
            &mut out,
        );
        c.net(&ev(NetOp::Close, 200, 0, b"", 150), 0, &mut out);
        let leak = requests(&out)[0].clone();
        assert_eq!((leak.grown, leak.released), (12 * p, 8 * p));
        // Later another thread (a collector) frees half of what /leak kept, and some startup
        // memory, and memory memwatch never saw resident.
        c.release(500, PID, 10 * p, 2 * p, &mut out);
        c.release(510, PID, 900 * p, p, &mut out);
        c.release(520, PID, 5000 * p, 3 * p, &mut out);
        assert_eq!(
            releases(&out),
            vec![(leak.id, 150, Some("/leak"), 2 * p), (0, 0, None, p)]
        );
        let outside = outside_grown(&out);
        assert_eq!(outside, 2 * p);
        assert_eq!(c.origin_counts().unmatched_release_bytes, 3 * p);
        assert_eq!(
            c.origin_counts().tracked_bytes,
            3 * p,
            "2 pages of /leak, 1 of startup"
        );
        // The process exits: the rest is released, /leak's last two pages included.
        out.clear();
        c.address_space_gone(900, PID, &mut out);
        assert_eq!(
            releases(&out),
            vec![(leak.id, 150, Some("/leak"), 2 * p), (0, 0, None, p)]
        );
        assert!(
            c.retained.is_empty(),
            "nothing is held for a request that holds nothing"
        );
    }

    /// On a warm server the heap holds freed memory that was resident before memwatch attached:
    /// no page of it has an owner. A block the heap hands a request out of it is the request's
    /// (taken from the outside row, with no fault and no syscall), not nothing.
    #[test]
    fn a_warm_heap_block_handed_to_a_request_is_its_own() {
        let p = PAGE;
        let mut c = correlator();
        let mut out = Vec::new();
        assert!(c.resident_before(PID, &[(100 * p, 200 * p)]));
        c.net(
            &ev(NetOp::ReadStart, 100, 0, b"GET /leak HTTP/1.1\r\n\r\n", 0),
            0,
            &mut out,
        );
        let block = HeapBlock {
            alloc: true,
            addr: 120 * p - 16,
            len: 8 * p + 16,
            stack: None,
        };
        c.heap(101, PID, TID, block, &mut out);
        c.net(
            &ev(NetOp::WriteStart, 110, 0, b"HTTP/1.1 200 OK\r\n", 0),
            0,
            &mut out,
        );
        c.net(&ev(NetOp::Close, 120, 0, b"", 115), 0, &mut out);
        let leak = requests(&out)[0];
        assert_eq!((leak.grown, leak.released), (8 * p, 0));
        let outside_released: u64 = out
            .iter()
            .filter_map(|r| match r {
                Row::Release(r) if r.request_id == 0 => Some(r.bytes),
                _ => None,
            })
            .sum();
        assert_eq!(outside_released, 8 * p, "taken from the outside row");
        // The rest stays resident from before: released later, it is of unknown origin.
        c.release(130, PID, 100 * p, 100 * p, &mut out);
        assert_eq!(c.origin_counts().unmatched_release_bytes, 92 * p);
    }

    /// While the heap probes are off (their budget spent), a request that starts is sampled
    /// out: its growth goes to the outside row and it is not waited for; one that started
    /// while they were on is followed and holds its memory.
    #[test]
    fn requests_that_start_while_the_heap_probes_are_off_are_sampled_out() {
        let p = PAGE;
        let mut c = correlator().following_heap();
        let mut out = Vec::new();
        c.net(
            &ev_on(
                5,
                TID,
                NetOp::ReadStart,
                100,
                0,
                b"GET /a HTTP/1.1\r\n\r\n",
                (0, TID),
            ),
            0,
            &mut out,
        );
        c.heap_probes(150, false);
        assert_eq!(c.followed_in_flight(), 1);
        c.net(
            &ev_on(
                6,
                TID + 1,
                NetOp::ReadStart,
                200,
                0,
                b"GET /b HTTP/1.1\r\n\r\n",
                (0, TID + 1),
            ),
            0,
            &mut out,
        );
        assert_eq!(c.followed_in_flight(), 1, "/b is sampled out");
        c.grow(210, PID, TID, 10 * p, 2 * p, 210, &mut out);
        c.grow(211, PID, TID + 1, 20 * p, 3 * p, 211, &mut out);
        c.finish_all(&mut out);
        let reqs = requests(&out);
        let a = reqs
            .iter()
            .find(|r| r.route.as_deref() == Some("/a"))
            .unwrap();
        let b = reqs
            .iter()
            .find(|r| r.route.as_deref() == Some("/b"))
            .unwrap();
        assert_eq!((a.sampled_out, a.grown), (false, 2 * p));
        assert_eq!((b.sampled_out, b.grown), (true, 0));
        let outside = outside_grown(&out);
        assert_eq!(outside, 3 * p);
        assert!(c.heap_sampled());
    }
}
