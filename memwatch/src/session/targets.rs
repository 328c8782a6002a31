//! Processes becoming targets: their process row, the pages resident as tracing begins, and
//! their heaps followed at once or deferred until they serve; without eBPF, new descendants
//! found in /proc.

use std::time::{Duration, Instant};

use super::Session;
use crate::{
    capture::procfs,
    model::{ProcessOrigin, ProcessRow, Row},
};

/// Without the socket hooks (`--no-net`), nothing tells which process serves requests: a
/// new process (a fork, an exec, a descendant found at attach holding no socket) has its heap
/// followed once it has lived this long. With them, from its first request: attaching and detaching the heap
/// probes costs tens of milliseconds of kernel work per probe (and disturbs every process
/// that maps glibc), which a helper that serves nothing is not worth, and a target with a
/// hundred such children would take a minute to stop.
const HEAP_DEFER: Duration = Duration::from_millis(500);

/// The most address space, in pages, whose resident pages are read from a process's pagemap as
/// it becomes a target (16 GiB of 4 KiB pages: 32 MiB of pagemap read, a few tens of ms).
/// Reservations that can hold no page (`---p`) do not count.
const MAX_RESIDENT_SCAN_PAGES: u64 = 1 << 22;

impl Session {
    pub(super) fn add_process(&mut self, pid: u32, origin: ProcessOrigin) {
        let info = procfs::info(pid);
        if let Some(end) = procfs::heap_end(pid) {
            self.mem.known_break(pid, end);
        }
        self.rows.push(Row::Process(ProcessRow {
            pid,
            ppid: info.as_ref().map(|i| i.ppid),
            comm: info.as_ref().map(|i| i.comm.clone()).unwrap_or_default(),
            cmdline: info.as_ref().and_then(|i| i.cmdline.clone()),
            started_ns: info.as_ref().and_then(|i| i.started_ns),
            origin,
        }));
        self.alive.insert(pid);
        self.seen.insert(pid);
        // The process named (or started) is followed at once, and so are its descendants that
        // hold a socket (a prefork server's workers); the others once they serve.
        // The collector's probes first: a Go program whose own sampled heap they follow needs
        // no span probes.
        if let Some(probe) = self.probe.as_mut() {
            self.gc.follow(probe, pid);
        }
        if origin == ProcessOrigin::Descendant && !procfs::holds_socket(pid) {
            self.defer_heap(pid);
        } else {
            self.follow_heap(pid);
        }
        // A command memwatch starts is traced from its exec on: it has nothing resident from
        // before (what the held child has now is a copy of memwatch, gone at the exec).
        if self.probe.is_some() && self.spawned != Some(pid) {
            self.read_resident_before(pid);
        }
    }

    /// Which pages of `pid` are resident as it becomes a target, so that a release of memory
    /// memwatch did not see made resident is told apart: resident before (of unknown origin)
    /// or never resident (see [`Correlator::resident_before`](crate::correlate::Correlator::resident_before)). Without them, such releases of
    /// the process all count as of unknown origin, an upper bound; said in the log.
    fn read_resident_before(&mut self, pid: u32) {
        let started = Instant::now();
        let ranges = procfs::resident_ranges(pid, MAX_RESIDENT_SCAN_PAGES);
        tracing::debug!(
            pid,
            ranges = ranges.as_ref().map(Vec::len),
            bytes = ranges
                .as_ref()
                .map(|r| r.iter().map(|(a, b)| b - a).sum::<u64>()),
            elapsed = ?started.elapsed(),
            "pages resident as tracing began"
        );
        let known = ranges.is_some_and(|ranges| self.correlator.resident_before(pid, &ranges));
        if !known {
            tracing::info!(
                pid,
                "its resident pages could not be read as tracing began: its releases of pages \
                 memwatch did not see made resident all count as of unknown origin"
            );
        }
    }

    /// Attaches the allocator probes to `pid` (unless `--no-heap`). A process whose heap
    /// cannot be followed is still recorded; why is logged and it is counted.
    pub(super) fn follow_heap(&mut self, pid: u32) {
        let (Some(heap), Some(probe)) = (self.heap.as_mut(), self.probe.as_mut()) else {
            return;
        };
        match probe.follow_heap(pid, self.gc.samples.samples(pid)) {
            Ok(()) => {
                heap.placed(probe);
                heap.following(pid);
            }
            Err(e) => {
                heap.counts.not_followed += 1;
                if procfs::alive(pid) {
                    tracing::warn!("{:#}", anyhow::Error::from(e));
                } else {
                    // It exited while its probes were being placed (a short-lived child of a
                    // followed process): nothing the user can mend, so not a warning.
                    tracing::debug!(
                        pid,
                        error = format!("{:#}", anyhow::Error::from(e)),
                        "process exited before its heap could be followed"
                    );
                }
            }
        }
    }

    /// `pid` is gone, or exec'd into a new image: its allocator probes and blocks go.
    pub(super) fn forget_heap(&mut self, pid: u32) {
        if let (Some(heap), Some(probe)) = (self.heap.as_mut(), self.probe.as_mut()) {
            probe.forget_heap(pid);
            heap.forget(pid);
        }
    }

    /// A process whose heap is to be followed once it serves a request (or, without the
    /// socket hooks, once it has lived [`HEAP_DEFER`]).
    pub(super) fn defer_heap(&mut self, pid: u32) {
        if self.heap.is_some() {
            self.heap_deferred.insert(pid, Instant::now());
        }
    }

    /// Without the socket hooks: follows the heaps of deferred processes that have lived long
    /// enough.
    pub(super) fn follow_deferred_heaps(&mut self) {
        if self.options.net || self.heap_deferred.is_empty() {
            return;
        }
        let due: Vec<u32> = self
            .heap_deferred
            .iter()
            .filter(|(_, since)| since.elapsed() >= HEAP_DEFER)
            .map(|(&pid, _)| pid)
            .collect();
        for pid in due {
            self.heap_deferred.remove(&pid);
            if self.alive.contains(&pid) {
                self.follow_heap(pid);
            }
        }
    }

    /// Without eBPF nothing reports forks: new descendants are picked up from /proc.
    pub(super) fn adopt_descendants(&mut self) {
        let alive: Vec<u32> = self.alive.iter().copied().collect();
        for pid in procfs::with_descendants(&alive) {
            if !self.alive.contains(&pid) && pid != std::process::id() {
                self.add_process(pid, ProcessOrigin::Descendant);
            }
        }
    }
}
