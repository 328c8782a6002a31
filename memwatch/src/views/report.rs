//! `memwatch report`: what a recording says. [`Report`] serialises as the report JSON
//! (documented in `docs/recording.md`, "Report JSON"); [`super::format`] renders it as text.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

pub use crate::recording::query::{
    Lost, Process,
    memory::{SizeBucket, ThreadStats},
};
pub use crate::views::regression::over_recording::{RouteEstimate, Summary as RegressionSummary};
use crate::{
    error::RecordingError,
    model::meta,
    recording::{
        Recording,
        query::{
            Range,
            memory::OpTotals,
            requests::{RequestFigures, RollupGroup, rollup_seconds},
            retained::{LaterRelease, RetainedSecond},
        },
    },
    units::{NS_PER_SEC, count, signed},
    views::call_sites::CallSiteReport,
};

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
    /// Connections of exited processes removed from the kernel side's map.
    pub conns_swept: u64,
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

#[derive(Debug, Clone, Default, Serialize)]
pub struct Memory {
    pub mmap_calls: u64,
    pub mmap_bytes: u64,
    pub mmap_anon_bytes: u64,
    pub munmap_calls: u64,
    pub munmap_bytes: u64,
    pub mremap_calls: u64,
    pub mremap_growth_bytes: i64,
    pub brk_calls: u64,
    pub brk_growth_bytes: i64,
    pub mprotect_calls: u64,
    /// Bytes made writable by mprotect: how glibc grows thread arenas.
    pub mprotect_rw_bytes: u64,
    /// madvise calls (any advice) and the bytes they named: how Go's scavenger and many
    /// allocators give memory back.
    pub madvise_calls: u64,
    pub madvise_bytes: u64,
    /// Of the pages they named, those resident that madvise gave back (DONTNEED, FREE,
    /// REMOVE): what the calls did to the resident set. Whole recording, all processes only;
    /// `None` per process and in recordings made before memwatch counted it.
    pub madvise_released_bytes: Option<u64>,
    /// Calls that returned an error: reported, never counted as growth.
    pub failed_calls: u64,
    /// Net change of mapped bytes from all of the above.
    pub vm_growth_bytes: i64,
    pub page_faults: u64,
    pub rss_samples: u64,
    pub rss_start_bytes: u64,
    pub rss_end_bytes: u64,
    pub rss_peak_bytes: u64,
    pub vm_start_bytes: u64,
    pub vm_end_bytes: u64,
    pub vm_peak_bytes: u64,
    /// Successful calls grouped by syscall and size (for brk and mremap: the signed change),
    /// largest total first.
    pub calls_by_size: Vec<SizeBucket>,
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

#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    pub method: String,
    pub route: String,
    pub requests: u64,
    pub statuses: BTreeMap<String, u64>,
    pub vm_bytes: i64,
    pub rss_bytes: i64,
    pub page_faults: u64,
    pub mem_calls: u64,
    pub approximate: u64,
    pub vm_bytes_mean: i64,
    pub rss_bytes_mean: i64,
    pub vm_bytes_per_request_p50: i64,
    pub vm_bytes_per_request_p95: i64,
    pub rss_bytes_per_request_p50: i64,
    pub rss_bytes_per_request_p95: i64,
    pub duration_ms_p50: f64,
    pub duration_ms_p95: f64,
    /// Bytes these requests made resident (each page once). 0 in recordings before schema 3.
    pub grown_bytes: i64,
    /// Of those, released by the end of the range: by the requests themselves or later, by
    /// whatever thread.
    pub released_bytes: i64,
    /// Still held at the end of the range: `grown_bytes - released_bytes`.
    pub retained_bytes: i64,
    /// The slope of retained memory against the route's request count: what each further
    /// request keeps. A leak keeps a steady amount per request; a high-water mark does not.
    pub kept_per_request_bytes: i64,
    /// How the route retains memory: see [`Retention`].
    pub retention: Retention,
    /// Address space these requests mapped and still held when they ended (null before
    /// schema 4).
    pub vm_mapped_bytes: Option<i64>,
    /// Of that, unmapped by the end of the range, by whatever thread: credited back.
    pub vm_released_bytes: Option<i64>,
    /// Still mapped at the end of the range.
    pub vm_retained_bytes: Option<i64>,
    /// Sampled figures: present when the heap probes' budget left some of this route's
    /// requests unfollowed. Its memory figures, kept per request included, then rest on the
    /// followed requests alone.
    pub sampled: Option<Sampled>,
    /// The second estimate of kept per request, by regression of the resident set on the
    /// routes' request counts (`regression.rs`); `None` when the range is too short to fit, or
    /// the route is not among those fitted.
    pub regression: Option<RouteEstimate>,
    /// Which estimate `kept_per_request_bytes` (and the rank and `retention` that follow from
    /// it) comes from: `origin` (the memory each request made resident and what became of it)
    /// or `regression` (on a JVM, whose objects neither page faults nor the heap probes see
    /// one by one: the live heap after each collection against the routes' request counts).
    pub kept_from: &'static str,
}

/// How a route retains memory ([`Endpoint::retention`]), spelt in the report JSON, the API and
/// a profile as its serde name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Retention {
    /// `keeps`: retained memory grows with the request count, a leak.
    Keeps,
    /// `high-water`: memory retained once and reused.
    HighWater,
    /// `none`: at most a page per request.
    None,
    /// `too-few`: it holds memory, but has too few requests to tell which of the above.
    TooFew,
    /// `unknown`: a recording without retained figures (before schema 3, or `--no-ebpf`), or a
    /// version 1 profile.
    #[default]
    Unknown,
}

