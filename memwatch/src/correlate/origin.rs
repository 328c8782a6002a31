//! Where resident memory came from: which request (or no request) made each page of a traced
//! process resident, so that a page released later — by munmap, madvise, a brk shrink, mremap or
//! the process's exit, on whatever thread, whenever — is credited back to the request that
//! created it. Pure logic, fed with page ranges made resident and ranges released.
//!
//! Pages are kept as coalesced spans per process: `[start, end)` with one owner. A page made
//! resident twice (a copy-on-write fault after a read fault, say) is counted once. Memory is
//! bounded: past [`OriginMap::max_spans`] spans, new growth is not tracked and its bytes are
//! counted in [`OriginCounts::untracked_bytes`]. Released bytes no span covers are counted by
//! what memwatch knows of the pages resident there ([`Resident`]): in
//! [`OriginCounts::unmatched_release_bytes`] when they were resident before memwatch began to
//! trace the process, or may have been (nothing known of them), else in
//! [`OriginCounts::unseen_release_bytes`] (address space memwatch never saw resident, such as
//! the untouched part of a thread stack, or the padding glibc's `sbrk` took and a trim of the
//! heap's top gives back unused). Nothing is dropped silently.

use std::collections::{BTreeMap, HashMap, VecDeque};

/// Who made a span resident: a request id, or [`OUTSIDE`] for memory made resident while the
/// thread served no request (startup, background threads, collectors between requests). The
/// resident map's owners also carry the call site ([`super::Charge`]); any small `Copy` value
/// that compares will do.
pub trait Owner: Copy + Eq + std::fmt::Debug {}

impl<T: Copy + Eq + std::fmt::Debug> Owner for T {}

/// The request id of memory made resident outside any request.
pub const OUTSIDE: i64 = 0;

/// Default bound on tracked spans per recording: each costs about 64 bytes.
pub const DEFAULT_MAX_SPANS: usize = 1 << 20;

/// Releases remembered per process, to check runs of faulted pages that arrive late against.
const RECENT_RELEASES: usize = 1024;

/// Mappings remembered per process, for unmappings that return after them.
const RECENT_MAPPINGS: usize = 1024;

/// When a release took effect: somewhere from its syscall's start to its return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Between {
    pub began: i64,
    pub ended: i64,
}

#[cfg(test)]
impl Between {
    /// A release known to the instant.
    pub fn at(ts: i64) -> Self {
        Self {
            began: ts,
            ended: ts,
        }
    }
}

/// A release remembered for [`OriginMap::grow_run`]: `(when, start, end, resident)`.
type Recent = (Between, u64, u64, Resident);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span<O> {
    end: u64,
    owner: O,
}

/// What memwatch knows of the pages resident in a released range, which says what its bytes
/// that no span covers were.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resident {
    /// Nothing: pages there may have been resident before memwatch attached, or inherited over
    /// fork. Every uncovered byte is a release of unknown origin (an upper bound).
    Unknown,
    /// Every resident page is known, no growth having gone untracked: the spans, and `before`
    /// bytes still resident from when memwatch began to trace the process (its pagemap, read
    /// then; 0 for a range the process mapped, all of it, while traced). Those `before` bytes
    /// are releases of unknown origin; the other uncovered bytes were never seen resident
    /// (reserved address space such as the untouched part of a thread stack, or pages populated
    /// without a user fault).
    Known { before: u64 },
}

/// What the map could not attribute, and how much it holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OriginCounts {
    /// Bytes made resident that were not tracked because the span bound was reached.
    pub untracked_bytes: u64,
    /// Releases of unknown origin: bytes released that no tracked span covered, resident before
    /// memwatch began to trace the process, or perhaps resident ([`Resident::Unknown`]).
    pub unmatched_release_bytes: u64,
    /// Bytes released that no tracked span covered and that memwatch knows were not resident
    /// as far as it saw ([`Resident::Known`]): not memory given back.
    pub unseen_release_bytes: u64,
    /// Spans held now.
    pub spans: u64,
    /// Bytes held now (tracked and not yet released).
    pub tracked_bytes: u64,
}

/// Bytes released per owner, from one release.
pub type Credits<O = i64> = Vec<(O, u64)>;

