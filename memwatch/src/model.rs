//! The rows every stage passes downstream: capture and correlation make them, the recording
//! stores them. They live here, below all of those stages, so that no stage depends on the
//! recording's writer for its own vocabulary.

use memwatch_common::mem::MemOp;

/// A process as first seen.
#[derive(Debug, Clone)]
pub struct ProcessRow {
    pub pid: u32,
    pub ppid: Option<u32>,
    pub comm: String,
    pub cmdline: Option<String>,
    pub started_ns: Option<i64>,
    pub origin: ProcessOrigin,
}

/// How a process came to be traced: stored as its name (`processes.origin`), and serialised so
/// in the report JSON and the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcessOrigin {
    /// Named with `-p`.
    Attached,
    /// A descendant of a process named with `-p` or started, already running at the attach.
    Descendant,
    /// The command memwatch started (`record -- CMD`).
    Spawned,
    /// Forked by a traced process while recording.
    Forked,
}

impl ProcessOrigin {
    pub const ALL: [Self; 4] = [
        Self::Attached,
        Self::Descendant,
        Self::Spawned,
        Self::Forked,
    ];

    /// The name it is stored and shown under.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Attached => "attached",
            Self::Descendant => "descendant",
            Self::Spawned => "spawned",
            Self::Forked => "forked",
        }
    }

    /// The origin stored as `name`; `None` for a name memwatch never writes.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.name() == name)
    }
}

impl std::fmt::Display for ProcessOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A memory syscall, with its virtual-size effect computed by the caller.
#[derive(Debug, Clone)]
pub struct MemRow {
    pub ts_ns: i64,
    pub pid: u32,
    pub tid: u32,
    pub op: MemOp,
    pub addr: u64,
    pub len: u64,
    pub new_len: u64,
    pub prot: u32,
    pub flags: u64,
    pub fd: i64,
    pub ret: i64,
    pub ok: bool,
    pub vm_delta: i64,
    pub request_id: Option<i64>,
    /// The call site (`stacks.id`) when one was taken at this call (`--stacks`).
    pub stack: Option<u32>,
}

/// The name a memory syscall is stored under (`mem_events.op`) and shown by.
pub const fn mem_op_name(op: MemOp) -> &'static str {
    match op {
        MemOp::Mmap => "mmap",
        MemOp::Munmap => "munmap",
        MemOp::Mremap => "mremap",
        MemOp::Brk => "brk",
        MemOp::Mprotect => "mprotect",
        MemOp::Madvise => "madvise",
    }
}

/// A completed HTTP request with what it was charged.
#[derive(Debug, Clone, Default)]
pub struct RequestRow {
    pub id: i64,
    pub pid: u32,
    pub tid: u32,
    /// Connection number in this recording; 0 for a request derived from an access log.
    pub conn: u64,
    /// Shared with other requests (as are `route` and `host`): interned by the correlator.
    pub method: Option<std::sync::Arc<str>>,
    /// Shared with `route` when it is the route itself.
    pub target: Option<std::sync::Arc<str>>,
    pub route: Option<std::sync::Arc<str>>,
    pub host: Option<std::sync::Arc<str>>,
    pub status: Option<u16>,
    pub start_ns: i64,
    pub first_byte_ns: Option<i64>,
    pub end_ns: i64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub vm_bytes: i64,
    pub rss_bytes: i64,
    pub faults: u64,
    pub mem_calls: u64,
    pub exact: bool,
    /// Resident bytes this request made resident (each page once; a page it faulted twice, or
    /// one already resident, is not counted again).
    pub grown: u64,
    /// Of `grown`, the bytes released before the request ended (its own churn).
    pub released: u64,
    /// The heap probes were off as it started (their budget was spent): its resident memory
    /// went to the outside-requests row, and per-request figures leave it out.
    pub sampled_out: bool,
}