impl Retention {
    /// The name the JSON and the text give it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Keeps => "keeps",
            Self::HighWater => "high-water",
            Self::None => "none",
            Self::TooFew => "too-few",
            Self::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for Retention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How much of a route the heap probes followed, and how far its kept-per-request figure can
/// be off for that.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Sampled {
    /// Requests the heap probes followed (of the route's `requests`).
    pub followed_requests: u64,
    /// The 95% interval of kept per request (Sen's interval of the Theil–Sen slope over the
    /// followed requests); `None` with fewer than 3 steps to judge from. (Keys in alphabetical
    /// order, as the API sends them.)
    pub kept_per_request_high_bytes: Option<i64>,
    pub kept_per_request_low_bytes: Option<i64>,
}

/// Retained memory over a range, and how it reconciles with the resident set.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RetainedSummary {
    /// What the figures above account for: retained + outside grown - outside released -
    /// released from before.
    pub attributed_change_bytes: i64,
    /// Made resident by requests that ended in the range.
    pub grown_bytes: i64,
    /// Whether heap blocks were followed as they changed hands (`record --heap`).
    pub heap: HeapFollowing,
    /// Spans the origin maps held when the recording closed (resident pages and address space;
    /// about 64 bytes of memwatch's memory each). 0 when not written (an older or killed
    /// recording).
    pub origin_spans: u64,
    /// Made resident while no request was served (startup, background threads, collectors).
    pub outside_grown_bytes: i64,
    /// Released in the range, of memory made outside any request.
    pub outside_released_bytes: i64,
    /// The regression estimate's fit over the range: its intervals, the routes it cannot tell
    /// apart, and where it disagrees with the origin figures; `None` when too short to fit.
    pub regression: Option<RegressionSummary>,
    /// Of that, released by the end of the range.
    pub released_bytes: i64,
    /// Released in the range, of memory made by requests that ended before it.
    pub released_from_before_bytes: i64,
    /// Of that, still held: the routes' retained memory summed.
    pub retained_bytes: i64,
    /// The change of the resident set over the range (/proc samples).
    pub rss_change_bytes: i64,
    /// `rss_change_bytes - attributed_change_bytes`: growth memwatch did not see made by a user
    /// fault (kernel-populated pages, huge pages counted as one page, file pages) and sampling
    /// lag.
    pub unexplained_bytes: i64,
    /// Releases of unknown origin, whole recording: released pages resident before memwatch
    /// began to trace the process (its pagemap, read then), or perhaps resident where nothing is
    /// known of them (a child forked while recording: an upper bound). Memory given back that no
    /// request or startup memwatch saw owns. Before schema 6 it also holds
    /// `unseen_release_bytes`.
    pub unmatched_release_bytes: i64,
    /// Released bytes memwatch never saw resident (untouched parts of thread stacks,
    /// reservations), whole recording: not memory given back. `None` before schema 6.
    pub unseen_release_bytes: Option<i64>,
    /// Resident growth origin tracking could not keep (its bound), whole recording.
    pub untracked_bytes: i64,
    /// Address space unmapped that was mapped before memwatch attached (no known origin),
    /// whole recording.
    pub vm_unmatched_release_bytes: i64,
}

/// Whether the recording followed the targets' heap allocators, within what budget, and what
/// that could not cover.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HeapFollowing {
    /// Heap blocks (glibc) and spans (Go) handed out or given back, whole recording.
    pub blocks: u64,
    /// The share of one core the heap probes were allowed (`--heap-budget`); `None` in
    /// recordings made before the budget.
    pub budget_share: Option<f64>,
    /// What the probes cost the targets, as a share of one core over the recording (estimated
    /// from their hits and what a hit costs, measured at start).
    pub cost_share: Option<f64>,
    pub followed: bool,
    /// What the figures cannot see, and what to do; absent when nothing is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<&'static str>,
    /// The share of the recording the probes were attached (1: throughout, exact).
    pub on_fraction: Option<f64>,
    /// Traced processes whose allocator could not be followed (musl, another static binary).
    pub processes_not_followed: u64,
    /// Present when the budget had the probes off part of the time: the figures are sampled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampling: Option<HeapSampling>,
}

/// How the heap was sampled when following every call would have cost more than the budget.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HeapSampling {
    /// Followed blocks found given back while the probes were off (their glibc chunk header),
    /// and ones whose release was missed and found when a later followed block took their
    /// memory: both released to the allocator then.
    pub frees_found: u64,
    pub frees_overlapped: u64,
    /// Times the budget detached the probes.
    pub pauses: u64,
    /// Requests the probes followed (started while they were on), whole recording.
    pub requests_followed: u64,
    /// Requests they did not: their memory is in the outside-requests row.
    pub requests_sampled_out: u64,
}

/// Said when the heap was not followed.
const HEAP_NOT_FOLLOWED: &str = "heap reuse was not followed (--no-heap): memory a runtime frees \
     to its heap and hands to a later allocation stays with the request that first faulted it \
     in, so a route that reuses another's freed heap (Node.js, Go, threaded Python) can look like \
     it keeps nothing while the other looks like a leak. Record without --no-heap to follow \
     glibc's malloc and free and Go's spans";

/// Said when some processes' heaps could not be followed.
const HEAP_PARTLY: &str = "some processes' heap allocators could not be followed (no glibc and \
     no Go runtime memwatch knows): in those, heap reuse stays with the request that first \
     faulted the memory in; memwatch's log says which";

/// Said when the budget sampled the heap.
const HEAP_SAMPLED: &str = "the heap probes would have cost more than their budget, so they \
     followed the heap part of the time: requests that started while they were off are not \
     counted in kept per request (their memory is in the outside row), and each route's \
     sampled figures carry a 95% interval. A larger --heap-budget follows more";

/// A numeric meta value, 0 when absent or not a number.
fn meta_num(rec: &Recording, key: &str) -> Q<u64> {
    Ok(rec.meta(key)?.and_then(|v| v.parse().ok()).unwrap_or(0))
}

/// A fractional meta value; `None` when absent.
fn meta_f64(rec: &Recording, key: &str) -> Q<Option<f64>> {
    Ok(rec.meta(key)?.and_then(|v| v.parse().ok()))
}

