//! Following the targets' heaps, for one recording: the budget that keeps the heap probes'
//! cost within its share of a core (attaching them only part of the time past it), the blocks
//! followed, and, while the probes are off, which of those blocks were given back meanwhile.
//!
//! The probes are placed and attached in `capture::probe::heap`; requests are judged followed
//! or sampled out in `correlate::heap_window`. This file ties them together in time.

use std::collections::{BTreeMap, HashMap, VecDeque};

use memwatch_common::heap::{HEAP_SITES, HeapEvent, HeapOp};

use crate::{
    capture::probe::{
        Probe,
        heap::{
            budget::{Action, Budget, Spent},
            calibrate::Costs,
            chunks::{self, State},
        },
    },
    correlate::{Correlator, HeapBlock},
    model::{Row, meta},
};

/// How long after a detach the last probe's breakpoint is surely gone: the kernel removes one
/// per RCU grace period (about 100 ms here), five per process.
const SETTLE_NS: u64 = 700_000_000;

/// A pass over the followed blocks starts at most this often while the probes are off: each
/// check reads the target's memory (taking its memory-map lock), and a block freed is found
/// soon enough a second or two later.
const PASS_EVERY_NS: u64 = 2_000_000_000;

/// How long a followed block must live to count in the settled heap, the followed heap's
/// retained signal (`Followed::settled`): longer than a request holds what it drops. A buffer a
/// handler builds and drops, read at a sample instant while its request runs, made the sampled
/// heap jump by its size and back: uvicorn at -c8, its `/churn` holding 2 MiB for half of each
/// request, gave a fit that explained half the heap's changes.
pub(super) const SETTLE_AFTER_NS: i64 = 1_000_000_000;
/// Recent blocks remembered per process for the settled heap, at most: at the heap budget's
/// rates a second holds far fewer; past it the oldest count as settled early.
const RECENT_BLOCKS: usize = 1 << 18;

/// Blocks checked per look while the probes are off.
const VERIFY_PER_LOOK: usize = 256;
/// How often the budget looks at the probes' hits while they are attached, in ns: at a busy
/// server's rate they cost a share of a core while on, and each look late overspends the
/// budget by as much.
pub(super) const LOOK_ON_NS: u64 = 10_000_000;
/// The longest one look spends attaching a window's probes (see `HeapFollow::attach_more`).
const ATTACH_SLICE: std::time::Duration = std::time::Duration::from_millis(100);
/// While they are off: when to attach them again is not urgent.
const LOOK_OFF_NS: u64 = 50_000_000;

/// A followed block: its length, glibc chunk size word (0 for a Go span, never checked), the
/// process's marking epoch it was handed out in, when (wall ns), and its place among the
/// process's blocks in the order they were handed out (what the settled heap's queue names it
/// by).
#[derive(Debug, Clone, Copy)]
struct Block {
    len: u64,
    chunk: u64,
    epoch: u32,
    seq: u64,
    born_ns: i64,
}

/// One process's followed blocks by address, with their total kept as they come and go: the
/// session reads it every sample, and a sum over every block there would grow with the heap.
/// Where a collector says when it begins marking (Ruby), blocks are also told apart by the
/// marking they came after ([`Followed::next_marking`]); and blocks handed out lately from the
/// rest, for the settled heap ([`Followed::settled`]).
#[derive(Debug, Default)]
struct Followed {
    blocks: BTreeMap<u64, Block>,
    bytes: u64,
    /// Markings begun so far.
    epoch: u32,
    /// The session's count of detaches when the current epoch began.
    epoch_detaches: u64,
    /// Bytes of the blocks handed out since the last marking began, still held.
    young: u64,
    /// Blocks handed out after `horizon_ns`, oldest first: (handed out, address, seq). An
    /// entry whose block went stays until it is reached; the seq tells it from a later block
    /// at the same address.
    recent: VecDeque<(i64, u64, u64)>,
    /// Bytes of the blocks handed out after `horizon_ns`, still held.
    recent_bytes: u64,
    /// Blocks handed out up to this instant (wall ns) are settled.
    horizon_ns: i64,
    /// Blocks handed out so far: the next block's seq.
    seq: u64,
    /// When (wall ns) the process's probes were placed: its settled heap before then is not
    /// known.
    since_ns: i64,
}