/// The resident pages of every traced process, by origin.
#[derive(Debug)]
pub struct OriginMap<O = i64> {
    processes: HashMap<u32, BTreeMap<u64, Span<O>>>,
    max_spans: usize,
    counts: OriginCounts,
    /// The latest releases per process: `(when, start, end, resident)`, in the order their
    /// syscalls returned, newest last.
    recent: HashMap<u32, VecDeque<Recent>>,
    /// The latest mappings per process: `(returned, start, end)`, newest last (the address-space
    /// map's, for [`OriginMap::release_since`]).
    mapped: HashMap<u32, VecDeque<(i64, u64, u64)>>,
}

impl<O: Owner> OriginMap<O> {
    pub fn new(max_spans: usize) -> Self {
        Self {
            processes: HashMap::new(),
            max_spans,
            counts: OriginCounts::default(),
            recent: HashMap::new(),
            mapped: HashMap::new(),
        }
    }

    /// Remembers that `[start, start + len)` of `pid` was mapped by a syscall that returned at
    /// `ts`, for [`OriginMap::release_since`].
    pub fn note_mapped(&mut self, pid: u32, ts: i64, start: u64, len: u64) {
        let mapped = self.mapped.entry(pid).or_default();
        if mapped.len() == RECENT_MAPPINGS {
            mapped.pop_front();
        }
        mapped.push_back((ts, start, start.saturating_add(len)));
    }

    /// [`OriginMap::release`] by an unmapping that began at `began`. What a mapping that
    /// returned since then holds in the range is newer than the unmapping: the kernel gave it
    /// addresses the unmapping had already freed (two threads that map and unmap blocks of one
    /// size get each other's), and it is left alone.
    pub fn release_since(&mut self, pid: u32, began: i64, start: u64, len: u64) -> Credits<O> {
        let end = start.saturating_add(len);
        let mut pieces = vec![(start, end)];
        if let Some(mapped) = self.mapped.get(&pid) {
            for &(_, ms, me) in mapped.iter().rev().take_while(|m| m.0 >= began) {
                pieces = cut_out(pieces, (ms, me)).0;
            }
        }
        let mut credits: Credits<O> = Vec::new();
        for (a, b) in pieces {
            for (owner, bytes) in self.release(pid, a, b - a) {
                add_credit(&mut credits, owner, bytes);
            }
        }
        credits
    }

    /// Remembers that `[start, start + len)` of `pid` was released `when`, for
    /// [`OriginMap::grow_run`].
    pub fn note_release(
        &mut self,
        pid: u32,
        when: Between,
        start: u64,
        len: u64,
        resident: Resident,
    ) {
        let recent = self.recent.entry(pid).or_default();
        if recent.len() == RECENT_RELEASES {
            recent.pop_front();
        }
        recent.push_back((when, start, start.saturating_add(len), resident));
    }

    /// The counter of released bytes no span covered other than the `before` ones: pages made
    /// resident after memwatch began are among them, if any.
    fn uncovered(&mut self, resident: Resident) -> &mut u64 {
        match resident {
            Resident::Unknown => &mut self.counts.unmatched_release_bytes,
            Resident::Known { .. } => &mut self.counts.unseen_release_bytes,
        }
    }

    /// Whether spans cover all of `[start, end)` of `pid`, whatever their owners.
    pub fn covers(&self, pid: u32, start: u64, end: u64) -> bool {
        if end <= start {
            return true;
        }
        let Some(spans) = self.processes.get(&pid) else {
            return false;
        };
        let mut cursor = start;
        if let Some((_, span)) = spans.range(..=start).next_back() {
            cursor = cursor.max(span.end);
        }
        for (&s, span) in spans.range(start.saturating_add(1)..end) {
            if cursor >= end || s > cursor {
                break;
            }
            cursor = cursor.max(span.end);
        }
        cursor >= end
    }

