//! Memory-syscall accounting: turns a paired mmap/munmap/mremap/brk/mprotect event into a row
//! with its effect on the virtual size. Failed calls (a return in the errno range, or a brk that
//! did not move the break) change nothing. brk growth is measured against the last known break of
//! each process, which a fork inherits and an exec forgets. Pure logic.

use std::collections::HashMap;

use memwatch_common::mem::{MemEvent, MemOp};

use super::vm_origin::VmEffect;
use crate::model::MemRow;

/// What a memory syscall did to resident memory, for origin tracking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResidentEffect {
    /// Nothing resident changed (mprotect, a plain mmap, a failed call).
    None,
    /// `[start, start + len)` is no longer resident: munmap, a brk shrink, an mmap with
    /// MAP_FIXED over existing pages.
    Release { start: u64, len: u64 },
    /// mremap: the pages of `old` now live at `new`; a shrink released the tail.
    Remap { old: (u64, u64), new: (u64, u64) },
}

/// `MAP_FIXED`: the new mapping replaces whatever was mapped there.
const MAP_FIXED: u64 = 0x10;
/// madvise advice that gives pages back: they stop being resident (FREE: lazily, when the
/// kernel needs them; counted as released at the call, as the process has no further use).
const MADV_DONTNEED: u64 = 4;
const MADV_FREE: u64 = 8;
const MADV_REMOVE: u64 = 9;

/// Per-process state the accounting needs between events.
#[derive(Debug)]
pub struct MemAccounting {
    /// Last known program break per process, to measure brk growth.
    brk: HashMap<u32, u64>,
    /// The target's page size: lengths are rounded up to it, as the kernel does.
    page_size: u64,
}

impl MemAccounting {
    pub fn new(page_size: u64) -> Self {
        Self {
            brk: HashMap::new(),
            page_size: page_size.max(1),
        }
    }

    /// A process whose break was read from /proc when it was first seen.
    pub fn known_break(&mut self, pid: u32, end: u64) {
        self.brk.insert(pid, end);
    }

    /// A forked child starts with its parent's break.
    pub fn fork(&mut self, parent: u32, child: u32) {
        if let Some(&b) = self.brk.get(&parent) {
            self.brk.insert(child, b);
        }
    }

    /// The process is gone: its break goes with it (a PID given again must not start from it).
    pub fn exit(&mut self, pid: u32) {
        self.brk.remove(&pid);
    }

    /// Processes whose break is known (the map returns to empty as they exit).
    pub fn known_breaks(&self) -> usize {
        self.brk.len()
    }

    /// An exec gives the process a new heap, whose break is learnt from its next brk.
    pub fn exec(&mut self, pid: u32) {
        self.brk.remove(&pid);
    }

    /// The row for one memory syscall alone.
    #[cfg(test)]
    fn row(&mut self, ts_ns: i64, m: &MemEvent) -> Option<MemRow> {
        self.account(ts_ns, m).map(|(row, _, _)| row)
    }

    /// The row for one memory syscall (`ts_ns` already on the wall clock) and what it did to
    /// resident memory and to the address space; None for an operation this memwatch does not
    /// know.
    pub fn account(
        &mut self,
        ts_ns: i64,
        m: &MemEvent,
    ) -> Option<(MemRow, ResidentEffect, VmEffect)> {
        let pid = m.header.tgid;
        let a = m.args;
        let op = MemOp::from_u32(a.op)?;
        let page_size = self.page_size;
        let page = |n: u64| n.div_ceil(page_size).saturating_mul(page_size) as i64;
        let is_err = (-4095..0).contains(&m.ret);
        let len = page(a.len) as u64;
        // An mmap that replaces whatever was mapped there.
        let fixed = op == MemOp::Mmap && a.flags & MAP_FIXED != 0;
        let (ok, delta, effect) = match op {
            MemOp::Mmap => {
                let effect = if fixed {
                    ResidentEffect::Release {
                        start: m.ret as u64,
                        len,
                    }
                } else {
                    ResidentEffect::None
                };
                (!is_err, page(a.len), effect)
            }
            MemOp::Munmap => (
                m.ret == 0,
                -page(a.len),
                ResidentEffect::Release { start: a.addr, len },
            ),
            MemOp::Mremap => (
                !is_err,
                page(a.new_len) - page(a.len),
                ResidentEffect::Remap {
                    old: (a.addr, len),
                    new: (m.ret as u64, page(a.new_len) as u64),
                },
            ),
            MemOp::Mprotect => (m.ret == 0, 0, ResidentEffect::None),
            MemOp::Madvise => {
                let effect = if matches!(a.flags, MADV_DONTNEED | MADV_FREE | MADV_REMOVE) {
                    ResidentEffect::Release { start: a.addr, len }
                } else {
                    ResidentEffect::None
                };
                (m.ret == 0, 0, effect)
            }
            MemOp::Brk => {
                // brk returns the new break, or the old one when it fails.
                let ok = a.addr == 0 || m.ret as u64 == a.addr;
                let new = m.ret as u64;
                let delta = self
                    .brk
                    .insert(pid, new)
                    .map_or(0, |old| new as i64 - old as i64);
                let effect = if delta < 0 {
                    ResidentEffect::Release {
                        start: new,
                        len: delta.unsigned_abs(),
                    }
                } else {
                    ResidentEffect::None
                };
                (ok, delta, effect)
            }
        };
        let effect = if ok { effect } else { ResidentEffect::None };
        let vm = match op {
            _ if !ok => VmEffect::None,
            MemOp::Mmap => VmEffect::Map {
                start: m.ret as u64,
                len,
                replaces: fixed,
            },
            MemOp::Munmap => VmEffect::Unmap { start: a.addr, len },
            MemOp::Mremap => VmEffect::Remap {
                old: (a.addr, len),
                new: (m.ret as u64, page(a.new_len) as u64),
            },
            MemOp::Brk if delta > 0 => VmEffect::Map {
                start: (m.ret as u64).saturating_sub(delta as u64),
                len: delta as u64,
                replaces: false,
            },
            MemOp::Brk if delta < 0 => VmEffect::Unmap {
                start: m.ret as u64,
                len: delta.unsigned_abs(),
            },
            MemOp::Brk | MemOp::Mprotect | MemOp::Madvise => VmEffect::None,
        };
        let row = MemRow {
            ts_ns,
            pid,
            tid: m.header.tid,
            op,
            addr: a.addr,
            len: a.len,
            new_len: a.new_len,
            prot: a.prot,
            flags: a.flags,
            fd: a.fd,
            ret: m.ret,
            ok,
            vm_delta: if ok { delta } else { 0 },
            request_id: None,
            stack: None,
        };
        Some((row, effect, vm))
    }
}

