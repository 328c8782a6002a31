//! /proc samples of every live target (and the followed heaps' live bytes), and the counters
//! written each second: threads' faults, the kernel's losses, the heap budget's progress.

use std::collections::HashMap;

use super::{Session, heap, wall_ns};
use crate::{
    capture::{
        probe::{Probe, loader::KernelCounters},
        procfs, spawn,
    },
    correlate::interval::IntervalAttributor,
    model::{CountersRow, Row},
};

impl Session {
    /// Page faults per live traced thread (none without eBPF).
    pub(super) fn thread_faults(&self) -> Vec<(u32, u32, u64)> {
        self.probe
            .as_ref()
            .map_or_else(Vec::new, Probe::thread_faults)
    }

    /// One /proc sample of every live target; returns the total RSS.
    pub(super) fn sample(&mut self, thread_faults: &[(u32, u32, u64)]) -> u64 {
        self.peaks = self.peaks.max(self.correlator.state_sizes());
        let ts_ns = wall_ns();
        let mut total_vm = 0;
        let mut live: HashMap<u32, u64> = HashMap::new();
        for &(_, tgid, faults) in thread_faults {
            *live.entry(tgid).or_default() += faults;
        }
        let mut total = 0;
        let pids: Vec<u32> = self.alive.iter().copied().collect();
        for pid in pids {
            if let Some(code) = self.spawned.filter(|&s| s == pid).and_then(spawn::try_reap) {
                self.rows.push(Row::ProcessExit {
                    pid,
                    ts_ns,
                    exit_code: Some(code),
                });
            }
            match procfs::memory(pid) {
                Some((rss, vm)) if rss > 0 || vm > 0 => {
                    total += rss;
                    total_vm += vm;
                    let faults = self.exited_faults.get(&pid).copied().unwrap_or(0)
                        + live.get(&pid).copied().unwrap_or(0);
                    self.rows.push(Row::Sample {
                        ts_ns,
                        pid,
                        rss_bytes: rss,
                        vm_bytes: vm,
                        faults,
                    });
                }
                _ => {
                    // Gone (or a zombie: no memory left) without an exit event reaching us: stop waiting for it.
                    tracing::debug!(pid, "process gone from /proc");
                    self.rows.push(Row::ProcessExit {
                        pid,
                        ts_ns,
                        exit_code: None,
                    });
                    self.alive.remove(&pid);
                }
            }
        }
        if let Some(interval) = self.interval.as_mut() {
            interval.sample(total, total_vm, &mut self.rows);
        }
        // The followed heap, a retained signal for the regression where a runtime reports no
        // collections of its own: as it had settled a while ago (what requests built and
        // dropped since is not in it), and only where the probes saw every block change hands
        // since. Timed by the last event handled, not now: requests are timed by the kernel's
        // clock, and one that ended in events not yet read is not in the sum yet either.
        let heap_ts_ns = self.wall(self.last_event_mono);
        if let Some(heap) = self
            .heap
            .as_mut()
            .filter(|h| h.attached() && heap_ts_ns > 0)
        {
            let at = heap_ts_ns - heap::SETTLE_AFTER_NS;
            for (pid, bytes) in heap.settled_bytes(at) {
                if self.alive.contains(&pid) && self.gc.heap_is_signal(pid) {
                    self.rows.push(Row::LiveHeap {
                        ts_ns: at,
                        pid,
                        bytes,
                        source: "heap",
                    });
                }
            }
        }
        total
    }

    /// Requests seen so far, by whichever mode is recording them.
    pub(super) fn requests(&self) -> u64 {
        self.interval
            .as_ref()
            .map_or_else(|| self.correlator.requests(), IntervalAttributor::requests)
    }

    pub(super) fn write_counters(&mut self, thread_faults: &[(u32, u32, u64)]) {
        let origin = self.correlator.origin_counts();
        tracing::debug!(?origin, "origin map");
        for &(tid, pid, faults) in thread_faults {
            self.rows.push(Row::Thread {
                tid,
                pid,
                faults,
                exited_ns: None,
            });
        }
        self.counters = self
            .probe
            .as_ref()
            .map_or_else(KernelCounters::default, Probe::counters);
        let KernelCounters {
            dropped_events,
            unpaired_exits,
            map_full,
            // Written with the other stack counts when the recording closes.
            stacks_lost: _,
        } = self.counters;
        self.rows.push(Row::Counters(CountersRow {
            ts_ns: wall_ns(),
            events: self.events,
            dropped: dropped_events,
            unpaired_exits,
            map_full,
            undecodable: self.undecodable,
            untracked_bytes: origin.untracked_bytes,
            unmatched_release_bytes: origin.unmatched_release_bytes,
            unseen_release_bytes: origin.unseen_release_bytes,
        }));
        // The heap budget's figures so far, for /metrics and the page while recording.
        if let Some(heap) = &self.heap {
            self.rows.extend(heap.progress());
        }
    }
}