    /// A run of pages a thread faulted in from `first_ts` on, reported only now: the pages
    /// another thread released since `first_ts` are gone again and are not counted (their
    /// release was counted as not covered, which is taken back). The rest is
    /// [`OriginMap::grow`]n. Returns the bytes newly tracked.
    ///
    /// Only a release whose syscall began after `first_ts` took the run's pages. One that was
    /// under way by then (it returned later) had unmapped them before the run's first fault:
    /// two threads that map, fill and unmap blocks of one size get each other's addresses, and
    /// a thread can fault in the addresses another unmapped before that one has returned. Its
    /// pages are new, and stay.
    pub fn grow_run(&mut self, pid: u32, (start, len): (u64, u64), owner: O, first_ts: i64) -> u64 {
        let end = start.saturating_add(len);
        // The releases that took pages of the run: newest first, while their syscalls returned
        // after the run began (older ones cannot have).
        let took: Vec<Recent> = self.recent.get(&pid).map_or_else(Vec::new, |recent| {
            recent
                .iter()
                .rev()
                .take_while(|r| r.0.ended >= first_ts)
                .filter(|&&(when, rs, re, _)| when.began >= first_ts && rs < end && re > start)
                .copied()
                .collect()
        });
        // The usual case, on every growth event: nothing released since the run began.
        if took.is_empty() {
            return self.grow(pid, start, len, owner);
        }
        let mut pieces = vec![(start, end)];
        // What each release took from the run, taken back from the counter it went to.
        let mut taken: Vec<(Resident, u64)> = Vec::new();
        for (_, rs, re, resident) in took {
            let (rest, bytes) = cut_out(pieces, (rs, re));
            taken.push((resident, bytes));
            pieces = rest;
        }
        // Pages faulted in after memwatch began are not among the `before` bytes.
        for (resident, bytes) in taken {
            let counter = self.uncovered(resident);
            *counter = counter.saturating_sub(bytes);
        }
        pieces
            .into_iter()
            .map(|(a, b)| self.grow(pid, a, b - a, owner))
            .sum()
    }

    pub fn counts(&self) -> OriginCounts {
        self.counts
    }

    /// `[start, start + len)` of process `pid` became resident on behalf of `owner`. Returns
    /// the bytes newly tracked: pages already tracked are not counted again.
    pub fn grow(&mut self, pid: u32, start: u64, len: u64, owner: O) -> u64 {
        let end = start.saturating_add(len);
        if len == 0 {
            return 0;
        }
        let spans = self.processes.entry(pid).or_default();
        // The gaps of [start, end) not covered by existing spans.
        let mut gaps = Vec::new();
        let mut cursor = start;
        let first = spans
            .range(..=start)
            .next_back()
            .filter(|(_, s)| s.end > start)
            .map(|(&k, _)| k);
        let from = first.unwrap_or(start);
        for (&s, span) in spans.range(from..end) {
            if s > cursor {
                gaps.push((cursor, s));
            }
            cursor = cursor.max(span.end);
            if cursor >= end {
                break;
            }
        }
        if cursor < end {
            gaps.push((cursor, end));
        }
        let mut added = 0;
        for (gs, ge) in gaps {
            if self.counts.spans as usize >= self.max_spans {
                self.counts.untracked_bytes += ge - gs;
                continue;
            }
            insert_coalesced(spans, &mut self.counts, gs, ge, owner);
            added += ge - gs;
        }
        self.counts.tracked_bytes += added;
        added
    }

    /// [`OriginMap::release_as`] with nothing known of the pages there: what no span covers is
    /// unmatched. The address-space map, and the map of pages resident before tracing began,
    /// release this way.
    pub fn release(&mut self, pid: u32, start: u64, len: u64) -> Credits<O> {
        self.release_as(pid, start, len, Resident::Unknown)
    }

    /// `[start, start + len)` of process `pid` was released. Returns the bytes credited to each
    /// owner; what no span covered is counted by what is known of the pages resident there.
    pub fn release_as(&mut self, pid: u32, start: u64, len: u64, resident: Resident) -> Credits<O> {
        let end = start.saturating_add(len);
        let mut credits: Credits<O> = Vec::new();
        if len == 0 {
            return credits;
        }
        let mut covered = 0;
        if let Some(spans) = self.processes.get_mut(&pid) {
            for (s, span) in take_range(spans, &mut self.counts, start, end) {
                let bytes = span.end - s;
                covered += bytes;
                add_credit(&mut credits, span.owner, bytes);
            }
        }
        self.counts.tracked_bytes -= covered;
        let uncovered = len - covered;
        let before = match resident {
            Resident::Unknown => 0,
            Resident::Known { before } => before.min(uncovered),
        };
        self.counts.unmatched_release_bytes += before;
        *self.uncovered(resident) += uncovered - before;
        credits
    }

    /// [`OriginMap::remap_as`] with nothing known of the pages of a released tail.
    pub fn remap(&mut self, pid: u32, old: (u64, u64), new: (u64, u64)) -> Credits<O> {
        self.remap_as(pid, old, new, Resident::Unknown)
    }