impl HeapFollowing {
    fn read(rec: &Recording) -> Q<Self> {
        let num = |key: &str| meta_num(rec, key);
        let followed = rec.meta(meta::HEAP)?.as_deref() == Some("true");
        let processes_not_followed = num(meta::HEAP_NOT_FOLLOWED)?;
        let pauses = num(meta::HEAP_PAUSES)?;
        let sampling = if followed && pauses > 0 {
            let (requests, sampled_out) = rec.sampled_out_count()?;
            Some(HeapSampling {
                frees_found: num(meta::HEAP_FREES_FOUND)?,
                frees_overlapped: num(meta::HEAP_FREES_OVERLAPPED)?,
                pauses,
                requests_followed: requests.saturating_sub(sampled_out),
                requests_sampled_out: sampled_out,
            })
        } else {
            None
        };
        let note = if !followed {
            Some(HEAP_NOT_FOLLOWED)
        } else if processes_not_followed > 0 {
            Some(HEAP_PARTLY)
        } else if sampling.is_some() {
            Some(HEAP_SAMPLED)
        } else {
            None
        };
        Ok(Self {
            blocks: num(meta::HEAP_EVENTS)?,
            budget_share: meta_f64(rec, meta::HEAP_BUDGET)?,
            cost_share: meta_f64(rec, meta::HEAP_COST_SHARE)?,
            followed,
            note,
            on_fraction: meta_f64(rec, meta::HEAP_ON_FRACTION)?,
            processes_not_followed,
            sampling,
        })
    }
}

