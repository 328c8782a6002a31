//! Where address space came from: the virtual-memory counterpart of the resident origin. Each
//! range a traced process maps (mmap, brk growth, mremap growth) is kept with the request whose
//! thread mapped it, or the outside row; when it is unmapped later (munmap, a brk shrink,
//! mremap, MAP_FIXED over it, exit or exec), by whatever thread, the request that mapped it is
//! credited back. A request's own unmapping of what it mapped nets out before it ends.
//!
//! Same bounded [`OriginMap`] as resident memory: ranges mapped before memwatch attached are of
//! no known origin, and unmapping them is counted, not credited.

use super::{
    Correlator, InFlight, ReqId, Retained,
    origin::{Credits, OUTSIDE, Resident},
};
use crate::model::{Row, VmOriginRow};

/// What a memory syscall did to the address space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmEffect {
    /// Nothing mapped or unmapped (mprotect, madvise, a failed call).
    None,
    /// `[start, start + len)` was mapped. With `replaces` (MAP_FIXED) whatever was mapped there
    /// is gone; without it, the kernel chose a range where nothing was.
    Map {
        start: u64,
        len: u64,
        replaces: bool,
    },
    /// `[start, start + len)` was unmapped.
    Unmap { start: u64, len: u64 },
    /// mremap: `old` now lives at `new`; growth is new address space, a shrink unmaps the tail.
    Remap { old: (u64, u64), new: (u64, u64) },
}

impl Correlator {
    /// Applies a memory syscall's effect on the address space, made on thread `tid` by a call
    /// that began at `began_ns` and returned at `ts_ns`.
    pub fn vm(
        &mut self,
        ts_ns: i64,
        began_ns: i64,
        pid: u32,
        tid: u32,
        effect: VmEffect,
        out: &mut Vec<Row>,
    ) {
        match effect {
            VmEffect::None => {}
            VmEffect::Map {
                start,
                len,
                replaces,
            } => {
                // A range the kernel chose was free: what the map still holds there is a stale
                // span (an unmapping that returned after this mapping was made), credited back,
                // and its other bytes were never mapped, not address space of unknown origin.
                let credits = if replaces {
                    self.vm_origin.release(pid, start, len)
                } else {
                    self.vm_origin
                        .release_as(pid, start, len, Resident::Known { before: 0 })
                };
                self.vm_credit(ts_ns, credits, out);
                self.vm_map(pid, tid, start, len);
                self.vm_origin.note_mapped(pid, ts_ns, start, len);
            }
            VmEffect::Unmap { start, len } => {
                let credits = self.vm_origin.release_since(pid, began_ns, start, len);
                self.vm_credit(ts_ns, credits, out);
            }
            VmEffect::Remap {
                old: (old, old_len),
                new: (new, new_len),
            } => {
                let credits = self.vm_origin.remap(pid, (old, old_len), (new, new_len));
                self.vm_credit(ts_ns, credits, out);
                if new_len > old_len {
                    self.vm_map(pid, tid, new.saturating_add(old_len), new_len - old_len);
                }
            }
        }
    }

    fn vm_map(&mut self, pid: u32, tid: u32, start: u64, len: u64) {
        let serving = self.serving(tid);
        let added = self
            .vm_origin
            .grow(pid, start, len, serving.unwrap_or(OUTSIDE));
        if let Some(req) = serving.and_then(|id| self.inflight.get_mut(&id)) {
            req.vm_grown += added;
        }
    }

    /// Credits unmapped ranges back to the requests that mapped them.
    pub(super) fn vm_credit(&mut self, ts_ns: i64, credits: Credits, out: &mut Vec<Row>) {
        for (owner, bytes) in credits {
            if owner == OUTSIDE {
                continue;
            }
            if let Some(req) = self.inflight.get_mut(&owner) {
                req.vm_released += bytes;
            } else if let Some(r) = self.vm_retained.get_mut(&owner) {
                r.held = r.held.saturating_sub(bytes);
                out.push(Row::VmOrigin(Box::new(VmOriginRow {
                    ts_ns,
                    req_end_ns: r.end_ns,
                    method: r.method.clone(),
                    route: r.route.clone(),
                    grown: 0,
                    released: bytes,
                })));
                if r.held == 0 {
                    self.vm_retained.remove(&owner);
                }
            }
        }
    }

    /// A request ended: what it mapped and still holds is written, and kept for later credits.
    pub(super) fn vm_finish(&mut self, id: ReqId, req: &InFlight, out: &mut Vec<Row>) {
        let held = req.vm_grown.saturating_sub(req.vm_released);
        if held == 0 {
            return;
        }
        let r = Retained {
            end_ns: req.row.end_ns,
            method: req.row.method.clone(),
            route: req.row.route.clone(),
            held,
        };
        out.push(Row::VmOrigin(Box::new(VmOriginRow {
            ts_ns: r.end_ns,
            req_end_ns: r.end_ns,
            method: r.method.clone(),
            route: r.route.clone(),
            grown: held,
            released: 0,
        })));
        self.vm_retained.insert(id, r);
    }

    /// Unmapping of address space of no known origin (mapped before memwatch attached), bytes.
    pub fn vm_unmatched_release_bytes(&self) -> u64 {
        self.vm_origin.counts().unmatched_release_bytes
    }

    /// Spans the origin maps hold now: resident memory, address space, and the pages resident
    /// before tracing began.
    pub fn origin_spans(&self) -> u64 {
        self.origin.counts().spans + self.vm_origin.counts().spans + self.before.counts().spans
    }
}
