//! The session's side of collected runtimes' reports ([`crate::capture::probe::gc`]): which
//! processes have them, and each collection's live heap as a row.

use std::collections::{HashMap, HashSet};

use memwatch_common::gc::{GcEvent, GcOp};

use super::{go_samples::GoSamples, heap::HeapFollow};
use crate::{
    capture::probe::{
        Probe,
        gc::{GcRuntime, JvmPools},
    },
    correlate::Correlator,
    model::Row,
};

/// The source of a Go process's rows of what each cycle kept of its followed spans (beside
/// `go`, the live heap its runtime reports).
const GO_KEPT: &str = "go_kept";

/// The collected runtimes followed, and their reports in progress.
#[derive(Debug, Default)]
pub(super) struct GcFollow {
    pools: JvmPools,
    runtimes: HashMap<u32, GcRuntime>,
    /// Processes whose garbage waits for a collector memwatch does not hook (Node.js, Ruby):
    /// their followed heap is no retained signal.
    collects_unseen: HashSet<u32>,
    /// Processes looked at again at their first request (a JVM maps `libjvm.so` only after
    /// its launcher starts, so a command memwatch starts has none at its exec).
    looked_again: HashSet<u32>,
    /// Per Ruby or Go process, when its last marking began: the stamp of the figure the next
    /// one gives (what that collection kept).
    marked: HashMap<u32, i64>,
    /// Hits on the collector probes (`meta::GC_EVENTS`).
    pub(super) events: u64,
    /// Go's sampled heap, where a Go program samples its allocations.
    pub(super) samples: GoSamples,
    /// Live-heap figures recorded (`meta::GC_REPORTS`).
    pub(super) reports: u64,
    /// Processes with a collected runtime memwatch knows whose probes could not be attached
    /// (`meta::GC_NOT_FOLLOWED`).
    pub(super) not_followed: u64,
}

impl GcFollow {
    /// Attaches `pid`'s runtime probes if it has a collected runtime memwatch knows. A failure
    /// is said once and the process is recorded all the same.
    pub(super) fn follow(&mut self, probe: &mut Probe, pid: u32) {
        if crate::capture::probe::gc::collects_unseen(pid) {
            self.collects_unseen.insert(pid);
        }
        match probe.follow_gc(pid) {
            Ok(Some(found)) => {
                tracing::info!(
                    pid,
                    runtime = found.runtime.name(),
                    sample_rate = found.sample_rate,
                    "following the live heap this runtime reports after each collection"
                );
                if let Some(rate) = found.sample_rate {
                    self.samples.follow(pid, rate);
                }
                self.runtimes.insert(pid, found.runtime);
            }
            Ok(None) => {}
            Err(e) => {
                self.not_followed += 1;
                tracing::warn!("{:#}", anyhow::Error::from(e));
            }
        }
    }

    /// Whether `pid`'s followed heap is a retained signal of its own: not where its runtime
    /// reports its collections (that is the signal), nor where garbage waits for a collector
    /// memwatch does not hook.
    pub(super) fn heap_is_signal(&self, pid: u32) -> bool {
        !self.runtimes.contains_key(&pid) && !self.collects_unseen.contains(&pid)
    }

    /// `pid` served a request: looked at once more if it had no runtime memwatch knew.
    pub(super) fn serving(&mut self, probe: &mut Probe, pid: u32) {
        if !self.runtimes.contains_key(&pid) && self.looked_again.insert(pid) {
            self.follow(probe, pid);
        }
    }

    /// `pid` is gone or exec'd.
    pub(super) fn forget(&mut self, probe: &mut Probe, pid: u32) {
        probe.forget_gc(pid);
        self.pools.forget(pid);
        self.runtimes.remove(&pid);
        self.collects_unseen.remove(&pid);
        self.looked_again.remove(&pid);
        self.marked.remove(&pid);
        self.samples.forget(pid);
    }

    /// One report, stamped `ts_ns` (wall): a collection's live heap becomes a row. `heap` is
    /// the followed heap while the probes see every block change hands (`None` otherwise):
    /// what a Ruby process still holds of the blocks it had when its last marking began, and
    /// likewise what a Node.js process still holds of the blocks it had when V8 last swept its
    /// dead buffers. Go's sampled allocations are charged to the request `correlator` says
    /// their thread serves.
    pub(super) fn event(
        &mut self,
        ts_ns: i64,
        e: &GcEvent,
        heap: Option<&mut HeapFollow>,
        correlator: &Correlator,
        rows: &mut Vec<Row>,
    ) {
        // Sampled allocations are counted apart (`GoSamples::counts`): `events` counts the
        // collector's own hits.
        match GcOp::from_u32(e.op) {
            Some(GcOp::GoSample) => return self.samples.sampled(ts_ns, e, correlator, rows),
            Some(GcOp::GoSampleFree) => return self.samples.freed(ts_ns, e, rows),
            _ => {}
        }
        self.events += 1;
        let pid = e.header.tgid;
        let live = match GcOp::from_u32(e.op) {
            Some(GcOp::GoSample | GcOp::GoSampleFree) => None,
            Some(GcOp::GoLive) => Some((e.bytes, GcRuntime::Go)),
            // A Go program whose sampled heap is followed has no span probes: what its spans
            // kept is no figure there.
            Some(GcOp::GoMark) if self.samples.samples(pid) => None,
            // Node.js: what was held when V8 last swept its dead buffers and still is now. Read
            // at one sweep alone, the figure held the buffers of requests in flight then (the
            // churn's 2 MiB, freed by the next sweep): the fit on it explained 0.62 to 0.79 at
            // -c8 with async handlers, and 0.55 to 0.68 at the maximum rate; on what the next
            // sweep found still held, 0.96 and 1.0.
            Some(op @ (GcOp::RubyMark | GcOp::GoMark | GcOp::NodeSwept)) => {
                // The last collection's figure, stamped when its marking (or sweep) began.
                // With the probes off now, no epoch begins, and the next gives none either.
                let Some(heap) = heap else {
                    self.marked.remove(&pid);
                    return;
                };
                let kept = heap.next_marking(pid);
                if let (Some(marked_ns), Some(bytes)) = (self.marked.insert(pid, ts_ns), kept) {
                    self.reports += 1;
                    rows.push(Row::LiveHeap {
                        ts_ns: marked_ns,
                        pid,
                        bytes,
                        source: if op == GcOp::GoMark {
                            GO_KEPT
                        } else if op == GcOp::NodeSwept {
                            GcRuntime::Node.name()
                        } else {
                            GcRuntime::Ruby.name()
                        },
                    });
                }
                None
            }
            Some(GcOp::JvmPool | GcOp::JvmEnd) => {
                self.pools.report(pid, e).map(|b| (b, GcRuntime::Jvm))
            }
            None => None,
        };
        if let Some((bytes, runtime)) = live {
            self.reports += 1;
            rows.push(Row::LiveHeap {
                ts_ns,
                pid,
                bytes,
                source: runtime.name(),
            });
        }
    }
}