/// An access-log line, parsed or rejected, with the request it was joined to.
#[derive(Debug, Clone, Default)]
pub struct LogLineRow {
    pub source: std::sync::Arc<str>,
    pub arrived_ns: i64,
    pub ts_ns: Option<i64>,
    pub reason: Option<&'static str>,
    pub raw: Option<String>,
    pub method: Option<String>,
    pub target: Option<String>,
    pub route: Option<String>,
    pub status: Option<u16>,
    pub bytes: Option<u64>,
    pub duration_us: Option<u64>,
    pub client: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<i64>,
}

/// A release of resident memory credited back to its origin.
#[derive(Debug, Clone, Default)]
pub struct ReleaseRow {
    pub ts_ns: i64,
    pub pid: u32,
    /// The request that made the memory resident; 0 for memory made outside any request.
    pub request_id: i64,
    /// That request's end (0 for outside): with the id, the key of its row.
    pub request_end_ns: i64,
    pub method: Option<std::sync::Arc<str>>,
    pub route: Option<std::sync::Arc<str>>,
    pub bytes: u64,
}

/// Address space of one request: mapped and still held at its end, or released later.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VmOriginRow {
    /// When: the request's end for `grown`, the unmapping for `released`.
    pub ts_ns: i64,
    pub req_end_ns: i64,
    pub method: Option<std::sync::Arc<str>>,
    pub route: Option<std::sync::Arc<str>>,
    pub grown: u64,
    pub released: u64,
}

/// Resident memory of one call site: grown by a request (or outside any request) and what of it
/// was released before the request ended, or released later (`grown` 0).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackChargeRow {
    /// When: the request's end for its growth, the release for a later release; for growth
    /// outside any request, the growth.
    pub ts_ns: i64,
    /// The request's end; for growth outside any request, the growth (`route` is then `""`).
    pub req_end_ns: i64,
    pub method: Option<std::sync::Arc<str>>,
    /// `None` when unknown; `Some("")` outside any request.
    pub route: Option<std::sync::Arc<str>>,
    pub pid: u32,
    /// `stacks.id`; 0 when no stack was taken for the growth.
    pub stack: u32,
    pub grown: u64,
    pub released: u64,
    /// Pages made resident.
    pub pages: u64,
}

/// One interned frame, symbolized.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrameRow {
    pub id: u32,
    /// The binary's path, or `[anon]` / `[perf-map]`.
    pub module: std::sync::Arc<str>,
    /// File offset in `module` (the address for `[anon]` and `[perf-map]`).
    pub offset: u64,
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
}

/// How a stack was unwound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unwind {
    /// By the kernel, along frame pointers.
    FramePointers,
    /// In user space, from a copy of the stack and the binaries' unwind tables.
    Dwarf,
}

impl Unwind {
    pub const fn name(self) -> &'static str {
        match self {
            Self::FramePointers => "fp",
            Self::Dwarf => "dwarf",
        }
    }
}

/// What the capture could and could not do so far, cumulative, at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CountersRow {
    pub ts_ns: i64,
    pub events: u64,
    pub dropped: u64,
    pub unpaired_exits: u64,
    pub map_full: u64,
    pub undecodable: u64,
    /// Bytes made resident that origin tracking could not keep (its span bound).
    pub untracked_bytes: u64,
    /// Bytes released that no tracked origin covered, where pages of no known origin may
    /// have been resident (mapped before memwatch attached, inherited over fork).
    pub unmatched_release_bytes: u64,
    /// Bytes released that no tracked origin covered, in address space mapped while
    /// recording: never seen resident, so not memory given back.
    pub unseen_release_bytes: u64,
}