impl Followed {
    fn insert(&mut self, ts_ns: i64, addr: u64, len: u64, chunk: u64) {
        self.bytes += len;
        self.young += len;
        self.seq += 1;
        let block = Block {
            len,
            chunk,
            epoch: self.epoch,
            seq: self.seq,
            born_ns: ts_ns,
        };
        if ts_ns > self.horizon_ns {
            self.recent_bytes += len;
            self.recent.push_back((ts_ns, addr, self.seq));
            if self.recent.len() > RECENT_BLOCKS
                && let Some((oldest, _, _)) = self.recent.front().copied()
            {
                self.settle(oldest);
            }
        }
        if let Some(old) = self.blocks.insert(addr, block) {
            self.forgot(old);
        }
    }

    fn remove(&mut self, addr: u64) {
        if let Some(old) = self.blocks.remove(&addr) {
            self.forgot(old);
        }
    }

    fn forgot(&mut self, old: Block) {
        self.bytes -= old.len;
        if old.epoch == self.epoch {
            self.young -= old.len;
        }
        if old.born_ns > self.horizon_ns {
            self.recent_bytes -= old.len;
        }
    }

    /// Blocks handed out up to `until_ns` count as settled from now on.
    fn settle(&mut self, until_ns: i64) {
        while let Some(&(born, addr, seq)) = self.recent.front() {
            if born > until_ns {
                break;
            }
            self.recent.pop_front();
            if let Some(b) = self.blocks.get(&addr).filter(|b| b.seq == seq) {
                self.recent_bytes -= b.len;
            }
        }
        self.horizon_ns = self.horizon_ns.max(until_ns);
    }

    /// The settled heap at `at_ns`, read now: the bytes of the blocks handed out by then and
    /// still held. Read [`SETTLE_AFTER_NS`] after it, what a request built and dropped is not
    /// in it, while what one keeps is, from when it was handed out on.
    fn settled(&mut self, at_ns: i64) -> u64 {
        self.settle(at_ns);
        self.bytes - self.recent_bytes
    }

    /// A marking begins, with the probes detached `detaches` times so far: returns the bytes
    /// of the blocks handed out before the last one began that are still held (what that
    /// collection, its sweep now over, kept), or `None` when the probes were detached in
    /// between (blocks may have gone unseen), and starts a new epoch.
    fn next_marking(&mut self, detaches: u64) -> Option<u64> {
        let kept = (self.epoch_detaches == detaches).then_some(self.bytes - self.young);
        self.epoch = self.epoch.wrapping_add(1);
        self.epoch_detaches = detaches;
        self.young = 0;
        kept
    }
}

/// What following the heap came to, for the recording.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct HeapCounts {
    /// Heap events handled (blocks and spans handed out or given back).
    pub(super) events: u64,
    /// Processes whose heap could not be followed.
    pub(super) not_followed: u64,
    /// Blocks found given back while the probes were off (their chunk header), and their bytes.
    pub(super) frees_found: u64,
    pub(super) frees_found_bytes: u64,
    /// Blocks whose release was missed, found when a later followed block took their memory.
    pub(super) frees_overlapped: u64,
}

/// The heap probes' budget and the blocks they follow.
#[derive(Debug)]
pub(super) struct HeapFollow {
    budget: Budget,
    costs: Costs,
    /// Followed blocks per process, by address.
    blocks: HashMap<u32, Followed>,
    /// Where the next check of blocks resumes while the probes are off: (pid, address).
    cursor: Option<(u32, u64)>,
    /// Stacks taken at a heap allocation's return, per thread, for the block that follows.
    stacks: HashMap<u32, u32>,
    last_look_ns: u64,
    /// The targets' CPU time and completed requests when the probes were last attached, and
    /// when the last window's lingering breakpoints were surely gone: what the budget learns a
    /// hit's real cost from (the CPU per request of a window against that of the quiet period
    /// before it).
    at_attach: (u64, u64),
    settled: Option<(u64, u64)>,
    /// When the last window will have settled (monotonic ns).
    settle_at: Option<u64>,
    /// When the last pass over the followed blocks began (monotonic ns).
    last_pass_ns: u64,
    /// A window's probes are being attached, a slice per look.
    attaching: bool,
    /// Times the probes were detached: a marking epoch across which this moved saw blocks
    /// change hands unseen, and gives no figure.
    detaches: u64,
    /// Since when (wall ns) the probes have been attached, while they are (from the start: the
    /// budget begins attached).
    followed_since: Option<i64>,
    pub(super) counts: HeapCounts,
}