#[cfg(test)]
mod tests {
    use memwatch_common::{EventHeader, mem::MemArgs};

    use super::*;

    fn event(tgid: u32, op: MemOp, addr: u64, len: u64, new_len: u64, ret: i64) -> MemEvent {
        MemEvent {
            header: EventHeader {
                tgid,
                tid: tgid,
                ..EventHeader::default()
            },
            args: MemArgs {
                op: op as u32,
                addr,
                len,
                new_len,
                ..MemArgs::default()
            },
            ret,
        }
    }

    #[test]
    fn lengths_round_to_pages_and_failures_change_nothing() {
        let mut acc = MemAccounting::new(4096);
        let mmap = acc
            .row(1, &event(7, MemOp::Mmap, 0, 5000, 0, 0x7f00_0000))
            .unwrap();
        assert_eq!((mmap.op, mmap.ok, mmap.vm_delta), (MemOp::Mmap, true, 8192));
        let failed = acc.row(2, &event(7, MemOp::Mmap, 0, 4096, 0, -12)).unwrap();
        assert_eq!((failed.ok, failed.vm_delta), (false, 0));
        let unmap = acc
            .row(3, &event(7, MemOp::Munmap, 0x7f00_0000, 4096, 0, 0))
            .unwrap();
        assert_eq!(unmap.vm_delta, -4096);
        let grow = acc
            .row(4, &event(7, MemOp::Mremap, 1, 4096, 3 * 4096, 1))
            .unwrap();
        assert_eq!(grow.vm_delta, 2 * 4096);
        let mut big = MemAccounting::new(65536);
        let mmap = big.row(1, &event(7, MemOp::Mmap, 0, 5000, 0, 1)).unwrap();
        assert_eq!(mmap.vm_delta, 65536, "rounded to the target's page size");
    }

    #[test]
    fn brk_growth_follows_the_break_through_fork_and_exec() {
        let mut acc = MemAccounting::new(4096);
        acc.known_break(7, 0x1000);
        let grow = acc
            .row(1, &event(7, MemOp::Brk, 0x9000, 0, 0, 0x9000))
            .unwrap();
        assert_eq!((grow.ok, grow.vm_delta), (true, 0x8000));
        // A failed brk returns the old break.
        let failed = acc
            .row(2, &event(7, MemOp::Brk, 0xf000, 0, 0, 0x9000))
            .unwrap();
        assert_eq!((failed.ok, failed.vm_delta), (false, 0));
        acc.fork(7, 8);
        let child = acc
            .row(3, &event(8, MemOp::Brk, 0xa000, 0, 0, 0xa000))
            .unwrap();
        assert_eq!(child.vm_delta, 0x1000);
        acc.exec(8);
        let fresh = acc.row(4, &event(8, MemOp::Brk, 0, 0, 0, 0x5000)).unwrap();
        assert_eq!(
            fresh.vm_delta, 0,
            "after exec the first break is only learnt"
        );
    }

    #[test]
    fn releases_are_reported_for_origin_tracking() {
        let mut acc = MemAccounting::new(4096);
        let effect = |acc: &mut MemAccounting, e: MemEvent| acc.account(1, &e).unwrap().1;
        assert_eq!(
            effect(&mut acc, event(7, MemOp::Munmap, 0x7000, 5000, 0, 0)),
            ResidentEffect::Release {
                start: 0x7000,
                len: 8192
            }
        );
        assert_eq!(
            effect(&mut acc, event(7, MemOp::Munmap, 0x7000, 4096, 0, -22)),
            ResidentEffect::None,
            "a failed munmap released nothing"
        );
        assert_eq!(
            effect(
                &mut acc,
                event(7, MemOp::Mremap, 0x7000, 8192, 4096, 0x9000)
            ),
            ResidentEffect::Remap {
                old: (0x7000, 8192),
                new: (0x9000, 4096)
            }
        );
        acc.known_break(7, 0x20000);
        assert_eq!(
            effect(&mut acc, event(7, MemOp::Brk, 0x18000, 0, 0, 0x18000)),
            ResidentEffect::Release {
                start: 0x18000,
                len: 0x8000
            }
        );
        assert_eq!(
            effect(&mut acc, event(7, MemOp::Brk, 0x30000, 0, 0, 0x30000)),
            ResidentEffect::None,
            "growth makes nothing resident until touched"
        );
        let mut fixed = event(7, MemOp::Mmap, 0x5000, 4096, 0, 0x5000);
        fixed.args.flags = MAP_FIXED | 0x22;
        assert_eq!(
            effect(&mut acc, fixed),
            ResidentEffect::Release {
                start: 0x5000,
                len: 4096
            }
        );
    }
}