/// Everything the writer stores.
#[derive(Debug, Clone)]
pub enum Row {
    Meta(String, String),
    Process(ProcessRow),
    ProcessExit {
        pid: u32,
        ts_ns: i64,
        exit_code: Option<i32>,
    },
    Thread {
        tid: u32,
        pid: u32,
        faults: u64,
        exited_ns: Option<i64>,
    },
    Mem(MemRow),
    Sample {
        ts_ns: i64,
        pid: u32,
        rss_bytes: u64,
        vm_bytes: u64,
        faults: u64,
    },
    Counters(CountersRow),
    /// Not boxed: a box made on the event loop and freed on the writer's thread went back
    /// through the event loop's malloc arena under its lock, for every request.
    Request(RequestRow),
    LogLine(Box<LogLineRow>),
    /// Resident memory released after the request that made it resident had ended (or, with
    /// `request_id` 0, memory made resident outside any request), by whatever thread.
    Release(Box<ReleaseRow>),
    /// Address space mapped by a request and still mapped when it ended (`grown`), or unmapped
    /// later by whatever thread (`released`): the virtual-memory counterpart of the resident
    /// origin.
    VmOrigin(Box<VmOriginRow>),
    /// Resident memory by call site (`record --stacks`).
    StackCharge(Box<StackChargeRow>),
    /// An interned stack: `stacks.id` and its frames' ids, leaf first.
    Stack {
        id: u32,
        frames: Vec<u32>,
        unwind: Unwind,
    },
    /// An interned frame, symbolized.
    Frame(Box<FrameRow>),
    /// Resident memory made resident while the thread served no request.
    OutsideGrowth {
        ts_ns: i64,
        pid: u32,
        bytes: u64,
    },
    NonHttp {
        ts_ns: i64,
        pid: u32,
        conn: u64,
        kind: &'static str,
        bytes: u64,
    },
    /// An allocation Go's runtime sampled for its memory profile (`session/go_samples.rs`).
    HeapSample(Box<HeapSampleRow>),
    /// The sampled allocation `id` was freed by Go's sweeper.
    HeapSampleFreed {
        id: u64,
        ts_ns: i64,
    },
    /// A collected runtime's live heap right after a collection, as the runtime reports it
    /// (`capture::probe::gc`): `source` is `jvm` or `go`.
    LiveHeap {
        ts_ns: i64,
        pid: u32,
        bytes: u64,
        source: &'static str,
    },
}

/// An allocation Go's runtime sampled, charged to the request its thread served.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeapSampleRow {
    /// Numbered from 1 in the recording; its free names it.
    pub id: u64,
    pub ts_ns: i64,
    pub pid: u32,
    /// The request its thread served, with that request's method and route; `None` outside
    /// any request. The strings are the request's own, shared (interned by the correlator).
    pub request_id: Option<i64>,
    pub method: Option<std::sync::Arc<str>>,
    pub route: Option<std::sync::Arc<str>>,
    /// The object's bytes.
    pub size: u64,
    /// The bytes it stands for at the process's sampling rate (`go_profile::weight`).
    pub weight: u64,
}

/// One BPF program's runs and run time since it was loaded, as the kernel counts them while BPF
/// statistics are on (`--bpf-stats`). Stored in `meta::BPF_PROGRAMS`, one line per program:
/// `NAME RUNS RUN_NS`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProgramStats {
    pub name: String,
    /// Keys in alphabetical order, as the API sends them.
    pub run_ns: u64,
    pub runs: u64,
}