impl HeapFollow {
    pub(super) fn new(share: f64, costs: Costs) -> Self {
        Self {
            budget: Budget::new(share, [costs.entry_ns; HEAP_SITES as usize]),
            costs,
            blocks: HashMap::new(),
            cursor: None,
            stacks: HashMap::new(),
            last_look_ns: 0,
            at_attach: (0, 0),
            settled: None,
            settle_at: None,
            last_pass_ns: 0,
            attaching: false,
            detaches: 0,
            followed_since: Some(super::wall_ns()),
            counts: HeapCounts::default(),
        }
    }

    /// The probes of the followed processes were placed anew: what a hit costs follows where
    /// they sit.
    pub(super) fn placed(&mut self, probe: &Probe) {
        self.budget
            .set_costs(self.costs.per_site(&probe.heap_sites()));
    }

    /// `pid`'s probes were placed now: its settled heap is known from now on.
    pub(super) fn following(&mut self, pid: u32) {
        self.blocks.entry(pid).or_default().since_ns = super::wall_ns();
    }

    /// A stack was taken at a heap allocation's return on `tid`: the call site of its block.
    pub(super) fn stack(&mut self, tid: u32, id: u32) {
        self.stacks.insert(tid, id);
    }

    /// A block handed out or given back: the correlator moves its pages; the block is kept (or
    /// dropped) here, so that it can be checked while the probes are off.
    pub(super) fn event(
        &mut self,
        ts_ns: i64,
        h: &HeapEvent,
        probe: &mut Probe,
        correlator: &mut Correlator,
        rows: &mut Vec<Row>,
    ) {
        self.counts.events += 1;
        let (pid, tid) = (h.header.tgid, h.header.tid);
        let alloc = h.op == HeapOp::Alloc as u32;
        let stack = if alloc {
            self.stacks.remove(&tid)
        } else {
            None
        };
        let blocks = self.blocks.entry(pid).or_default();
        if alloc {
            // A followed block whose memory this one takes was given back unseen (while the
            // probes were off): its pages change hands below, its entry goes.
            let end = h.addr.saturating_add(h.len);
            let overlapped: Vec<u64> = blocks
                .blocks
                .range(..end)
                .rev()
                .take_while(|(a, b)| a.saturating_add(b.len) > h.addr)
                .map(|(a, _)| *a)
                .collect();
            for a in overlapped {
                blocks.remove(a);
                self.counts.frees_overlapped += 1;
                if a != h.addr {
                    probe.forget_heap_block(pid, a);
                }
            }
            blocks.insert(ts_ns, h.addr, h.len, h.chunk);
        } else {
            blocks.remove(h.addr);
        }
        correlator.heap(
            ts_ns,
            pid,
            tid,
            HeapBlock {
                alloc,
                addr: h.addr,
                len: h.len,
                stack,
            },
            rows,
        );
    }

    /// `pid` is gone or exec'd: its blocks go with it.
    pub(super) fn forget(&mut self, pid: u32) {
        self.blocks.remove(&pid);
    }