    /// mremap: the first `min(old_len, new_len)` bytes move from `old` to `new` with their
    /// owners; a shrink releases the tail, whose resident pages are `resident`. Growth of the
    /// mapping is not resident until faulted.
    pub fn remap_as(
        &mut self,
        pid: u32,
        (old, old_len): (u64, u64),
        (new, new_len): (u64, u64),
        resident: Resident,
    ) -> Credits<O> {
        let kept = old_len.min(new_len);
        let credits = if new_len < old_len {
            self.release_as(
                pid,
                old.saturating_add(new_len),
                old_len - new_len,
                resident,
            )
        } else {
            Vec::new()
        };
        if new != old && kept > 0 {
            let moved = match self.processes.get_mut(&pid) {
                Some(spans) => take_range(spans, &mut self.counts, old, old.saturating_add(kept)),
                None => Vec::new(),
            };
            let spans = self.processes.entry(pid).or_default();
            for (s, span) in moved {
                let at = new + (s - old);
                insert_coalesced(spans, &mut self.counts, at, at + (span.end - s), span.owner);
            }
        }
        credits
    }

    /// The resident pages of `[start, end)` of `pid` change hands to `owner` (a heap block handed
    /// out or given back). Pages not tracked are left alone: they are not resident yet, or of
    /// no known origin. Returns the bytes taken from each previous owner, and the bytes `owner`
    /// now holds that it did not before.
    pub fn transfer(&mut self, pid: u32, start: u64, end: u64, owner: O) -> (Credits<O>, u64) {
        let mut credits: Credits<O> = Vec::new();
        if end <= start {
            return (credits, 0);
        }
        let Some(spans) = self.processes.get_mut(&pid) else {
            return (credits, 0);
        };
        let mut moved = 0;
        for (s, span) in take_range(spans, &mut self.counts, start, end) {
            let bytes = span.end - s;
            if span.owner != owner {
                add_credit(&mut credits, span.owner, bytes);
                moved += bytes;
            }
            insert_coalesced(spans, &mut self.counts, s, span.end, owner);
        }
        (credits, moved)
    }

    /// Removes the tracked ranges of `[start, end)` of `pid`, whoever holds them, and returns
    /// them: pages that change hands with no release (memory resident before memwatch began to
    /// trace the process, taken by a heap block a request is handed).
    pub fn take(&mut self, pid: u32, start: u64, end: u64) -> Vec<(u64, u64)> {
        if end <= start {
            return Vec::new();
        }
        let Some(spans) = self.processes.get_mut(&pid) else {
            return Vec::new();
        };
        let taken: Vec<(u64, u64)> = take_range(spans, &mut self.counts, start, end)
            .into_iter()
            .map(|(s, span)| (s, span.end))
            .collect();
        self.counts.tracked_bytes -= taken.iter().map(|(s, e)| e - s).sum::<u64>();
        taken
    }

    /// The process exited: everything it held is released.
    pub fn exit(&mut self, pid: u32) -> Credits<O> {
        self.recent.remove(&pid);
        self.mapped.remove(&pid);
        let mut credits: Credits<O> = Vec::new();
        if let Some(spans) = self.processes.remove(&pid) {
            for (s, span) in spans {
                let bytes = span.end - s;
                self.counts.tracked_bytes -= bytes;
                self.counts.spans -= 1;
                add_credit(&mut credits, span.owner, bytes);
            }
        }
        credits
    }

    /// Bytes held now per owner.
    #[cfg(test)]
    fn held(&self) -> BTreeMap<O, u64>
    where
        O: Ord,
    {
        let mut out = BTreeMap::new();
        for spans in self.processes.values() {
            for (s, span) in spans {
                *out.entry(span.owner).or_default() += span.end - s;
            }
        }
        out
    }
}

/// `pieces` (disjoint ranges) less `[cut_start, cut_end)`, and the bytes that took from them.
fn cut_out(pieces: Vec<(u64, u64)>, (cut_start, cut_end): (u64, u64)) -> (Vec<(u64, u64)>, u64) {
    let mut rest = Vec::with_capacity(pieces.len() + 1);
    let mut taken = 0;
    for (a, b) in pieces {
        if cut_end <= a || cut_start >= b {
            rest.push((a, b));
            continue;
        }
        let (from, to) = (cut_start.max(a), cut_end.min(b));
        taken += to - from;
        rest.extend([(a, from), (to, b)].into_iter().filter(|(x, y)| y > x));
    }
    (rest, taken)
}

