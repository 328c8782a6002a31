//! `memwatch report`: what a recording says. [`Report`] serialises as the report JSON
//! (documented in `docs/recording.md`, "Report JSON"); [`super::format`] renders it as text.
//!
//! The model and its building live here; each part of it has a file of its own: the memory
//! syscalls and samples (`memory.rs`), the routes (`endpoints.rs`), their rank and how each
//! retains memory (`rank.rs`), what each further request keeps (`trend.rs`), the
//! reconciliation of retained memory with the resident set (`retained.rs`) and how the heap
//! was followed (`heap.rs`).

use std::collections::BTreeMap;

use serde::Serialize;

pub use crate::recording::query::{
    Lost, Process,
    memory::{SizeBucket, ThreadStats},
};
pub use crate::views::regression::{
    kept_from::KeptFrom,
    over_recording::{RouteEstimate, Summary as RegressionSummary},
};
use crate::{
    error::RecordingError,
    model::meta,
    recording::{Recording, query::Range},
    units::NS_PER_SEC,
    views::call_sites::CallSiteReport,
};

mod endpoints;
mod heap;
mod memory;
mod rank;
mod retained;
mod sampled_heap;
#[cfg(test)]
mod tests;
mod trend;

pub use endpoints::{EXACT_LIMIT, Endpoint, Sampled, endpoints, percentile};
pub use heap::{GoSamples, HeapFollowing, HeapSampling};
pub use memory::Memory;
pub(crate) use rank::rank;
pub use rank::{MIN_REQUESTS_TO_JUDGE, Retention, judged};
pub use retained::RetainedSummary;
pub use sampled_heap::{SampledHeapEstimate, SampledHeapRange};

/// Gives each route of a sampling Go program its sampled figure as its kept per request (see
/// `sampled_heap::apply`).
pub fn apply_sampled_heap(
    rec: &Recording,
    range: Range,
    endpoints: &mut [Endpoint],
) -> Result<Option<SampledHeapRange>, RecordingError> {
    sampled_heap::apply(rec, range, endpoints, page_size(rec)?)
}

/// `meta.redact_query`: whether the recording dropped query strings; `None` when it does not say.
pub fn redact_query(rec: &Recording) -> Result<Option<bool>, RecordingError> {
    Ok(rec.meta(meta::REDACT_QUERY)?.map(|v| v == "true"))
}

/// How many entries size and thread lists keep.
const TOP: usize = 20;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub memwatch_version: String,
    pub schema_version: i64,
    /// False when memwatch did not finish the recording (killed, crashed): the figures cover
    /// what was committed.
    pub complete: bool,
    /// Why recording stopped (`meta.stop_reason`): `signal`, `duration`, `targetsexited`,
    /// `disk_full` or `write_failed`; None when memwatch was killed before it could say.
    pub stop_reason: Option<String>,
    /// Rows captured but not written because writing failed (`disk_full`, `write_failed`).
    pub unwritten_rows: u64,
    pub started_ns: i64,
    pub ended_ns: i64,
    pub duration_s: f64,
    /// Whether query strings were dropped before anything was stored (`--redact-query`); when
    /// false, request targets are stored whole, tokens in query strings included. `None` for
    /// a recording made before memwatch said.
    pub redact_query: Option<bool>,
    /// The traced processes, those that served the most requests first.
    pub processes: Vec<ServedProcess>,
    /// Ring-buffer events the kernel side could not deliver. Non-zero means the counts below
    /// are lower bounds.
    pub dropped_events: u64,
    pub lost: Lost,
    /// Ring-buffer records read.
    pub events: u64,
    pub memory: Memory,
    pub per_process: Vec<ProcessMemory>,
    /// Threads with the most page faults.
    pub threads: Vec<ThreadStats>,
    /// Completed HTTP requests.
    pub requests: u64,
    /// Traffic that was not HTTP/1.x, by kind.
    pub non_http: BTreeMap<String, u64>,
    /// Requests whose memory could only be charged approximately (event-loop servers).
    pub approximate_requests: u64,
    /// Memory events on traced threads outside any request.
    pub unattributed: Unattributed,
    pub endpoints: Vec<Endpoint>,
    /// Retained memory and its reconciliation with the resident set; absent in recordings
    /// before schema 3.
    pub retained: Option<RetainedSummary>,
    /// When memwatch stopped the command it started (Ctrl-C or `--duration` on `record --
    /// CMD`): the routes' figures and `retained` are taken then, since the memory its exit
    /// frees afterwards is no route's release. `None` otherwise: they cover the whole recording.
    pub command_stopped_ns: Option<i64>,
    /// Present when the recording followed access logs.
    pub access_log: Option<AccessLog>,
    /// Each route's call sites, with `report --stacks` only (see [`Report::with_call_sites`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stacks: Option<CallSiteReport>,
    /// What recording cost memwatch itself and what its state came to; `None` for a recording
    /// cut off before it closed, or made by an older memwatch.
    pub memwatch: Option<OwnState>,
}