    /// At most every [`LOOK_ON_NS`] (or [`LOOK_OFF_NS`] while the probes are off): the budget
    /// looks at the probes' hits and may close, detach or attach them; while they are off, a
    /// batch of followed blocks is checked. `now` is (monotonic ns, wall ns).
    pub(super) fn look(
        &mut self,
        (mono, wall): (u64, i64),
        probe: &mut Probe,
        correlator: &mut Correlator,
        rows: &mut Vec<Row>,
    ) {
        let every = if self.budget.attached() {
            LOOK_ON_NS
        } else {
            LOOK_OFF_NS
        };
        if mono.saturating_sub(self.last_look_ns) < every {
            return;
        }
        self.last_look_ns = mono;
        let hits = probe.heap_hits();
        match self
            .budget
            .tick(mono, hits, correlator.followed_in_flight())
        {
            Some(Action::Close) => {
                tracing::debug!("heap budget spent: new requests are not followed");
                correlator.heap_probes(wall, false);
            }
            Some(Action::Detach) => {
                self.detaches += 1;
                self.followed_since = None;
                // The window's cost is judged once the lingering breakpoints are gone.
                self.settle_at = Some(mono + SETTLE_NS);
                self.attaching = false;
                probe.set_heap_on(false, std::time::Instant::now());
                self.cursor = None;
                let (sites, grace_ns) = probe.heap_lingering();
                // Until the first detach has been timed, a grace period as measured here.
                self.budget
                    .detached(&sites, if grace_ns == 0 { 100_000_000 } else { grace_ns });
                tracing::debug!(grace_ns, probes = sites.len(), "heap probes detached");
            }
            Some(Action::Attach) => {
                self.at_attach = (
                    crate::capture::procfs::cpu_ns(probe.heap_pids()),
                    correlator.requests(),
                );
                self.attaching = true;
            }
            None => {}
        }
        if self.attaching {
            self.attach_more(probe, correlator);
        }
        if let Some(at) = self.settle_at
            && mono >= at
        {
            self.settle_at = None;
            let now = (
                crate::capture::procfs::cpu_ns(probe.heap_pids()),
                correlator.requests(),
            );
            if let Some(quiet) = self.settled {
                let window = (
                    now.0.saturating_sub(self.at_attach.0),
                    now.1.saturating_sub(self.at_attach.1),
                );
                let before = (
                    self.at_attach.0.saturating_sub(quiet.0),
                    self.at_attach.1.saturating_sub(quiet.1),
                );
                self.budget.observed(window, before);
            }
            self.settled = Some(now);
        }
        if !self.budget.attached()
            && (self.cursor.is_some() || mono.saturating_sub(self.last_pass_ns) >= PASS_EVERY_NS)
        {
            if self.cursor.is_none() {
                self.last_pass_ns = mono;
            }
            self.check_blocks(wall, probe, correlator, rows);
        }
    }

    /// Attaches the window's probes for at most [`ATTACH_SLICE`], going on at the next look:
    /// each attach may wait behind a detach's grace period in the kernel, and with many
    /// processes followed, one go would hold the event loop (and a user's Ctrl-C) for seconds.
    /// Requests count as followed once every process has its probes.
    fn attach_more(&mut self, probe: &mut Probe, correlator: &mut Correlator) {
        let started = std::time::Instant::now();
        let (failed, complete) = probe.set_heap_on(true, started + ATTACH_SLICE);
        tracing::debug!(took = ?started.elapsed(), complete, "heap probes attached");
        for (pid, e) in failed {
            self.counts.not_followed += 1;
            self.blocks.remove(&pid);
            tracing::warn!("{:#}", anyhow::Error::from(e));
        }
        if complete {
            self.attaching = false;
            // Requests that start from now on are followed: the probes are attached.
            let now = super::wall_ns();
            correlator.heap_probes(now, true);
            self.followed_since = Some(now);
        }
    }