fn add_credit<O: Owner>(credits: &mut Credits<O>, owner: O, bytes: u64) {
    match credits.iter_mut().find(|(o, _)| *o == owner) {
        Some((_, b)) => *b += bytes,
        None => credits.push((owner, bytes)),
    }
}

/// Inserts `[start, end)` (which overlaps no span) and merges it with same-owner neighbours.
fn insert_coalesced<O: Owner>(
    spans: &mut BTreeMap<u64, Span<O>>,
    counts: &mut OriginCounts,
    mut start: u64,
    mut end: u64,
    owner: O,
) {
    if let Some((&ps, prev)) = spans.range(..start).next_back()
        && prev.end == start
        && prev.owner == owner
    {
        start = ps;
        spans.remove(&ps);
        counts.spans -= 1;
    }
    if let Some(next) = spans.get(&end).copied()
        && next.owner == owner
    {
        spans.remove(&end);
        counts.spans -= 1;
        end = next.end;
    }
    spans.insert(start, Span { end, owner });
    counts.spans += 1;
}

/// Removes `[start, end)` from the spans, splitting those that straddle its edges, and returns
/// the removed pieces.
fn take_range<O: Owner>(
    spans: &mut BTreeMap<u64, Span<O>>,
    counts: &mut OriginCounts,
    start: u64,
    end: u64,
) -> Vec<(u64, Span<O>)> {
    // Split a span that starts before `start` and reaches into the range.
    if let Some((&s, span)) = spans.range(..start).next_back()
        && span.end > start
    {
        let span = *span;
        spans.insert(s, Span { end: start, ..span });
        spans.insert(start, span);
        counts.spans += 1;
    }
    // Split a span that starts inside the range and reaches past `end`.
    if let Some((&s, span)) = spans.range(..end).next_back()
        && s >= start
        && span.end > end
    {
        let span = *span;
        spans.insert(s, Span { end, ..span });
        spans.insert(end, span);
        counts.spans += 1;
    }
    let keys: Vec<u64> = spans.range(start..end).map(|(&k, _)| k).collect();
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        if let Some(span) = spans.remove(&k) {
            counts.spans -= 1;
            out.push((k, span));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u64 = 4096;

    #[test]
    fn growth_is_counted_once_and_releases_credit_their_owner() {
        let mut m = OriginMap::new(DEFAULT_MAX_SPANS);
        assert_eq!(m.grow(1, 10 * P, 4 * P, 7), 4 * P);
        // A re-fault of pages already resident is not growth.
        assert_eq!(m.grow(1, 12 * P, 4 * P, 8), 2 * P);
        assert_eq!(m.counts().tracked_bytes, 6 * P);
        // Another thread, another request, releases the middle: credited to both owners.
        assert_eq!(m.release(1, 12 * P, 3 * P), vec![(7, 2 * P), (8, P)]);
        assert_eq!(m.held(), BTreeMap::from([(7, 2 * P), (8, P)]));
        // Releasing pages memwatch never saw resident is counted, not credited.
        assert_eq!(m.release(1, 100 * P, 2 * P), vec![]);
        assert_eq!(m.counts().unmatched_release_bytes, 2 * P);
        assert_eq!(m.exit(1), vec![(7, 2 * P), (8, P)]);
        assert_eq!(
            m.counts(),
            OriginCounts {
                unmatched_release_bytes: 2 * P,
                ..OriginCounts::default()
            }
        );
    }

    #[test]
    fn heap_blocks_change_hands_without_changing_what_is_resident() {
        let mut m = OriginMap::new(DEFAULT_MAX_SPANS);
        // Request 7 faults in a 16-page block, then frees it: the allocator keeps the pages.
        m.grow(1, 100 * P, 16 * P, 7);
        assert_eq!(
            m.transfer(1, 100 * P, 116 * P, OUTSIDE),
            (vec![(7, 16 * P)], 16 * P)
        );
        // Request 9 gets the first 4 pages back from malloc, plus 2 pages never resident.
        assert_eq!(
            m.transfer(1, 98 * P, 104 * P, 9),
            (vec![(OUTSIDE, 4 * P)], 4 * P)
        );
        // Handing out what the owner already holds moves nothing.
        assert_eq!(m.transfer(1, 100 * P, 104 * P, 9), (vec![], 0));
        assert_eq!(m.held(), BTreeMap::from([(OUTSIDE, 12 * P), (9, 4 * P)]));
        assert_eq!(m.counts().tracked_bytes, 16 * P);
        assert_eq!(m.counts().spans, 2);
        assert_eq!(m.counts().unmatched_release_bytes, 0);
        // An empty or inverted block, or another process, moves nothing.
        assert_eq!(m.transfer(1, 5 * P, 5 * P, 9), (vec![], 0));
        assert_eq!(m.transfer(2, 100 * P, 116 * P, 9), (vec![], 0));
    }

    #[test]
    fn a_run_reported_late_does_not_count_pages_released_meanwhile() {
        let mut m = OriginMap::new(DEFAULT_MAX_SPANS);
        // Thread A faults 8 pages from t=100; thread B releases the middle 4 at t=150, before
        // A's run is reported at t=200: those 4 are gone, and their release was not unmatched.
        assert_eq!(m.release(1, 12 * P, 4 * P), vec![]);
        m.note_release(1, Between::at(150), 12 * P, 4 * P, Resident::Unknown);
        assert_eq!(m.counts().unmatched_release_bytes, 4 * P);
        assert_eq!(m.grow_run(1, (10 * P, 8 * P), 7, 100), 4 * P);
        assert_eq!(m.held(), BTreeMap::from([(7, 4 * P)]));
        assert_eq!(m.counts().unmatched_release_bytes, 0);
        // A run that started after the release counts every page (re-faulted since).
        assert_eq!(m.grow_run(1, (12 * P, 4 * P), 8, 160), 4 * P);
        // Another process's releases do not matter.
        assert_eq!(m.grow_run(2, (12 * P, 4 * P), 9, 100), 4 * P);
    }

    /// Two threads that each map, fill and unmap 2 MiB get each other's addresses: B maps the
    /// block A unmaps and faults it in before A's munmap has returned. B's pages are new. (The
    /// demo's churn lost three such requests' growth when a release counted from its return.)
    #[test]
    fn a_run_that_began_while_a_release_was_under_way_keeps_its_pages() {
        let mut m = OriginMap::new(DEFAULT_MAX_SPANS);
        m.grow(1, 0, 512 * P, 7);
        // A's munmap begins at t=100 and returns at t=300; B's first fault there is at t=200.
        let unmapped = Between {
            began: 100,
            ended: 300,
        };
        m.note_release(1, unmapped, 0, 512 * P, Resident::Known { before: 0 });
        assert_eq!(
            m.release_as(1, 0, 512 * P, Resident::Known { before: 0 }),
            vec![(7, 512 * P)]
        );
        assert_eq!(m.grow_run(1, (0, 512 * P), 8, 200), 512 * P);
        assert_eq!(m.held(), BTreeMap::from([(8, 512 * P)]));
        // A release that began after B's first fault still takes what it overlaps.
        let later = Between {
            began: 250,
            ended: 260,
        };
        m.note_release(1, later, 600 * P, 2 * P, Resident::Known { before: 0 });
        m.release_as(1, 600 * P, 2 * P, Resident::Known { before: 0 });
        assert_eq!(m.counts().unseen_release_bytes, 2 * P);
        assert_eq!(m.grow_run(1, (600 * P, 4 * P), 9, 200), 2 * P);
        assert_eq!(m.counts().unseen_release_bytes, 0);
        assert_eq!(m.held(), BTreeMap::from([(8, 512 * P), (9, 2 * P)]));
    }

    /// Uncovered bytes of address space mapped while recording are counted apart from those
    /// that may have been resident before memwatch attached, and a late run takes back from
    /// the counter each release went to.
    #[test]
    fn uncovered_releases_are_counted_by_what_is_known_of_their_address_space() {
        let mut m = OriginMap::new(DEFAULT_MAX_SPANS);
        m.grow(1, 10 * P, 2 * P, 7);
        // A 512-page thread stack mapped while recording, 2 pages of it touched, madvised away.
        assert_eq!(
            m.release_as(1, 0, 512 * P, Resident::Known { before: 0 }),
            vec![(7, 2 * P)]
        );
        assert_eq!(m.counts().unseen_release_bytes, 510 * P);
        assert_eq!(m.counts().unmatched_release_bytes, 0);
        // Startup memory from before the attach, released: of no known origin.
        assert_eq!(m.release(1, 1000 * P, 3 * P), vec![]);
        assert_eq!(m.counts().unmatched_release_bytes, 3 * P);
        // A run from t=100 reported at t=200 overlaps a release of each kind made meanwhile.
        m.note_release(
            1,
            Between::at(150),
            2000 * P,
            2 * P,
            Resident::Known { before: 0 },
        );
        m.release_as(1, 2000 * P, 2 * P, Resident::Known { before: 0 });
        m.note_release(1, Between::at(160), 2003 * P, P, Resident::Unknown);
        m.release(1, 2003 * P, P);
        assert_eq!(m.grow_run(1, (2000 * P, 5 * P), 8, 100), 2 * P);
        assert_eq!(m.counts().unseen_release_bytes, 510 * P);
        assert_eq!(m.counts().unmatched_release_bytes, 3 * P);
        // 10 pages released, 2 tracked, 3 known resident before: those 3 are of unknown
        // origin, the other 5 never seen resident. `before` never exceeds what is uncovered.
        m.grow(1, 3000 * P, 2 * P, 9);
        assert_eq!(
            m.release_as(1, 3000 * P, 10 * P, Resident::Known { before: 3 * P }),
            vec![(9, 2 * P)]
        );
        assert_eq!(m.counts().unmatched_release_bytes, 6 * P);
        assert_eq!(m.counts().unseen_release_bytes, 515 * P);
        m.release_as(1, 4000 * P, P, Resident::Known { before: 2 * P });
        assert_eq!(m.counts().unmatched_release_bytes, 7 * P);
        assert_eq!(m.counts().unseen_release_bytes, 515 * P);
    }

    #[test]
    fn covers_says_whether_spans_leave_no_gap() {
        let mut m = OriginMap::new(DEFAULT_MAX_SPANS);
        m.grow(1, 10 * P, 4 * P, 1);
        m.grow(1, 14 * P, 2 * P, 2);
        m.grow(1, 20 * P, P, 1);
        // Two owners back to back leave no gap.
        assert!(m.covers(1, 10 * P, 16 * P));
        assert!(m.covers(1, 11 * P, 15 * P));
        assert!(!m.covers(1, 9 * P, 12 * P));
        assert!(!m.covers(1, 15 * P, 21 * P));
        assert!(m.covers(1, 20 * P, 21 * P));
        assert!(!m.covers(2, 10 * P, 11 * P));
        assert!(m.covers(2, 10 * P, 10 * P), "an empty range is covered");
    }

    #[test]
    fn adjacent_growth_of_one_owner_is_one_span() {
        let mut m = OriginMap::new(DEFAULT_MAX_SPANS);
        for i in 0..512 {
            m.grow(1, (1000 + i) * P, P, 3);
        }
        assert_eq!(m.counts().spans, 1);
        assert_eq!(m.counts().tracked_bytes, 512 * P);
        m.grow(1, 2000 * P, P, OUTSIDE);
        assert_eq!(m.counts().spans, 2);
        // Processes are separate address spaces.
        assert_eq!(m.release(2, 1000 * P, P), vec![]);
        assert_eq!(m.counts().tracked_bytes, 513 * P);
    }

    #[test]
    fn remap_moves_owners_and_a_shrink_releases_the_tail() {
        let mut m = OriginMap::new(DEFAULT_MAX_SPANS);
        m.grow(1, 0, 4 * P, 5);
        m.grow(1, 4 * P, 4 * P, 6);
        // Move 8 pages to 100..106, shrinking to 6: the last 2 pages (owner 6) are released.
        assert_eq!(m.remap(1, (0, 8 * P), (100 * P, 6 * P)), vec![(6, 2 * P)]);
        assert_eq!(
            m.release(1, 0, 8 * P),
            vec![],
            "nothing left at the old address"
        );
        assert_eq!(m.release(1, 100 * P, 6 * P), vec![(5, 4 * P), (6, 2 * P)]);
        assert_eq!(m.counts().tracked_bytes, 0);
        assert_eq!(m.counts().spans, 0);
    }

    #[test]
    fn the_span_bound_counts_what_it_cannot_track() {
        let mut m = OriginMap::new(2);
        m.grow(1, 0, P, 1);
        m.grow(1, 10 * P, P, 2);
        assert_eq!(m.grow(1, 20 * P, 3 * P, 3), 0);
        assert_eq!(m.counts().untracked_bytes, 3 * P);
        // Growth that coalesces into an existing span needs no new one... but the bound is
        // checked before insertion, so it is counted too: the bound is a hard ceiling.
        assert_eq!(m.counts().spans, 2);
    }
}