/// A traced process and the requests it served: the report lists the servers before the
/// shims, shells and helpers a command started on the way to them.
#[derive(Debug, Clone, Serialize)]
pub struct ServedProcess {
    #[serde(flatten)]
    pub process: Process,
    /// Completed requests it served.
    pub requests: u64,
}

/// memwatch's own figures, written when the recording closed. Fields in alphabetical order:
/// the API's keys are sorted.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OwnState {
    /// With `--bpf-stats`: each of memwatch's BPF programs, its runs and run time, the costliest
    /// first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bpf_programs: Vec<crate::model::ProgramStats>,
    /// Connections of exited processes removed from the kernel side's map.
    pub conns_swept: u64,
    /// memwatch's CPU time by stage and what the ring buffer carried; absent in recordings
    /// made before memwatch measured them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<OwnCpu>,
    /// Each kernel map's entries when the recording closed (`targets`, `thread_faults`,
    /// `pending_mem`, `conns`, `heap_pending`, `heap_live`, `rss_seen`); empty without eBPF.
    pub kernel_map_entries: BTreeMap<String, u64>,
    /// The most connections, requests in flight, completed requests still holding memory, and
    /// traced threads that memwatch followed at once.
    pub peak_conns: u64,
    pub peak_requests: u64,
    pub peak_retaining: u64,
    /// memwatch's peak resident set.
    pub peak_rss_bytes: u64,
    pub peak_threads: u64,
    /// PIDs given to a new process after an earlier traced one holding them exited: their
    /// per-process figures cover both processes (requests and memory origins do not mix).
    pub pids_reused: u64,
    /// Rows the recording writer shed because its queue stayed full.
    pub writer_shed_rows: u64,
}

/// memwatch's CPU time by stage (µs) over the whole recording, and the ring buffer's traffic.
/// Fields in alphabetical order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OwnCpu {
    /// Handing each decoded event on: the correlator, the heap budget, the rows.
    pub correlate_us: u64,
    /// Reading and decoding the ring buffer.
    pub decode_us: u64,
    /// Handing rows to the writer thread.
    pub flush_us: u64,
    /// Bytes of ring-buffer records read.
    pub ring_bytes: u64,
    /// Drains of the ring buffer, and how many the kernel side woke (the rest came on the 50 ms
    /// tick).
    pub ring_drains: u64,
    pub ring_wakeups: u64,
    /// memwatch's whole CPU time, every thread (stacks, the page, /proc samples included).
    pub total_us: u64,
    /// The writer thread: inserts and commits.
    pub write_us: u64,
}

impl OwnCpu {
    fn read(rec: &Recording) -> Q<Option<Self>> {
        if rec.meta(meta::CPU_DECODE_US)?.is_none() {
            return Ok(None);
        }
        let num = |key: &str| meta_num(rec, key);
        Ok(Some(Self {
            correlate_us: num(meta::CPU_CORRELATE_US)?,
            decode_us: num(meta::CPU_DECODE_US)?,
            flush_us: num(meta::CPU_FLUSH_US)?,
            ring_bytes: num(meta::RING_BYTES)?,
            ring_drains: num(meta::RING_DRAINS)?,
            ring_wakeups: num(meta::RING_WAKEUPS)?,
            total_us: num(meta::CPU_TOTAL_US)?,
            write_us: num(meta::CPU_WRITE_US)?,
        }))
    }
}