    /// Checks up to [`VERIFY_PER_LOOK`] followed glibc blocks, resuming where the last check
    /// stopped: a block given back while the probes were off is released to the allocator now.
    fn check_blocks(
        &mut self,
        wall: i64,
        probe: &mut Probe,
        correlator: &mut Correlator,
        rows: &mut Vec<Row>,
    ) {
        let mut pids: Vec<u32> = self.blocks.keys().copied().collect();
        pids.sort_unstable();
        let (start_pid, start_addr) = self.cursor.unwrap_or((0, 0));
        let mut checked = 0;
        let mut next = None;
        'outer: for pid in pids.into_iter().filter(|&p| p >= start_pid) {
            let from = if pid == start_pid { start_addr } else { 0 };
            let candidates: Vec<(u64, Block)> = self.blocks[&pid]
                .blocks
                .range(from..)
                .filter(|(_, b)| b.chunk != 0)
                .map(|(a, b)| (*a, *b))
                .collect();
            for (addr, block) in candidates {
                if checked == VERIFY_PER_LOOK {
                    next = Some((pid, addr));
                    break 'outer;
                }
                checked += 1;
                match chunks::state(pid, addr, block.chunk) {
                    State::InUse => {}
                    State::Freed | State::Unreadable => {
                        if let Some(b) = self.blocks.get_mut(&pid) {
                            b.remove(addr);
                        }
                        probe.forget_heap_block(pid, addr);
                        self.counts.frees_found += 1;
                        self.counts.frees_found_bytes += block.len;
                        correlator.heap(wall, pid, 0, HeapBlock::given_back(addr, block.len), rows);
                    }
                }
            }
        }
        self.cursor = next;
    }

    /// Whether the probes are attached now (the fast look is needed only then).
    pub(super) fn attached(&self) -> bool {
        self.budget.attached()
    }

    /// Each process's settled heap at `at_ns` (see `Followed::settled`), where the probes have
    /// seen every block change hands since then; none otherwise.
    pub(super) fn settled_bytes(&mut self, at_ns: i64) -> Vec<(u32, u64)> {
        if self.followed_since.is_none_or(|since| since > at_ns) {
            return Vec::new();
        }
        self.blocks
            .iter_mut()
            .filter(|(_, f)| f.since_ns <= at_ns)
            .map(|(&pid, f)| (pid, f.settled(at_ns)))
            .collect()
    }

    /// `pid`'s collector began marking (or, in Node.js, V8 swept its dead buffers): the bytes
    /// of its followed blocks handed out before its last marking (or sweep) began and still
    /// held (see `Followed::next_marking`).
    pub(super) fn next_marking(&mut self, pid: u32) -> Option<u64> {
        let detaches = self.detaches;
        self.blocks.entry(pid).or_default().next_marking(detaches)
    }

    /// What the budget did.
    pub(super) fn spent(&self) -> Spent {
        self.budget.spent()
    }

    /// The budget's figures so far (written each second, and again when the recording closes).
    pub(super) fn progress(&self) -> Vec<Row> {
        let s = self.spent();
        vec![
            Row::Meta(
                meta::HEAP_ON_FRACTION.into(),
                format!("{:.4}", s.on_fraction()),
            ),
            Row::Meta(
                meta::HEAP_COST_SHARE.into(),
                format!("{:.5}", s.cost_share()),
            ),
            Row::Meta(meta::HEAP_PAUSES.into(), s.pauses.to_string()),
        ]
    }

    /// The recording's heap figures, written when it closes.
    pub(super) fn meta(&self, probe: Option<&Probe>) -> Vec<Row> {
        let s = self.spent();
        let c = self.costs;
        let mut rows = vec![
            (meta::HEAP_EVENTS, self.counts.events.to_string()),
            (
                meta::HEAP_NOT_FOLLOWED,
                self.counts.not_followed.to_string(),
            ),
            (meta::HEAP_ON_FRACTION, format!("{:.4}", s.on_fraction())),
            (meta::HEAP_COST_SHARE, format!("{:.5}", s.cost_share())),
            (meta::HEAP_HITS, s.hits.to_string()),
            (
                meta::HEAP_COST_FACTOR,
                format!("{:.2}", self.budget.factor()),
            ),
            (meta::HEAP_PAUSES, s.pauses.to_string()),
            (
                meta::HEAP_HIT_NS,
                format!(
                    "entry={:.0} return={:.0} free={:.0} step={:.0} measured={}",
                    c.entry_ns, c.return_ns, c.free_ns, c.step_ns, c.measured
                ),
            ),
            (meta::HEAP_FREES_FOUND, self.counts.frees_found.to_string()),
            (
                meta::HEAP_FREES_FOUND_BYTES,
                self.counts.frees_found_bytes.to_string(),
            ),
            (
                meta::HEAP_FREES_OVERLAPPED,
                self.counts.frees_overlapped.to_string(),
            ),
        ];
        if let Some(probe) = probe {
            let sites: Vec<String> = probe
                .heap_sites()
                .iter()
                .map(|p| {
                    format!(
                        "{} {}+{} {}{}",
                        p.path
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                        p.function,
                        p.site.offset,
                        p.program,
                        match p.site.handling {
                            crate::capture::probe::heap::sites::Handling::Emulated => "",
                            crate::capture::probe::heap::sites::Handling::SingleStepped =>
                                " single-stepped",
                        }
                    )
                })
                .collect();
            rows.push((meta::HEAP_SITES, sites.join("\n")));
        }
        rows.into_iter()
            .map(|(k, v)| Row::Meta(k.into(), v))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::{Costs, Followed, HeapFollow};

    /// The settled heap is read only where the probes saw every block change hands since the
    /// instant read: not before they were attached, not before a process's were placed, and not
    /// while they are off.
    #[test]
    fn a_settled_heap_is_read_only_where_the_probes_were_on_since() {
        let mut h = HeapFollow::new(0.02, Costs::default());
        h.followed_since = Some(1000);
        h.blocks.entry(7).or_default().since_ns = 2000;
        if let Some(f) = h.blocks.get_mut(&7) {
            f.insert(2100, 0x1000, 4096, 0);
        }
        assert_eq!(h.settled_bytes(500), vec![]);
        assert_eq!(h.settled_bytes(1500), vec![]);
        assert_eq!(h.settled_bytes(2050), vec![(7, 0)]);
        assert_eq!(h.settled_bytes(2500), vec![(7, 4096)]);
        // Detached, then attached again at 4000.
        h.followed_since = None;
        assert_eq!(h.settled_bytes(3000), vec![]);
        h.followed_since = Some(4000);
        assert_eq!(h.settled_bytes(3500), vec![]);
        assert_eq!(h.settled_bytes(4000), vec![(7, 4096)]);
    }

    #[test]
    fn the_followed_total_moves_with_each_block() {
        let mut f = Followed::default();
        f.insert(0, 0x1000, 4096, 4113);
        f.insert(0, 0x3000, 8192, 0);
        assert_eq!(f.bytes, 12288);
        // The same address handed out again (its release unseen) replaces the old block.
        f.insert(0, 0x1000, 16384, 16401);
        assert_eq!(f.bytes, 24576);
        f.remove(0x3000);
        f.remove(0x3000);
        f.remove(0x9000);
        assert_eq!(f.bytes, 16384);
        f.remove(0x1000);
        assert_eq!((f.bytes, f.blocks.len()), (0, 0));
    }

    /// The settled heap: a block counts from when it was handed out, once it has outlived the
    /// instant read; one given back before the read never counts, nor does a block handed out
    /// after it.
    #[test]
    fn the_settled_heap_leaves_out_what_was_dropped_soon_after() {
        let mut f = Followed::default();
        // Kept; built and dropped; handed out after the instant read.
        f.insert(100, 0x1000, 4096, 0);
        f.insert(150, 0x2000, 8192, 0);
        f.remove(0x2000);
        f.insert(250, 0x3000, 16384, 0);
        assert_eq!(f.settled(200), 4096);
        assert_eq!(f.bytes, 4096 + 16384);
        // The block after the instant read goes before the next read: it never counted.
        f.remove(0x3000);
        assert_eq!(f.settled(260), 4096);
        // A block dropped, and its address handed out again before the read reaches the first:
        // the first's place in the queue does not take the second's bytes.
        f.insert(270, 0x4000, 8192, 0);
        f.remove(0x4000);
        f.insert(280, 0x4000, 65536, 0);
        assert_eq!(f.settled(275), 4096);
        assert_eq!(f.settled(300), 4096 + 65536);
        // A block whose event was read after an instant later than it is settled at once.
        f.insert(290, 0x5000, 4096, 0);
        assert_eq!(f.settled(300), 4096 + 65536 + 4096);
        f.remove(0x5000);
        f.remove(0x1000);
        assert_eq!((f.settled(400), f.recent_bytes), (65536, 0));
    }

    /// Ruby's collections: what a marking kept is what was held when it began and is still held
    /// when the next begins; blocks handed out in between (its sweep frees none of them) are
    /// the next collection's to judge.
    #[test]
    fn a_collection_keeps_what_was_held_at_its_marking_and_still_is() {
        let mut f = Followed::default();
        f.insert(0, 0x1000, 4096, 0);
        f.insert(0, 0x2000, 8192, 0);
        // Marking 1 begins; what came before it is not judged by anything yet.
        f.next_marking(0);
        // Its sweep frees the block at 0x2000; a new block comes, and one of the new goes.
        f.remove(0x2000);
        f.insert(0, 0x5000, 65536, 0);
        f.insert(0, 0x9000, 16384, 0);
        f.remove(0x9000);
        // Marking 2: collection 1 kept the block at 0x1000 alone.
        assert_eq!(f.next_marking(0), Some(4096));
        // The block at 0x5000, handed out after marking 1, is collection 2's: kept if still
        // held; one handed out now is not judged yet.
        f.insert(0, 0xa000, 8192, 0);
        assert_eq!(f.next_marking(0), Some(4096 + 65536));
        f.remove(0x5000);
        assert_eq!(f.next_marking(0), Some(4096 + 8192));
        assert_eq!(f.bytes, 4096 + 8192);
        // The probes were detached (and attached again) before the next marking: blocks may
        // have gone unseen, so that collection gives no figure; the one after does.
        assert_eq!(f.next_marking(1), None);
        assert_eq!(f.next_marking(1), Some(4096 + 8192));
    }
}
