//! Resident accounting: memory made resident charged to the request (and call site) its
//! thread serves, or to the outside-requests row; releases, remaps, heap blocks changing hands
//! and exits credited back to whoever made the pages resident ([`origin`](super::origin)); the
//! pages resident before tracing began told apart from pages never seen.

use super::{
    Charge, Correlator, HeapBlock, ReqId,
    origin::{self, Between, OUTSIDE, OriginCounts, Resident},
};
use crate::model::{ReleaseRow, Row};

impl Correlator {
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

    /// `[start, start + len)` of `pid` was released (munmap, madvise, a brk shrink) by a
    /// syscall that began at `began_ns` and returned at `ts_ns`. Called before the same
    /// syscall's effect on the address space ([`Correlator::vm`]), which an unmapping would
    /// remove. Returns the resident bytes known to be released: pages seen made resident, and
    /// pages resident before memwatch began to trace the process.
    pub fn release(
        &mut self,
        ts_ns: i64,
        began_ns: i64,
        pid: u32,
        start: u64,
        len: u64,
        out: &mut Vec<Row>,
    ) -> u64 {
        let resident = self.resident(pid, start, len);
        let when = Between {
            began: began_ns,
            ended: ts_ns,
        };
        self.origin.note_release(pid, when, start, len, resident);
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

    /// mremap, begun at `began_ns` and returned at `ts_ns`, moved or resized
    /// `[old, old + old_len)` to `[new, new + new_len)`.
    pub fn remap(
        &mut self,
        ts_ns: i64,
        began_ns: i64,
        pid: u32,
        (old, old_len): (u64, u64),
        (new, new_len): (u64, u64),
        out: &mut Vec<Row>,
    ) {
        // A shrink releases the tail; a move or a growth releases nothing.
        let resident = if new_len < old_len {
            let (tail, tail_len) = (old.saturating_add(new_len), old_len - new_len);
            let resident = self.resident(pid, tail, tail_len);
            let when = Between {
                began: began_ns,
                ended: ts_ns,
            };
            self.origin
                .note_release(pid, when, tail, tail_len, resident);
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
}