impl OwnState {
    pub fn read(rec: &Recording) -> Q<Option<Self>> {
        if rec.meta(meta::PEAK_CONNS)?.is_none() {
            return Ok(None);
        }
        let num = |key: &str| meta_num(rec, key);
        let kernel_map_entries = rec
            .meta(meta::KERNEL_MAP_ENTRIES)?
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|pair| {
                let (name, n) = pair.split_once('=')?;
                Some((name.to_owned(), n.parse().ok()?))
            })
            .collect();
        Ok(Some(Self {
            peak_rss_bytes: num(meta::PEAK_RSS_BYTES)?,
            peak_conns: num(meta::PEAK_CONNS)?,
            peak_threads: num(meta::PEAK_THREADS)?,
            peak_requests: num(meta::PEAK_REQUESTS)?,
            peak_retaining: num(meta::PEAK_RETAINING)?,
            conns_swept: num(meta::CONNS_SWEPT)?,
            writer_shed_rows: num(meta::WRITER_SHED_ROWS)?,
            pids_reused: num(meta::PIDS_REUSED)?,
            kernel_map_entries,
            cpu: OwnCpu::read(rec)?,
            bpf_programs: rec
                .meta(meta::BPF_PROGRAMS)?
                .map(|v| crate::model::ProgramStats::decode(&v))
                .unwrap_or_default(),
        }))
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct AccessLog {
    pub sources: Vec<String>,
    /// The format of each source, in order (`unknown` if no line arrived to detect it).
    pub format: Vec<String>,
    /// `joined` (lines matched to captured requests) or `interval` (`--no-ebpf`: lines are the
    /// requests, charged their interval's growth).
    pub mode: String,
    pub lines: u64,
    pub parsed: u64,
    pub rejected: BTreeMap<String, u64>,
    /// Parsed lines whose request field is not a valid HTTP request (scanners' garbage).
    pub invalid_requests: u64,
    pub matched: u64,
    pub unmatched_lines: u64,
    pub unmatched_requests: u64,
    /// The first rejected lines, as text (at most 5, each at most 4 KiB).
    pub rejected_examples: Vec<String>,
    /// Rejected lines left out of `rejected_examples` because their text did not decode (they
    /// are logged). Not in the report JSON, whose fields are documented; the API's summary
    /// counts them in its `undecodable_rows`.
    #[serde(skip)]
    pub undecodable_examples: u64,
}

impl AccessLog {
    /// The access-log figures, or `None` when the recording followed no log.
    pub fn read(rec: &Recording) -> Q<Option<Self>> {
        let Some(settings) = rec.access_log_settings()? else {
            return Ok(None);
        };
        let counts = rec.log_line_counts()?;
        let examples = rec.rejected_examples(5)?;
        Ok(Some(Self {
            sources: settings.sources,
            format: settings
                .formats
                .into_iter()
                .map(|f| f.unwrap_or_else(|| "unknown".into()))
                .collect(),
            mode: if settings.ebpf { "joined" } else { "interval" }.into(),
            lines: counts.lines,
            parsed: counts.parsed,
            rejected: rec.rejected_reasons()?,
            invalid_requests: counts.invalid_requests,
            matched: counts.matched,
            unmatched_lines: counts.unmatched_lines,
            // With --no-ebpf every request came from a line.
            unmatched_requests: if settings.ebpf {
                rec.requests_without_log_line()?
            } else {
                0
            },
            rejected_examples: examples.rows,
            undecodable_examples: examples.undecodable,
        }))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ProcessMemory {
    pub pid: u32,
    pub comm: String,
    pub memory: Memory,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Unattributed {
    pub mem_calls: u64,
    pub vm_bytes: i64,
    /// Page faults of traced threads not charged to any request.
    pub page_faults: u64,
}

/// A numeric meta value, 0 when absent or not a number.
fn meta_num(rec: &Recording, key: &str) -> Q<u64> {
    Ok(rec.meta(key)?.and_then(|v| v.parse().ok()).unwrap_or(0))
}

/// A fractional meta value; `None` when absent.
fn meta_f64(rec: &Recording, key: &str) -> Q<Option<f64>> {
    Ok(rec.meta(key)?.and_then(|v| v.parse().ok()))
}

type Q<T> = Result<T, RecordingError>;

// The views add up figures read from a recording, and a corrupted file may hold any value in
// any column: sums saturate rather than overflow, and counts read as signed become 0 when
// negative (`units::count`). A wrong figure for a corrupt file beats a panic, and debug builds
// (and the fuzz target) keep overflow checks for every other sum.

/// The recording's page size (4096 when it does not say).
fn page_size(rec: &Recording) -> Q<i64> {
    Ok(rec
        .meta(meta::PAGE_SIZE)?
        .and_then(|v| v.parse().ok())
        .filter(|&p: &i64| p > 0)
        .unwrap_or(4096))
}

impl Report {
    /// Builds the whole report from a recording.
    pub fn build(rec: &Recording) -> Q<Self> {
        let span = rec.span()?;
        let started_ns = span.started_ns;
        let complete = span.ended_ns.is_some();
        // A recording cut off mid-way ends at its last committed row.
        let ended_ns = match span.ended_ns {
            Some(e) => e,
            None => rec.latest_ns()?.max(started_ns),
        };
        let counters = rec.counters()?;
        let mut totals = Memory::read(rec, false)?.remove(&None).unwrap_or_default();
        totals.madvise_released_bytes = rec
            .meta_i64(meta::MADVISE_RELEASED_BYTES)?
            .map(crate::units::count);
        let mut by_process = Memory::read(rec, true)?;
        let unattributed_faults = totals.page_faults.saturating_sub(rec.request_faults()?);
        let processes = rec.processes()?;
        let mut per_process = Vec::with_capacity(processes.len());
        for p in &processes {
            per_process.push(ProcessMemory {
                pid: p.pid,
                comm: p.comm.clone(),
                memory: by_process.remove(&Some(p.pid)).unwrap_or_default(),
            });
        }
        let served = rec.requests_by_process()?;
        let mut processes: Vec<ServedProcess> = processes
            .into_iter()
            .map(|process| ServedProcess {
                requests: served.get(&process.pid).copied().unwrap_or(0),
                process,
            })
            .collect();
        // Stable: processes that served as many keep the order they started in.
        processes.sort_by_key(|p| std::cmp::Reverse(p.requests));
        let unattributed = rec.unattributed_mem()?;
        // memwatch stopped the command it started: the routes' figures are those of that
        // moment, before the exit freed everything.
        let command_stopped_ns = rec.command_stopped_ns()?;
        let range = rec.figures_range(Range::default())?;
        let mut endpoints = endpoints(rec, range)?;
        let retained = RetainedSummary::read(rec, range, &mut endpoints)?;
        Ok(Self {
            memwatch_version: rec.meta(meta::MEMWATCH_VERSION)?.unwrap_or_default(),
            schema_version: rec.schema_version(),
            complete,
            stop_reason: rec.meta(meta::STOP_REASON)?,
            unwritten_rows: rec
                .meta_i64(meta::UNWRITTEN_ROWS)?
                .map_or(0, |n| n.max(0) as u64),
            started_ns,
            ended_ns,
            duration_s: ended_ns.saturating_sub(started_ns).max(0) as f64 / NS_PER_SEC as f64,
            redact_query: redact_query(rec)?,
            processes,
            dropped_events: counters.lost.dropped_events,
            lost: counters.lost,
            events: counters.events,
            memory: totals,
            per_process,
            threads: rec.threads_by_faults(TOP)?,
            requests: rec.request_count()?,
            non_http: rec.non_http_counts()?,
            approximate_requests: rec.approximate_request_count()?,
            unattributed: Unattributed {
                mem_calls: unattributed.mem_calls,
                vm_bytes: unattributed.vm_bytes,
                page_faults: unattributed_faults,
            },
            retained,
            command_stopped_ns,
            endpoints,
            access_log: AccessLog::read(rec)?,
            stacks: None,
            memwatch: OwnState::read(rec)?,
        })
    }

    /// The report with each route's call sites (at most `top` per route), as `report --stacks`
    /// shows them; a recording without call sites says so.
    pub fn with_call_sites(mut self, rec: &Recording, top: usize) -> Q<Self> {
        self.stacks = Some(CallSiteReport::read(rec, &self.endpoints, top)?);
        Ok(self)
    }
}