impl ProgramStats {
    /// The `meta::BPF_PROGRAMS` value.
    pub fn encode(stats: &[Self]) -> String {
        stats
            .iter()
            .map(|s| format!("{} {} {}", s.name, s.runs, s.run_ns))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A `meta::BPF_PROGRAMS` value read back; lines that do not parse are left out.
    pub fn decode(value: &str) -> Vec<Self> {
        value
            .lines()
            .filter_map(|line| {
                let mut parts = line.split(' ');
                let name = parts.next()?;
                let runs = parts.next()?.parse().ok()?;
                let run_ns = parts.next()?.parse().ok()?;
                parts.next().is_none().then(|| Self {
                    name: crate::units::cut(name, 64).to_owned(),
                    runs,
                    run_ns,
                })
            })
            .collect()
    }
}

/// The keys of the recording's `meta` table (documented in `docs/recording.md`), written by the
/// session and `view --access-log`, read by the views.
pub mod meta {
    pub const MEMWATCH_VERSION: &str = "memwatch_version";
    pub const STARTED_NS: &str = "started_ns";
    pub const ENDED_NS: &str = "ended_ns";
    pub const CLOCK_OFFSET_NS: &str = "clock_offset_ns";
    /// memwatch's own command line, with the values of `--token` and `--metrics-token` replaced
    /// by `***`.
    pub const COMMAND_LINE: &str = "command_line";
    /// `"true"` when query strings were dropped before anything was stored (`--redact-query`),
    /// `"false"` when the recording holds them; absent in recordings before this key.
    pub const REDACT_QUERY: &str = "redact_query";
    pub const SAMPLE_INTERVAL_MS: &str = "sample_interval_ms";
    pub const CAPTURE_BYTES: &str = "capture_bytes";
    pub const FOLLOW_FORKS: &str = "follow_forks";
    pub const NET: &str = "net";
    /// `"true"` unless recorded with `--no-ebpf` (absent in old recordings: true).
    pub const EBPF: &str = "ebpf";
    /// The followed access logs' paths, one per line.
    pub const ACCESS_LOGS: &str = "access_logs";
    pub const KERNEL: &str = "kernel";
    pub const PAGE_SIZE: &str = "page_size";
    /// Rows the writer shed because its queue stayed full (written when the recording closes;
    /// absent in recordings older than this key, and in ones killed before closing).
    pub const WRITER_SHED_ROWS: &str = "writer_shed_rows";
    /// `"true"` when the heap was followed (the default; not with `--no-heap`); absent: false.
    pub const HEAP: &str = "heap";
    /// When the heap was followed: heap blocks followed (handed out and given back), and processes whose heap
    /// could not be followed (a static binary, no glibc), written when the recording closes.
    pub const HEAP_EVENTS: &str = "heap_events";
    pub const HEAP_NOT_FOLLOWED: &str = "heap_not_followed";
    /// Processes with a collected runtime memwatch knows (a JVM, Go) whose live-heap probes
    /// could not be attached: their collections are not followed.
    pub const GC_NOT_FOLLOWED: &str = "gc_not_followed";
    /// Hits on the collector probes, and the live-heap rows they gave (fewer where the heap
    /// probes were off at a collection whose figure needs them).
    pub const GC_EVENTS: &str = "gc_events";
    pub const GC_REPORTS: &str = "gc_reports";
    /// Go programs that sample their allocations, with their rate (`PID=BYTES`, space
    /// separated; absent where none did), and what their sampled heap came to, written when
    /// the recording closes: allocations sampled, those on a thread that served no request,
    /// those freed, and frees of objects with no sample seen (a finalizer's record, or sampled
    /// before the attach).
    pub const GO_SAMPLE_RATES: &str = "go_sample_rates";
    pub const GO_SAMPLES: &str = "go_samples";
    pub const GO_SAMPLES_OUTSIDE: &str = "go_samples_outside";
    pub const GO_SAMPLES_FREED: &str = "go_samples_freed";
    pub const GO_SAMPLE_UNKNOWN_FREES: &str = "go_sample_unknown_frees";
    /// The share of one core the heap probes may cost (`--heap-budget`), as a fraction.
    pub const HEAP_BUDGET: &str = "heap_budget";
    /// Written when the recording closes, with the heap followed: the share of the time the
    /// probes were attached, their cost as a share of one core, their hits, how many times the
    /// budget detached them, what a hit cost (`entry=NS return=NS free=NS step=NS
    /// measured=BOOL`), and where each probe sat (one `BINARY FUNCTION+OFFSET PROGRAM` per
    /// line, ` single-stepped` appended where no emulated instruction was found).
    pub const HEAP_ON_FRACTION: &str = "heap_on_fraction";
    pub const HEAP_COST_SHARE: &str = "heap_cost_share";
    pub const HEAP_HITS: &str = "heap_hits";
    /// What a hit cost the targets, as a multiple of the calibrated `heap_hit_ns`: learnt from
    /// their CPU time per request with the probes on and off (1 when never measured).
    pub const HEAP_COST_FACTOR: &str = "heap_cost_factor";
    pub const HEAP_PAUSES: &str = "heap_pauses";
    pub const HEAP_HIT_NS: &str = "heap_hit_ns";
    pub const HEAP_SITES: &str = "heap_sites";
    /// Followed blocks found given back while the probes were off (read from their glibc chunk
    /// header), their bytes, and blocks whose release was missed and found when a later
    /// followed block took their memory.
    pub const HEAP_FREES_FOUND: &str = "heap_frees_found";
    pub const HEAP_FREES_FOUND_BYTES: &str = "heap_frees_found_bytes";
    pub const HEAP_FREES_OVERLAPPED: &str = "heap_frees_overlapped";
    /// Spans the origin maps (resident and address space) held when the recording closed: what
    /// origin tracking costs memwatch (about 64 bytes each).
    pub const ORIGIN_SPANS: &str = "origin_spans";
    /// Unmapping of address space mapped before memwatch attached (no known origin), bytes.
    pub const VM_UNMATCHED_RELEASE_BYTES: &str = "vm_unmatched_release_bytes";
    /// With `--stacks`: the bytes of resident growth per thread between two stacks
    /// (`--stack-every`); absent: no stacks were taken.
    pub const STACK_EVERY: &str = "stack_every";
    /// With `--stacks`, written when the recording closes: stacks taken (`stack_samples`), and
    /// stacks lost: the kernel's stack map was full or a copied stack could not be unwound
    /// (`stacks_lost`); frames no symbol covers (`frames_unsymbolized`).
    pub const STACK_SAMPLES: &str = "stack_samples";
    pub const STACKS_LOST: &str = "stacks_lost";
    pub const FRAMES_UNSYMBOLIZED: &str = "frames_unsymbolized";
    /// With `--stacks`: stacks skipped to keep the cost bounded (a CPU's `--stack-rate` spent,
    /// or the ring buffer too full for a copy); their growth has no call site.
    pub const STACKS_SKIPPED: &str = "stacks_skipped";
    /// With `--stacks`: stacks that ended early at an address in no executable mapping, which
    /// is no frame (a walk past the outermost frame); the frames before it are kept.
    pub const STACKS_CUT_AT_NO_CODE: &str = "stacks_cut_at_no_code";
    /// With `--stacks`: processes switched from frame-pointer stacks to copied ones because a
    /// an eighth or more of their first 16 stacks were cut short in a library without frame pointers.
    pub const STACK_FALLBACKS: &str = "stack_fallbacks";
    /// With `--stacks`: microseconds memwatch spent unwinding, mapping and interning stacks on
    /// its event loop, and naming frames on its own thread.
    pub const STACK_RESOLVE_US: &str = "stack_resolve_us";
    pub const SYMBOLIZE_US: &str = "symbolize_us";
    /// memwatch's own state, written when the recording closes: its peak resident set
    /// (`VmHWM`), the most connections, traced threads, requests in flight and completed
    /// requests still holding memory it kept at once (read at each sample), and kernel-side
    /// connections it swept because their process had exited.
    pub const PEAK_RSS_BYTES: &str = "peak_rss_bytes";
    pub const PEAK_CONNS: &str = "peak_conns";
    pub const PEAK_THREADS: &str = "peak_threads";
    pub const PEAK_REQUESTS: &str = "peak_requests";
    pub const PEAK_RETAINING: &str = "peak_retaining";
    pub const CONNS_SWEPT: &str = "conns_swept";
    /// PIDs given to a new traced process after an earlier one holding them had exited: the
    /// `processes` table has one row per PID, so each such row covers both processes.
    pub const PIDS_REUSED: &str = "pids_reused";
    /// The kernel maps' entries when the recording closed, as `name=count` pairs separated by
    /// spaces (`targets`, `thread_faults`, `pending_mem`, `conns`, `heap_pending`, `heap_live`,
    /// `rss_seen`).
    pub const KERNEL_MAP_ENTRIES: &str = "kernel_map_entries";
    /// Why recording stopped: `signal`, `duration` or `targetsexited`; or, written by the
    /// writer when writing failed, `disk_full` or `write_failed`.
    pub const STOP_REASON: &str = "stop_reason";
    /// When memwatch sent SIGTERM to the command it started (`record -- CMD` stopped by
    /// Ctrl-C or `--duration`): the report's figures are taken then, since what the command's
    /// exit frees is no route's release.
    pub const COMMAND_STOPPED_NS: &str = "command_stopped_ns";
    /// Resident bytes that madvise gave back (DONTNEED, FREE, REMOVE), whole recording: what
    /// the advice did to the resident set, where the calls' lengths name address space.
    pub const MADVISE_RELEASED_BYTES: &str = "madvise_released_bytes";
    /// When writing failed: the error, and the rows captured after the last commit that were
    /// not written (those of the failed transaction and all that came after it).
    pub const WRITE_ERROR: &str = "write_error";
    pub const UNWRITTEN_ROWS: &str = "unwritten_rows";
    /// memwatch's own CPU time by stage (µs, written when the recording closes): reading and
    /// decoding the ring buffer, handing each event on (correlating), handing rows to the
    /// writer, and the writer thread's inserts and commits.
    pub const CPU_DECODE_US: &str = "cpu_decode_us";
    pub const CPU_CORRELATE_US: &str = "cpu_correlate_us";
    pub const CPU_FLUSH_US: &str = "cpu_flush_us";
    pub const CPU_WRITE_US: &str = "cpu_write_us";
    /// memwatch's whole CPU time (µs, user and system, every thread), as the kernel counts it.
    pub const CPU_TOTAL_US: &str = "cpu_total_us";
    /// Ring-buffer bytes read, the drains that read them, and how many of those the kernel
    /// side woke (the rest came on memwatch's 50 ms tick).
    pub const RING_BYTES: &str = "ring_bytes";
    pub const RING_DRAINS: &str = "ring_drains";
    pub const RING_WAKEUPS: &str = "ring_wakeups";
    /// With `--bpf-stats`: each BPF program's runs and run time (see [`super::ProgramStats`]).
    pub const BPF_PROGRAMS: &str = "bpf_programs";

    /// The format detected or given for the `index`th access log.
    pub fn access_log_format(index: usize) -> String {
        format!("access_log_format.{index}")
    }
}

#[cfg(test)]
mod tests {
    use super::ProgramStats;

    #[test]
    fn program_stats_read_back_and_bad_lines_are_left_out() {
        let stats = vec![
            ProgramStats {
                name: "sys_enter_mmap".into(),
                runs: 12,
                run_ns: 3400,
            },
            ProgramStats {
                name: "page_fault_user".into(),
                runs: 0,
                run_ns: 0,
            },
        ];
        let value = ProgramStats::encode(&stats);
        assert_eq!(value, "sys_enter_mmap 12 3400\npage_fault_user 0 0");
        assert_eq!(ProgramStats::decode(&value), stats);
        let one = |name: &str, runs, run_ns| ProgramStats {
            name: name.into(),
            runs,
            run_ns,
        };
        assert_eq!(
            ProgramStats::decode("a 1 2\nb x 3\nc 1\nd 1 2 3\ne 4 5"),
            vec![one("a", 1, 2), one("e", 4, 5)]
        );
    }
}
