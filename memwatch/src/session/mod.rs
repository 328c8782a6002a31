//! One recording: preflight, load, attach ([`start`]), then one loop that drains the ring
//! buffer, samples /proc, follows the access logs and feeds the correlator and the writer until a
//! stop condition ([`Session::run`]). Capture → correlation → recording, nothing further down the
//! flow: the commands put a page or a report on top.
//!
//! [`Session`] is defined here; its methods live with their job: `attach.rs` (checks, load,
//! attach, the recording created), `targets.rs` (processes becoming targets, their heaps
//! followed), `dispatch.rs` (each kernel event handed on), `run.rs` (the loop, drains and
//! flushes, the stop), `sample.rs` (/proc samples and counters), `access_logs.rs`, `meta.rs`
//! (what the recording says about the run), `own_cost.rs` (what memwatch's work costs, by
//! stage) and `clock.rs`.

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    sync::Arc,
    time::Instant,
};

mod access_logs;
mod attach;
mod clock;
mod dispatch;
mod gc;
mod go_samples;
mod heap;
mod meta;
mod options;
mod own_cost;
mod run;
mod sample;
mod signals;
mod targets;
#[cfg(test)]
mod tests;

pub use access_logs::check_access_logs;
pub use attach::start;
pub(crate) use clock::wall_ns;
pub use options::{Hooks, RecordOptions};
pub use run::Stop;
pub use signals::StopSignals;

use crate::{
    capture::{
        log_source::LogSource,
        probe::{Probe, event::Records, loader::KernelCounters},
        stacks::Stacks,
    },
    correlate::{
        Correlator, StateSizes, interval::IntervalAttributor, join::Joiner, mem::MemAccounting,
        route::Router,
    },
    model::Row,
    recording::Writer,
};

/// One recording under way: everything the loop mutates. Made by [`start`].
pub struct Session {
    /// `None` with `--no-ebpf`.
    probe: Option<Probe>,
    writer: Writer,
    correlator: Correlator,
    /// Wall ns = monotonic ns + offset.
    offset: i64,
    alive: HashSet<u32>,
    spawned: Option<u32>,
    /// Memory-syscall accounting (brk tracking, vm deltas).
    mem: MemAccounting,
    /// Page faults of threads that have exited, per process.
    exited_faults: HashMap<u32, u64>,
    events: u64,
    /// Records copied out of the ring in a drain's current batch, each decoded as it is handed
    /// to `on_event` (the buffer is kept between drains).
    pending: Records,
    /// Records that could not be decoded.
    undecodable: u64,
    rows: Vec<Row>,
    counters: KernelCounters,
    /// Access logs being followed, and whether each one's format is in the recording yet.
    logs: Vec<(LogSource, bool)>,
    joiner: Joiner,
    /// `--no-ebpf`: growth per sampling interval shared among log lines.
    interval: Option<IntervalAttributor>,
    router: Router,
    redact_query: bool,
    /// The recording being written.
    output: PathBuf,
    /// Notified to stop recording (`memwatch ci`).
    stop: Option<Arc<tokio::sync::Notify>>,
    options: RecordOptions,
    /// The heaps followed (unless `--no-heap` or `--no-ebpf`), within their budget.
    heap: Option<heap::HeapFollow>,
    /// Processes whose heap is not followed yet (they have served no request), and since when
    /// (see [`targets::HEAP_DEFER`]).
    heap_deferred: HashMap<u32, Instant>,
    /// `--stacks`: interns and names the kernel's stacks.
    stacks: Option<Stacks>,
    /// Stacks taken at a memory syscall's return, per thread, for the syscall's row that follows.
    syscall_stacks: HashMap<u32, u32>,
    /// Processes gone since the last drain, whose kernel-side connections are to be swept.
    gone: HashSet<u32>,
    /// Kernel-side connections swept because their process had gone.
    conns_swept: u64,
    /// The largest the correlator's state has been (read at each sample).
    peaks: StateSizes,
    /// Ctrl-C and SIGTERM, listened for since before the attach; the event loop takes them.
    signals: Option<StopSignals>,
    /// Every PID traced so far, and how many were given to a new process after their own
    /// exited: the recording keeps one process row per PID, so such a row covers both.
    seen: HashSet<u32>,
    pids_reused: u64,
    /// Resident bytes madvise gave back (`meta::MADVISE_RELEASED_BYTES`).
    madvise_released_bytes: u64,
    /// Collected runtimes' live-heap reports.
    gc: gc::GcFollow,
    /// The kernel's stamp of the last event handled (monotonic ns): what the followed heap
    /// reflects, which may lag the clock by what the ring buffer still holds.
    last_event_mono: u64,
    /// What memwatch's own work costs, by stage.
    own: own_cost::OwnCost,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("output", &self.output)
            .field("ebpf", &self.probe.is_some())
            .field("alive", &self.alive)
            .field("spawned", &self.spawned)
            .field("events", &self.events)
            .field("counters", &self.counters)
            .field("pending_rows", &self.rows.len())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// The recording being written.
    pub fn output(&self) -> &Path {
        &self.output
    }
}