/// Nearest-rank percentile of a sorted slice.
pub fn percentile<T: Copy + Default>(sorted: &[T], p: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

type Q<T> = Result<T, RecordingError>;

// The views add up figures read from a recording, and a corrupted file may hold any value in
// any column: sums saturate rather than overflow, and counts read as signed become 0 when
// negative (`units::count`). A wrong figure for a corrupt file beats a panic, and debug builds
// (and the fuzz target) keep overflow checks for every other sum.

impl Memory {
    /// The memory figures of each process (`by_process`), or (key `None`) of all of them: one
    /// scan of each table, however many processes (a fork storm records thousands).
    fn read(rec: &Recording, by_process: bool) -> Q<HashMap<Option<u32>, Self>> {
        let mut all: HashMap<Option<u32>, Self> = HashMap::new();
        for (pid, totals) in rec.mem_op_totals(by_process)? {
            let m = all.entry(pid).or_default();
            let OpTotals {
                op,
                calls,
                failed,
                bytes,
                anon_bytes,
                vm_delta,
                writable_bytes,
            } = totals;
            m.failed_calls = m.failed_calls.saturating_add(failed);
            m.vm_growth_bytes = m.vm_growth_bytes.saturating_add(vm_delta);
            match op.as_str() {
                "mmap" => {
                    m.mmap_calls = calls;
                    m.mmap_bytes = bytes;
                    m.mmap_anon_bytes = anon_bytes;
                }
                "munmap" => {
                    m.munmap_calls = calls;
                    m.munmap_bytes = bytes;
                }
                "mremap" => {
                    m.mremap_calls = calls;
                    m.mremap_growth_bytes = vm_delta;
                }
                "brk" => {
                    m.brk_calls = calls;
                    m.brk_growth_bytes = vm_delta;
                }
                "mprotect" => {
                    m.mprotect_calls = calls;
                    m.mprotect_rw_bytes = writable_bytes;
                }
                "madvise" => {
                    m.madvise_calls = calls;
                    m.madvise_bytes = bytes;
                }
                other => tracing::warn!("unknown op {other:?} in recording"),
            }
        }
        for (pid, bucket) in rec.calls_by_size(by_process, TOP)? {
            all.entry(pid).or_default().calls_by_size.push(bucket);
        }
        for (pid, faults) in rec.thread_faults(by_process)? {
            all.entry(pid).or_default().page_faults = faults;
        }
        // Whole-target series: one point per sampling tick, summed over processes.
        for (pid, point) in rec.sample_totals(by_process)? {
            let m = all.entry(pid).or_default();
            let (rss, vm) = (point.rss_bytes, point.vm_bytes);
            if m.rss_samples == 0 {
                m.rss_start_bytes = rss;
                m.vm_start_bytes = vm;
            }
            m.rss_samples += 1;
            m.rss_end_bytes = rss;
            m.vm_end_bytes = vm;
            m.rss_peak_bytes = m.rss_peak_bytes.max(rss);
            m.vm_peak_bytes = m.vm_peak_bytes.max(vm);
        }
        Ok(all)
    }
}

/// Ranges with more requests than this are summed from the per-second rollup, and their
/// percentiles estimated from a sample of about this many requests.
pub const EXACT_LIMIT: i64 = 50_000;

/// One route's figures as they add up.
#[derive(Debug, Default)]
struct Acc {
    statuses: BTreeMap<String, u64>,
    n: u64,
    vm_sum: i64,
    rss_sum: i64,
    faults: u64,
    calls: u64,
    approximate: u64,
    /// Requests the heap probes did not follow.
    sampled_out: u64,
    /// Per-request values for percentiles: all of them, or a sample.
    vm: Vec<i64>,
    rss: Vec<i64>,
    dur_ns: Vec<i64>,
    /// Retained memory, request by request (exact path) or second by second (rollup path).
    retained: RouteRetained,
}

impl Acc {
    /// Adds another accumulator's totals (not its percentile values).
    fn add_totals(&mut self, other: Self) {
        let Self {
            statuses,
            n,
            vm_sum,
            rss_sum,
            faults,
            calls,
            approximate,
            sampled_out,
            vm: _,
            rss: _,
            dur_ns: _,
            // The edges' retained memory is in the rollup's whole seconds already.
            retained: _,
        } = other;
        for (status, count) in statuses {
            let c = self.statuses.entry(status).or_default();
            *c = c.saturating_add(count);
        }
        self.add(n, approximate, (vm_sum, rss_sum), faults, calls);
        self.sampled_out = self.sampled_out.saturating_add(sampled_out);
    }

    /// Adds `n` requests' totals. Saturating: the figures come from the file, and a corrupted
    /// one may hold any value.
    fn add(&mut self, n: u64, approximate: u64, (vm, rss): (i64, i64), faults: u64, calls: u64) {
        self.n = self.n.saturating_add(n);
        self.approximate = self.approximate.saturating_add(approximate);
        self.vm_sum = self.vm_sum.saturating_add(vm);
        self.rss_sum = self.rss_sum.saturating_add(rss);
        self.faults = self.faults.saturating_add(faults);
        self.calls = self.calls.saturating_add(calls);
    }
}

fn status_key(status: Option<i64>) -> String {
    status
        .filter(|s| *s >= 0)
        .map_or_else(|| "-".to_owned(), |s| s.to_string())
}

/// Adds the requests that ended in `[from, to]` (every `every`-th by id) to `groups`: to the
/// totals when `totals`, to the percentile values always, and with `later` (releases after each
/// request ended, by request id) to the retained memory.
fn add_rows(
    rec: &Recording,
    groups: &mut BTreeMap<(String, String), Acc>,
    (from, to): (i64, i64),
    every: i64,
    totals: bool,
    later: Option<&HashMap<i64, i64>>,
) -> Q<()> {
    rec.each_request_figures(from, to, every, |row| {
        let RequestFigures {
            method,
            route,
            status,
            vm_bytes,
            rss_bytes,
            faults,
            mem_calls,
            exact,
            duration_ns,
            id,
            end_ns,
            grown,
            released,
            sampled_out,
        } = row;
        let acc = groups.entry((method, route)).or_default();
        // A request the heap probes did not follow holds no memory of its own: it is no step of
        // the retained series.
        if let Some(later) = later
            && !sampled_out
        {
            let released = released.saturating_add(later.get(&id).copied().unwrap_or(0));
            let r = &mut acc.retained;
            r.grown = r.grown.saturating_add(grown);
            r.released = r.released.saturating_add(released);
            r.steps
                .insert((end_ns, id), (1, grown.saturating_sub(released)));
        }
        if totals {
            acc.sampled_out = acc.sampled_out.saturating_add(u64::from(sampled_out));
            let c = acc.statuses.entry(status_key(status)).or_default();
            *c = c.saturating_add(1);
            acc.add(
                1,
                u64::from(!exact),
                (vm_bytes, rss_bytes),
                count(faults),
                count(mem_calls),
            );
        }
        acc.vm.push(vm_bytes);
        acc.rss.push(rss_bytes);
        acc.dur_ns.push(duration_ns);
    })
}

/// Per-route figures for requests that ended in `range`, sorted by resident bytes.
///
/// Totals (requests, statuses, bytes, faults) are always exact. Up to [`EXACT_LIMIT`] requests,
/// percentiles are exact too; above it, whole seconds come from the per-second rollup, the
/// partial seconds at the edges from the rows, and percentiles from a sample of about
/// [`EXACT_LIMIT`] requests (every k-th by id).
pub fn endpoints(rec: &Recording, range: Range) -> Q<Vec<Endpoint>> {
    const S: i64 = NS_PER_SEC;
    let (from, to) = range.bounds();
    let (first_s, last_s) = rollup_seconds(from, to);
    let estimate = rec.rollup_request_count(first_s, last_s)?;
    let mut groups: BTreeMap<(String, String), Acc> = BTreeMap::new();
    let origin = rec.has_origin();
    if estimate <= EXACT_LIMIT {
        let later = if origin {
            Some(rec.later_releases_by_request(from, to, to)?)
        } else {
            None
        };
        add_rows(rec, &mut groups, (from, to), 1, true, later.as_ref())?;
    } else {
        // Whole seconds inside the range from the rollup...
        let inner = (first_s.saturating_add(1), last_s.saturating_sub(1));
        for group in rec.rollup_groups(inner.0, inner.1)? {
            let RollupGroup {
                method,
                route,
                status,
                requests,
                approximate,
                vm_bytes,
                rss_bytes,
                faults,
                mem_calls,
                sampled_out,
            } = group;
            let acc = groups.entry((method, route)).or_default();
            acc.sampled_out = acc.sampled_out.saturating_add(count(sampled_out));
            let c = acc.statuses.entry(status_key(Some(status))).or_default();
            *c = c.saturating_add(count(requests));
            acc.add(
                count(requests),
                count(approximate),
                (vm_bytes, rss_bytes),
                count(faults),
                count(mem_calls),
            );
        }
        // ...the partial seconds at both edges from the rows...
        let mut edges = BTreeMap::new();
        add_rows(
            rec,
            &mut edges,
            (from, inner.0.saturating_mul(S).saturating_sub(1).min(to)),
            1,
            true,
            None,
        )?;
        let tail_from = (inner.1.saturating_add(1).saturating_mul(S))
            .max(from)
            .max(inner.0.saturating_mul(S));
        add_rows(rec, &mut edges, (tail_from, to), 1, true, None)?;
        for (key, e) in edges {
            groups.entry(key).or_default().add_totals(e);
        }
        // ...and percentiles from a sample.
        add_rows(
            rec,
            &mut groups,
            (from, to),
            estimate / EXACT_LIMIT + 1,
            false,
            None,
        )?;
        if origin {
            retained_from_rollups(rec, &mut groups, (from, to))?;
        }
    }
    let page = if origin { page_size(rec)? } else { 0 };
    let mut out: Vec<Endpoint> = groups
        .into_iter()
        .filter(|(_, a)| a.n > 0)
        .map(|((method, route), mut a)| {
            let (vm_bytes, rss_bytes) = (a.vm_sum, a.rss_sum);
            a.vm.sort_unstable();
            a.rss.sort_unstable();
            a.dur_ns.sort_unstable();
            let r = &a.retained;
            let mut e = Endpoint {
                method,
                route,
                requests: a.n,
                statuses: a.statuses,
                vm_bytes,
                rss_bytes,
                page_faults: a.faults,
                mem_calls: a.calls,
                approximate: a.approximate,
                vm_bytes_mean: vm_bytes / signed(a.n).max(1),
                rss_bytes_mean: rss_bytes / signed(a.n).max(1),
                vm_bytes_per_request_p50: percentile(&a.vm, 50.0),
                vm_bytes_per_request_p95: percentile(&a.vm, 95.0),
                rss_bytes_per_request_p50: percentile(&a.rss, 50.0),
                rss_bytes_per_request_p95: percentile(&a.rss, 95.0),
                duration_ms_p50: percentile(&a.dur_ns, 50.0) as f64 / 1e6,
                duration_ms_p95: percentile(&a.dur_ns, 95.0) as f64 / 1e6,
                grown_bytes: r.grown,
                released_bytes: r.released,
                retained_bytes: r.grown.saturating_sub(r.released),
                kept_per_request_bytes: r.slope(),
                retention: Retention::Unknown,
                vm_mapped_bytes: None,
                vm_released_bytes: None,
                vm_retained_bytes: None,
                regression: None,
                kept_from: "origin",
                sampled: (a.sampled_out > 0).then(|| {
                    let (low, high) = r.slope_interval().unzip();
                    Sampled {
                        followed_requests: a.n.saturating_sub(a.sampled_out),
                        kept_per_request_low_bytes: low,
                        kept_per_request_high_bytes: high,
                    }
                }),
            };
            if origin {
                e.retention = retention(&e, page);
            }
            e
        })
        .collect();
    if rec.has_vm_origin() {
        let (from, to) = range.bounds();
        let vm: BTreeMap<(String, String), (i64, i64)> = rec
            .vm_retained(from, to)?
            .into_iter()
            .map(|v| ((v.method, v.route), (v.grown, v.released)))
            .collect();
        for e in &mut out {
            let (grown, released) = vm
                .get(&(e.method.clone(), e.route.clone()))
                .copied()
                .unwrap_or((0, 0));
            e.vm_mapped_bytes = Some(grown);
            e.vm_released_bytes = Some(released);
            e.vm_retained_bytes = Some(grown.saturating_sub(released));
        }
    }
    if origin {
        rank(&mut out);
    } else {
        out.sort_by(|a, b| {
            b.rss_bytes
                .cmp(&a.rss_bytes)
                .then(b.requests.cmp(&a.requests))
                .then(a.route.cmp(&b.route))
        });
    }
    Ok(out)
}

/// The share of the followed heap's variation a regression must explain for routes whose
/// requests shared a thread to take its figures. Fitted robustly, the followed heap of
/// Starlette under uvicorn at -c8 explains 0.75 to 0.8 (and is right within 5%). (A heap
/// whose garbage waits for a collector memwatch does not hook, Node.js's or Ruby's, is no
/// signal at all, and is not sampled: `capture::probe::gc::collects_unseen`.)
const SHARED_THREAD_EXPLAINED: f64 = 0.5;

/// Ranks routes by what they keep: per further request first, then in total; routes with
/// too few requests to judge after all the others.
fn rank(out: &mut [Endpoint]) {
    out.sort_by(|a, b| {
        judged(b)
            .cmp(&judged(a))
            .then(b.kept_per_request_bytes.cmp(&a.kept_per_request_bytes))
            .then(b.retained_bytes.cmp(&a.retained_bytes))
            .then(b.requests.cmp(&a.requests))
            .then(a.route.cmp(&b.route))
    });
}

/// Makes the regression the figure of each route `which` picks (all of a JVM's; those whose
/// requests mostly shared a thread: see [`Endpoint::kept_from`]), and ranks the routes again.
/// A route the regression did not fit keeps its origin figure. `keeps` needs the interval's
/// lower end above 0 where there is one; a regression cannot tell a high-water mark from
/// nothing, so the rest read `none`.
fn kept_from_regression(endpoints: &mut [Endpoint], page: i64, which: impl Fn(&Endpoint) -> bool) {
    for e in endpoints.iter_mut() {
        let Some(r) = e.regression.filter(|_| which(e)) else {
            continue;
        };
        e.kept_from = "regression";
        e.kept_per_request_bytes = r.kept_per_request_bytes;
        e.retention = if !judged(e) {
            Retention::TooFew
        } else if r.kept_per_request_bytes > page
            && r.kept_per_request_low_bytes.is_none_or(|lo| lo > 0)
        {
            Retention::Keeps
        } else {
            Retention::None
        };
    }
    rank(endpoints);
}

/// The recording's page size (4096 when it does not say).
fn page_size(rec: &Recording) -> Q<i64> {
    Ok(rec
        .meta(meta::PAGE_SIZE)?
        .and_then(|v| v.parse().ok())
        .filter(|&p: &i64| p > 0)
        .unwrap_or(4096))
}

/// One route's retained memory, request by request (or second by second in a large range).
#[derive(Debug, Default)]
struct RouteRetained {
    grown: i64,
    released: i64,
    /// (time, id) → (requests, retained): one step per request, or per second of requests'
    /// ends (id 0), in time order.
    steps: BTreeMap<(i64, i64), (i64, i64)>,
}

impl RouteRetained {
    /// The slope of cumulative retained bytes against cumulative requests, one point per step,
    /// estimated robustly (Theil–Sen: the median of the slopes between every pair of points);
    /// with fewer than three steps, the mean.
    ///
    /// Why robust: a runtime with a collector frees a churning route's garbage in bulk, late, and
    /// the last blocks may not be collected when the recording ends; a heap raises a high-water
    /// mark once. Both are steps in the series, and a least-squares line through a step at one
    /// end reads as memory kept per request. The median slope ignores a minority of such steps
    /// and follows what most stretches of the series do: grow with each request (a leak), or not.
    fn slope(&self) -> i64 {
        let n_total = self
            .steps
            .values()
            .fold(0i64, |sum, (n, _)| sum.saturating_add(*n));
        if n_total == 0 {
            return 0;
        }
        let mean = self
            .grown
            .saturating_sub(self.released)
            .saturating_div(n_total);
        if self.steps.len() < 3 {
            return mean;
        }
        theil_sen(&self.points()).unwrap_or(mean)
    }

    /// Cumulative (requests, retained) after each step, thinned to [`MAX_SLOPE_POINTS`].
    fn points(&self) -> Vec<(i64, i64)> {
        let (mut n, mut r) = (0i64, 0i64);
        let points: Vec<(i64, i64)> = self
            .steps
            .values()
            .map(|&(dn, dr)| {
                n = n.saturating_add(dn);
                r = r.saturating_add(dr);
                (n, r)
            })
            .collect();
        thin(&points, MAX_SLOPE_POINTS)
    }

    /// The 95% interval of [`RouteRetained::slope`]: Sen's distribution-free interval, the
    /// pairwise slopes at the ranks `(N ∓ C) / 2` with `C = 1.96 √(n(n−1)(2n+5)/18)`; `None`
    /// with fewer than 3 steps.
    fn slope_interval(&self) -> Option<(i64, i64)> {
        if self.steps.len() < 3 {
            return None;
        }
        sen_interval(&self.points())
    }
}

/// Sen's 95% interval of the Theil–Sen slope of `points`.
fn sen_interval(points: &[(i64, i64)]) -> Option<(i64, i64)> {
    let mut slopes = pairwise_slopes(points);
    if slopes.is_empty() {
        return None;
    }
    slopes.sort_unstable_by(f64::total_cmp);
    let n = points.len() as f64;
    let c = 1.96 * (n * (n - 1.0) * (2.0 * n + 5.0) / 18.0).sqrt();
    let total = slopes.len() as f64;
    let at = |rank: f64| {
        let i = (rank.round().max(1.0) as usize).min(slopes.len()) - 1;
        slopes[i].round() as i64
    };
    Some((at((total - c) / 2.0), at((total + c) / 2.0 + 1.0)))
}

/// The slopes between every pair of points with different x.
fn pairwise_slopes(points: &[(i64, i64)]) -> Vec<f64> {
    let mut slopes: Vec<f64> = Vec::with_capacity(points.len() * points.len() / 2);
    for (i, &(x1, y1)) in points.iter().enumerate() {
        for &(x2, y2) in &points[i + 1..] {
            if x2 != x1 {
                slopes.push(y2.saturating_sub(y1) as f64 / x2.saturating_sub(x1) as f64);
            }
        }
    }
    slopes
}

/// At most this many points go into a slope: the pairs grow with its square.
const MAX_SLOPE_POINTS: usize = 100;

/// Every `k`th point of `points` (and the last), so that at most `max` remain.
fn thin(points: &[(i64, i64)], max: usize) -> Vec<(i64, i64)> {
    if points.len() <= max {
        return points.to_vec();
    }
    let k = points.len().div_ceil(max);
    let mut out: Vec<(i64, i64)> = points.iter().step_by(k).copied().collect();
    if let Some(&last) = points.last()
        && out.last() != Some(&last)
    {
        out.push(last);
    }
    out
}

/// The median of the slopes between every pair of points with different x; None when there is
/// no such pair.
fn theil_sen(points: &[(i64, i64)]) -> Option<i64> {
    let mut slopes = pairwise_slopes(points);
    if slopes.is_empty() {
        return None;
    }
    let mid = slopes.len() / 2;
    let (_, m, _) = slopes.select_nth_unstable_by(mid, f64::total_cmp);
    let m = *m;
    let median = if slopes.len().is_multiple_of(2) {
        let lower = slopes[..mid].iter().copied().fold(f64::MIN, f64::max);
        (lower + m) / 2.0
    } else {
        m
    };
    Some(median.round() as i64)
}

/// Retained memory of the requests that ended in `[from, to]`, per route and second, from the
/// writer's per-second rollups (for ranges too large to read request by request); releases are
/// counted up to `to`, to the second.
fn retained_from_rollups(
    rec: &Recording,
    groups: &mut BTreeMap<(String, String), Acc>,
    (from, to): (i64, i64),
) -> Q<()> {
    const S: i64 = NS_PER_SEC;
    for s in rec.retained_seconds(from, to)? {
        let RetainedSecond {
            method,
            route,
            second,
            requests,
            grown,
            released_own,
        } = s;
        let r = &mut groups.entry((method, route)).or_default().retained;
        r.grown = r.grown.saturating_add(grown);
        r.released = r.released.saturating_add(released_own);
        let slot = r.steps.entry((second.saturating_mul(S), 0)).or_default();
        slot.0 = slot.0.saturating_add(requests);
        slot.1 = slot.1.saturating_add(grown.saturating_sub(released_own));
    }
    for l in rec.later_releases(from, to)? {
        let LaterRelease {
            method,
            route,
            req_second,
            bytes,
        } = l;
        let r = &mut groups.entry((method, route)).or_default().retained;
        r.released = r.released.saturating_add(bytes);
        let slot = r
            .steps
            .entry((req_second.saturating_mul(S), 0))
            .or_default();
        slot.1 = slot.1.saturating_sub(bytes);
    }
    Ok(())
}

/// A route needs this many requests before its kept per request ranks it or calls it `keeps`:
/// a slope through one or two points is what those requests happened to hold (a 404's buffers,
/// a one-off cache fill), not what each further request keeps.
pub const MIN_REQUESTS_TO_JUDGE: u64 = 5;

/// Whether a route has enough requests for its kept per request to be judged.
pub fn judged(e: &Endpoint) -> bool {
    e.requests >= MIN_REQUESTS_TO_JUDGE
}

/// How a route retains memory: steadily per request, once, or not at all; `too-few` when it
/// holds memory but has too few requests to tell which.
fn retention(e: &Endpoint, page: i64) -> Retention {
    let n = signed(e.requests).max(1);
    if e.retained_bytes <= page.saturating_mul(n) {
        Retention::None
    } else if !judged(e) {
        Retention::TooFew
    } else if e.kept_per_request_bytes.saturating_mul(2) >= e.retained_bytes / n
        && e.kept_per_request_bytes > page
    {
        Retention::Keeps
    } else {
        Retention::HighWater
    }
}

impl RetainedSummary {
    /// Retained memory over `range`, reconciled with the resident set's change; also sets each
    /// endpoint's regression estimate.
    pub fn read(rec: &Recording, range: Range, endpoints: &mut [Endpoint]) -> Q<Option<Self>> {
        if !rec.has_origin() {
            return Ok(None);
        }
        let heap = HeapFollowing::read(rec)?;
        let regression = crate::views::regression::over_recording::estimate(
            rec,
            range,
            endpoints,
            heap.followed && heap.processes_not_followed == 0,
        )?;
        if let Some(r) = &regression {
            let page = page_size(rec)?;
            if r.primary {
                kept_from_regression(endpoints, page, |_| true);
            } else if r.signal == "heap" && r.explained >= SHARED_THREAD_EXPLAINED {
                // Requests that shared a thread (an event loop): the origin could only guess
                // whose memory was whose, and is biased however many requests it sees; the
                // followed heap's regression needs no such guess, and its interval says how
                // sure it is. Not on Go, whose goroutines share threads too: its span hooks
                // follow each span to its request, and are exact at -c8.
                kept_from_regression(endpoints, page, |e| {
                    e.approximate.saturating_mul(2) > e.requests
                });
            }
        }
        let (from, to) = range.bounds();
        let outside = rec.outside_totals(from, to)?;
        let loss = rec.origin_loss()?;
        let (grown, released) = endpoints.iter().fold((0i64, 0i64), |(g, r), e| {
            (
                g.saturating_add(e.grown_bytes),
                r.saturating_add(e.released_bytes),
            )
        });
        let retained = grown.saturating_sub(released);
        let rss_change = rec.rss_change(from, to)?;
        let attributed = retained
            .saturating_add(outside.grown)
            .saturating_sub(outside.released)
            .saturating_sub(outside.released_from_before);
        Ok(Some(Self {
            grown_bytes: grown,
            released_bytes: released,
            retained_bytes: retained,
            outside_grown_bytes: outside.grown,
            outside_released_bytes: outside.released,
            released_from_before_bytes: outside.released_from_before,
            rss_change_bytes: rss_change,
            attributed_change_bytes: attributed,
            unexplained_bytes: rss_change.saturating_sub(attributed),
            untracked_bytes: loss.untracked_bytes,
            unmatched_release_bytes: loss.unmatched_release_bytes,
            unseen_release_bytes: loss.unseen_release_bytes,
            heap,
            origin_spans: meta_num(rec, meta::ORIGIN_SPANS)?,
            vm_unmatched_release_bytes: meta_num(rec, meta::VM_UNMATCHED_RELEASE_BYTES)? as i64,
            regression,
        }))
    }
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
        let command_stopped_ns = rec.meta_i64(meta::COMMAND_STOPPED_NS)?;
        let range = Range {
            from_ns: None,
            to_ns: command_stopped_ns,
        };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_per_request_ignores_a_late_burst_and_a_one_off_step() {
        const KIB: i64 = 1024;
        let route = |series: &[i64]| {
            let mut r = RouteRetained::default();
            let mut prev = 0;
            for (i, &v) in series.iter().enumerate() {
                r.steps.insert((i as i64, i as i64), (1, v - prev));
                prev = v;
            }
            r.grown = prev;
            r.slope()
        };
        // A leak: 256 KiB per request, with noise of a page either way.
        let leak: Vec<i64> = (1..=100)
            .map(|i| i * 256 * KIB + (i % 3 - 1) * 4 * KIB)
            .collect();
        assert!(
            (route(&leak) - 256 * KIB).abs() <= 4 * KIB,
            "{}",
            route(&leak)
        );
        // Churn whose last 13 blocks of 2 MiB await the collector when the recording ends.
        let churn: Vec<i64> = (1..=100)
            .map(|i: i64| (i - 87).max(0) * 2048 * KIB)
            .collect();
        assert_eq!(route(&churn), 0);
        // A heap that grows to 1 MiB on the first request and is reused afterwards.
        let reuse: Vec<i64> = (1..=40).map(|_| 1024 * KIB).collect();
        assert_eq!(route(&reuse), 0);
        // Two steps: the mean.
        assert_eq!(route(&[10, 30]), 15);
        // Thinning keeps the ends.
        let pts: Vec<(i64, i64)> = (0..1000).map(|i| (i, 2 * i)).collect();
        let thinned = thin(&pts, 400);
        assert!(thinned.len() <= 401);
        assert_eq!(thinned.first(), Some(&(0, 0)));
        assert_eq!(thinned.last(), Some(&(999, 1998)));
        assert_eq!(theil_sen(&thinned), Some(2));
        assert_eq!(theil_sen(&[(5, 1), (5, 9)]), None);
    }

    #[test]
    fn percentiles_nearest_rank() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 95.0), 95);
        assert_eq!(percentile(&[7i64], 95.0), 7);
        assert_eq!(percentile::<i64>(&[], 50.0), 0);
    }

    /// Above EXACT_LIMIT, totals come from the rollup plus the edge rows: they must equal what
    /// reading every row gives, for ranges that cut seconds in the middle.
    #[test]
    fn rollup_totals_equal_exact_totals() {
        use crate::{
            model::{RequestRow, Row},
            recording::Writer,
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let writer = Writer::create(&path, &[]).unwrap();
        let n = EXACT_LIMIT + 20_000;
        let rows = (0..n)
            .map(|i| {
                Row::Request(Box::new(RequestRow {
                    id: i + 1,
                    conn: 1,
                    method: Some(if i % 3 == 0 { "POST" } else { "GET" }.into()),
                    route: Some(format!("/r{}", i % 5)),
                    status: (i % 7 != 0).then_some(200 + (i % 4) as u16 * 100),
                    start_ns: i * 1_000_000,
                    end_ns: i * 1_000_000 + 500,
                    vm_bytes: i % 1000,
                    rss_bytes: i % 333,
                    faults: (i % 9) as u64,
                    exact: i % 11 != 0,
                    ..RequestRow::default()
                }))
            })
            .collect();
        writer.send(rows);
        writer.finish().unwrap();
        let rec = Recording::open(&path).unwrap();
        let range = Range {
            from_ns: Some(1_234_567_891),
            to_ns: Some(68_765_432_109),
        };
        let fast = endpoints(&rec, range).unwrap();
        let mut exact = BTreeMap::new();
        add_rows(&rec, &mut exact, range.bounds(), 1, true, None).unwrap();
        assert_eq!(fast.len(), exact.len());
        let total: u64 = fast.iter().map(|e| e.requests).sum();
        assert!(total > EXACT_LIMIT as u64, "the rollup path ran");
        for e in &fast {
            let x = &exact[&(e.method.clone(), e.route.clone())];
            assert_eq!(e.requests, x.n, "{}", e.route);
            assert_eq!(e.statuses, x.statuses);
            assert_eq!((e.vm_bytes, e.rss_bytes), (x.vm_sum, x.rss_sum));
            assert_eq!((e.page_faults, e.approximate), (x.faults, x.approximate));
        }
    }

    /// A corrupted file may hold any value in any column: the views' sums saturate, negative
    /// counts count as 0, and nothing panics (unit tests run with overflow checks). Before, a
    /// debug build of the `recording` fuzz target stopped at these sums within seconds.
    #[test]
    fn extreme_figures_saturate() {
        use crate::{
            model::{RequestRow, Row},
            recording::Writer,
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let writer = Writer::create(&path, &[]).unwrap();
        let rows = (1..=3)
            .map(|id| {
                Row::Request(Box::new(RequestRow {
                    id,
                    method: Some("GET".into()),
                    route: Some("/big".into()),
                    status: Some(200),
                    start_ns: id * NS_PER_SEC,
                    end_ns: id * NS_PER_SEC + 500,
                    exact: true,
                    ..RequestRow::default()
                }))
            })
            .collect();
        writer.send(rows);
        writer.finish().unwrap();
        let db = rusqlite::Connection::open(&path).unwrap();
        db.execute(
            "UPDATE request_rows SET rss_bytes = ?1, vm_bytes = ?2, grown = ?1, released = ?2,
                 faults = -5, mem_calls = ?1",
            [i64::MAX, i64::MIN],
        )
        .unwrap();
        drop(db);
        let rec = Recording::open(&path).unwrap();
        let e = &endpoints(&rec, Range::default()).unwrap()[0];
        assert_eq!(
            (e.requests, e.rss_bytes, e.vm_bytes),
            (3, i64::MAX, i64::MIN)
        );
        assert_eq!((e.grown_bytes, e.released_bytes), (i64::MAX, i64::MIN));
        assert_eq!(e.retained_bytes, i64::MAX);
        assert_eq!((e.page_faults, e.mem_calls), (0, u64::MAX));
        let report = Report::build(&rec).unwrap();
        let retained = report.retained.unwrap();
        assert_eq!(retained.retained_bytes, i64::MAX);
    }

    /// Retained memory per route from a recording with each shape: a leak ranks first with its
    /// exact per-request figure, a high-water mark keeps nothing per further request, churn
    /// and memory freed later by another thread keep nothing.
    #[test]
    fn routes_rank_by_what_they_keep() {
        use crate::{
            model::{ReleaseRow, RequestRow, Row},
            recording::Writer,
        };
        const KIB: u64 = 1024;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let writer = Writer::create(&path, &[(meta::PAGE_SIZE, "4096".to_owned())]).unwrap();
        let base = 1_800_000_000_000_000_000i64;
        let mut rows = Vec::new();
        let mut id = 0;
        let mut request = |route: &str, i: i64, grown: u64, released: u64| {
            id += 1;
            RequestRow {
                id,
                method: Some("GET".into()),
                target: Some(route.into()),
                route: Some(route.into()),
                status: Some(200),
                start_ns: base + i * 10_000_000,
                end_ns: base + i * 10_000_000 + 1_000_000,
                exact: true,
                grown,
                released,
                ..RequestRow::default()
            }
        };
        for i in 0..50 {
            let t = i * 4;
            rows.push(Row::Request(Box::new(request("/leak", t, 64 * KIB, 0))));
            let reuse_growth = if i == 0 { 1024 * KIB } else { 0 };
            rows.push(Row::Request(Box::new(request(
                "/reuse",
                t + 1,
                reuse_growth,
                0,
            ))));
            rows.push(Row::Request(Box::new(request(
                "/churn",
                t + 2,
                2048 * KIB,
                2048 * KIB,
            ))));
            let deferred = request("/deferred", t + 3, 512 * KIB, 0);
            rows.push(Row::Release(Box::new(ReleaseRow {
                ts_ns: deferred.end_ns + 200_000_000,
                pid: 1,
                request_id: deferred.id,
                request_end_ns: deferred.end_ns,
                method: Some("GET".into()),
                route: Some("/deferred".into()),
                bytes: 512 * KIB,
            })));
            rows.push(Row::Request(Box::new(deferred)));
        }
        writer.send(rows);
        writer.finish().unwrap();
        let rec = Recording::open(&path).unwrap();
        let ranked: Vec<(String, i64, i64, Retention)> = endpoints(&rec, Range::default())
            .unwrap()
            .into_iter()
            .map(|e| {
                (
                    e.route,
                    e.kept_per_request_bytes,
                    e.retained_bytes,
                    e.retention,
                )
            })
            .collect();
        assert_eq!(
            ranked,
            vec![
                ("/leak".into(), 64 * 1024, 50 * 64 * 1024, Retention::Keeps),
                ("/reuse".into(), 0, 1024 * 1024, Retention::HighWater),
                ("/churn".into(), 0, 0, Retention::None),
                ("/deferred".into(), 0, 0, Retention::None),
            ]
        );
    }
}
