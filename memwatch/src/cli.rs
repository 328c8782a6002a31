//! The command line, and nothing else: clap types that turn arguments into the plain option
//! structs of the session and the views. Every option is validated here or in the session's
//! preflight, before anything is loaded.

use std::{ffi::OsString, net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Help is wrapped at this many columns at most (fewer on a narrower terminal).
const HELP_WIDTH: usize = 100;

use crate::{
    private::Secret,
    session::RecordOptions,
    views::{
        fleet::Fleet,
        profile::{Metric, Thresholds},
        server::ServeOptions,
    },
};

/// The exit codes, under every `--help` and `-h` of the top level; the README lists the same.
const EXIT_CODES: &str = "Exit codes:
  0    ok (diff, ci: within the thresholds)
  1    a regression was found (diff, ci)
  2    bad input: usage, a PID, a file, an address; nothing was loaded
  3    this machine cannot run memwatch: privileges, kernel, tracefs
  4    a failure while running
  5    the recording could not be written (disk full, I/O error); what was committed is readable
  130  a second Ctrl-C (or SIGTERM) while stopping: memwatch exited at once";

#[derive(Debug, Parser)]
#[command(
    name = "memwatch",
    version = env!("MEMWATCH_VERSION"),
    about = "Which requests make this process's memory grow?",
    long_about = "Which requests make this process's memory grow?\n\nmemwatch attaches to a \
                  running Linux process (or starts a command), traces its memory syscalls, page \
                  faults, heap and HTTP traffic with eBPF, records everything to a file, and \
                  reports memory growth per request and URL.",
    after_help = EXIT_CODES,
    max_term_width = HELP_WIDTH
)]
pub struct Cli {
    /// More logging (-v info, -vv debug, -vvv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Trace processes and record their memory and requests to a file.
    Record(RecordArgs),
    /// Summarise a recording as text or JSON.
    Report(ReportArgs),
    /// Record like `record`, and serve the live page while recording.
    Serve(ServeArgs),
    /// Serve the page for a finished recording (or for an access log alone).
    View(ViewArgs),
    /// Write a recording's allocation profile: per-route figures as stable JSON.
    Profile(ProfileArgs),
    /// Write resident memory by call site as a pprof profile (recordings made with --stacks).
    Pprof(PprofArgs),
    /// Compare two profiles (or recordings) route by route; exit 1 on a regression.
    Diff(DiffArgs),
    /// Start a server traced, wait until it answers, run a workload, stop everything cleanly,
    /// profile and compare with a baseline: a CI step.
    Ci(CiArgs),
    /// memwatch's own helper: it measures what a heap probe's hit costs (it calls malloc and
    /// free in a loop while memwatch probes it). Not for use by hand.
    #[command(hide = true)]
    CalibrateHeap,
}

#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// A recording.
    #[arg(value_name = "RECORDING")]
    pub file: PathBuf,
    /// Where to write the profile (default: standard output).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Overwrite the -o file if it exists.
    #[arg(long, requires = "output")]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct PprofArgs {
    /// A recording made with `memwatch record --stacks`.
    #[arg(value_name = "RECORDING")]
    pub file: PathBuf,
    /// Where to write the profile (gzip-compressed profile.proto).
    ///
    /// As `go tool pprof`, Pyroscope and Parca read it. An existing file is kept unless --force.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Overwrite the -o file if it exists.
    #[arg(long)]
    pub force: bool,
    /// Only this route's memory.
    ///
    /// "[outside requests]" selects the memory made outside any request.
    #[arg(long, value_name = "ROUTE")]
    pub route: Option<String>,
    /// Only requests that ended from this time on.
    ///
    /// Seconds from the recording's start (90, 1.5, 2m) or an RFC 3339 time
    /// (2026-05-19T08:00:00Z).
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    pub from: Option<TimeArg>,
    /// Only requests that ended up to this time (as --from).
    ///
    /// Releases count up to it too.
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    pub to: Option<TimeArg>,
}

/// A time on the command line: from the recording's start, or a wall-clock time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeArg {
    /// This long after the recording started.
    FromStart(Duration),
    /// Nanoseconds since the Unix epoch.
    At(i64),
}

impl TimeArg {
    /// Nanoseconds since the Unix epoch, given when the recording started; `None` when the time
    /// is relative and the start is not known.
    pub fn resolve(self, started_ns: Option<i64>) -> Option<i64> {
        match self {
            Self::At(ns) => Some(ns),
            Self::FromStart(d) => started_ns
                .map(|s| s.saturating_add(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))),
        }
    }
}

/// Seconds from a recording's start (`90`, `1.5`, `500ms`, `2m`, `0`) or an RFC 3339 time.
pub fn parse_time(s: &str) -> Result<TimeArg, String> {
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return t
            .timestamp_nanos_opt()
            .map(TimeArg::At)
            .ok_or_else(|| format!("{s:?} is outside the years 1677 to 2262"));
    }
    let bad = || {
        format!(
            "{s:?} is neither seconds from the recording's start (90, 1.5, 500ms, 2m) nor an \
             RFC 3339 time (2026-05-19T08:00:00Z)"
        )
    };
    match s.parse::<f64>() {
        Ok(secs) if (0.0..1e9).contains(&secs) => {
            Ok(TimeArg::FromStart(Duration::from_secs_f64(secs)))
        }
        Ok(_) => Err(bad()),
        Err(_) => humantime::parse_duration(s)
            .map(TimeArg::FromStart)
            .map_err(|_| bad()),
    }
}

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum DiffFormat {
    #[default]
    Text,
    Markdown,
    Json,
}

/// Regression thresholds, shared by `diff` and `ci`.
#[derive(Debug, Clone, Args)]
pub struct ThresholdArgs {
    /// Per-request growth (percent) of the metric above which a route regressed.
    #[arg(long, default_value_t = 25.0, value_name = "PCT")]
    pub max_growth: f64,
    /// What to compare per request: kept (resident memory each further request keeps), rss
    /// (resident bytes faulted in, gross), vm (virtual bytes) or duration.
    #[arg(long, value_enum, default_value_t = MetricArg::Kept)]
    pub metric: MetricArg,
    /// Whole-run RSS growth (percent of the base run's) above which the run regressed.
    #[arg(long, value_name = "PCT")]
    pub max_run_growth: Option<f64>,
    /// Routes with fewer requests in either run are shown but never fail.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub min_requests: u64,
}

/// `--metric`: which per-request figure `diff` compares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum MetricArg {
    /// Resident memory each further request keeps.
    #[default]
    Kept,
    /// Resident bytes faulted in per request (mean, gross).
    Rss,
    /// Virtual bytes per request (mean).
    Vm,
    /// Duration per request (p50).
    Duration,
}

impl From<MetricArg> for Metric {
    fn from(m: MetricArg) -> Self {
        match m {
            MetricArg::Kept => Self::Kept,
            MetricArg::Rss => Self::Rss,
            MetricArg::Vm => Self::Vm,
            MetricArg::Duration => Self::Duration,
        }
    }
}

impl ThresholdArgs {
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            metric: self.metric.into(),
            max_growth_pct: self.max_growth,
            max_run_growth_pct: self.max_run_growth,
            min_requests: self.min_requests,
        }
    }
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The baseline: a profile or a recording.
    pub base: PathBuf,
    /// The change under test: a profile or a recording.
    pub head: PathBuf,
    #[command(flatten)]
    pub thresholds: ThresholdArgs,
    #[arg(long, value_enum, default_value_t = DiffFormat::Text)]
    pub format: DiffFormat,
}

#[derive(Debug, Args)]
pub struct CiArgs {
    /// The server command, run with `sh -c` in its own process group, traced from its first
    /// instruction.
    #[arg(long, value_name = "CMD")]
    pub server: String,
    /// An http:// URL that answers (not 5xx) once the server is ready.
    #[arg(long, value_name = "URL")]
    pub ready: String,
    /// The workload command, run with `sh -c` once the server is ready; its output is shown.
    #[arg(long, value_name = "CMD")]
    pub workload: String,
    /// The server's access log, joined to the captured requests.
    #[arg(long = "access-log", value_name = "PATH")]
    pub access_logs: Vec<PathBuf>,
    /// The recording (default: memwatch-ci.db; overwritten).
    #[arg(short, long, default_value = "memwatch-ci.db", value_name = "FILE")]
    pub output: PathBuf,
    /// Where to write this run's profile.
    #[arg(long, value_name = "FILE")]
    pub profile_out: Option<PathBuf>,
    /// A profile (or recording) to compare with; a regression exits 1.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    #[command(flatten)]
    pub thresholds: ThresholdArgs,
    /// Write the comparison as markdown here too (for a pull-request comment).
    #[arg(long, value_name = "FILE")]
    pub markdown_out: Option<PathBuf>,
    /// How long the server may take to answer the ready URL.
    #[arg(long, value_parser = parse_duration, default_value = "60s", value_name = "DURATION")]
    pub ready_timeout: Duration,
    /// How long the server may take to exit after SIGTERM before SIGKILL.
    #[arg(long, value_parser = parse_duration, default_value = "10s", value_name = "DURATION")]
    pub stop_timeout: Duration,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten, next_help_heading = "Page and metrics")]
    pub serve: PageArgs,
    #[command(flatten)]
    pub record: RecordArgs,
}

/// `--listen` and `--token`, shared by `serve` and `view`.
#[derive(Debug, Clone, Args)]
pub struct PageArgs {
    /// Address for the page: IP:PORT or HOST:PORT (port 0: a free one).
    ///
    /// A host name is resolved, its loopback address preferred (localhost:0 is 127.0.0.1:0). An
    /// address other than loopback is reachable from other hosts, and refused without --token.
    #[arg(long, default_value = "127.0.0.1:7070", value_name = "ADDR", value_parser = parse_listen)]
    pub listen: SocketAddr,
    /// Require this token on every request to the page.
    ///
    /// As `Authorization: Bearer TOKEN` or `?token=`; the printed URL carries it.
    #[arg(long, value_name = "TOKEN", env = "MEMWATCH_TOKEN", hide_env_values = true,
          value_parser = parse_secret)]
    pub token: Option<Secret>,
}

impl PageArgs {
    /// The page's options; `hosts` are the `--allow-host` names (given once, for the page and
    /// `/metrics` alike).
    pub fn options(&self, hosts: &HostArgs) -> ServeOptions {
        let Self { listen, token } = self.clone();
        ServeOptions {
            listen,
            token,
            allow_hosts: hosts.allow_hosts.clone(),
        }
    }
}

/// `--allow-host`, shared by the page and `/metrics`.
#[derive(Debug, Clone, Args)]
pub struct HostArgs {
    /// Also answer a Host header of NAME or NAME:PORT (repeatable).
    ///
    /// As a reverse proxy or another name for this machine sends. 127.0.0.1, localhost, [::1] and
    /// the listen address are always answered; any other name gets 421.
    #[arg(long = "allow-host", value_name = "NAME", value_parser = parse_allow_host)]
    pub allow_hosts: Vec<String>,
}

fn parse_secret(s: &str) -> Result<Secret, String> {
    if s.is_empty() {
        Err("an empty token guards nothing: give a long random one (openssl rand -hex 16)".into())
    } else {
        Ok(Secret::new(s))
    }
}

fn parse_allow_host(s: &str) -> Result<String, String> {
    match crate::views::server::guard::split_host(s) {
        Some(_) => Ok(s.trim().to_owned()),
        None => Err(format!(
            "{s:?} is not a host name: give NAME or NAME:PORT (memwatch.example, \
             10.0.0.5:7070, [fd00::5]:7070), no scheme or path"
        )),
    }
}

#[derive(Debug, Args)]
pub struct ViewArgs {
    /// A recording written by `memwatch record` or `memwatch serve`.
    #[arg(required_unless_present = "access_logs", value_name = "RECORDING")]
    pub file: Option<PathBuf>,
    /// With no recording: show this access log's request volume and URLs.
    ///
    /// There is no memory series then, only the log's requests.
    #[arg(long = "access-log", value_name = "PATH", conflicts_with = "file")]
    pub access_logs: Vec<PathBuf>,
    /// Access-log format (as for `record`).
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
    #[command(flatten, next_help_heading = "Page")]
    pub serve: PageArgs,
    #[command(flatten)]
    pub hosts: HostArgs,
}

#[derive(Debug, Clone, Args)]
pub struct RecordArgs {
    /// Process to trace, with its descendants (repeatable).
    ///
    /// Its current descendants and, unless --no-follow-forks, the processes they fork later.
    /// PID 1 (with its descendants, every process on the machine) needs --force.
    #[arg(short, long = "pid", value_name = "PID", help_heading = "Target",
          value_parser = parse_pid, allow_negative_numbers = true)]
    pub pids: Vec<u32>,
    /// Trace only the given PIDs: not their descendants, nor what they fork later.
    #[arg(long, help_heading = "Target")]
    pub no_follow_forks: bool,
    /// Stop after this long (seconds, or with a unit: 500ms, 2m).
    ///
    /// Otherwise recording stops on Ctrl-C or SIGTERM, or when every target has exited.
    #[arg(long, value_parser = parse_duration, value_name = "SECS", help_heading = "Target",
          allow_negative_numbers = true)]
    pub duration: Option<Duration>,
    /// Command to start and trace from its first instruction (after `--`).
    #[arg(last = true, value_name = "CMD", help_heading = "Target")]
    pub command: Vec<OsString>,
    /// Recording file (SQLite). Default: memwatch-<date>-<time>.db here.
    #[arg(short, long, value_name = "FILE", help_heading = "Output")]
    pub output: Option<PathBuf>,
    /// Overwrite the output file if it exists; allow -p 1.
    ///
    /// Without it, an existing output is kept, and PID 1 is refused while forks are followed:
    /// its descendants are every process on the machine.
    #[arg(long, help_heading = "Output")]
    pub force: bool,
    /// Route pattern: /users/{id}/posts, /static/* (repeatable).
    ///
    /// The first pattern that matches names a request's route. Numeric, UUID and long-hex path
    /// segments become {id} without one.
    #[arg(long = "route", value_name = "PATTERN", help_heading = "Output")]
    pub routes: Vec<String>,
    /// Drop query strings before anything is stored.
    #[arg(long, help_heading = "Output")]
    pub redact_query: bool,
    /// Do not hook socket syscalls (memory only; no HTTP requests).
    #[arg(long, help_heading = "What to follow")]
    pub no_net: bool,
    /// Do not follow the heap (malloc and free, Go's spans; followed by default).
    ///
    /// By default memwatch follows glibc's malloc and free and Go's spans (uprobes), so that
    /// memory one request frees and another reuses changes hands, within --heap-budget. A
    /// process with neither is recorded without (the summary and the log say which).
    #[arg(long, help_heading = "What to follow")]
    pub no_heap: bool,
    /// Accepted for recordings scripted before the heap was followed by default; does nothing.
    #[arg(long, hide = true, conflicts_with = "no_heap")]
    pub heap: bool,
    /// The share of one core the heap probes may cost the targets: 2%, 0.5%.
    ///
    /// From 0.1% to 100%. Past it, memwatch follows the heap in windows and the figures say
    /// they are sampled; 100% follows every call whatever it costs.
    #[arg(long, value_name = "PERCENT", default_value = "2%", value_parser = parse_share,
          help_heading = "What to follow")]
    pub heap_budget: f64,
    /// Take the call sites of resident growth (user stacks).
    ///
    /// At most once per --stack-every bytes each thread makes resident or maps, and at each
    /// request's first growth. Along frame pointers where the program keeps them, else by
    /// copying the stack and unwinding it here (docs/stacks.md). Then `report --stacks`, `pprof`
    /// and the page's flame graph show which code keeps memory, per route.
    #[arg(long, conflicts_with = "no_ebpf", help_heading = "What to follow")]
    pub stacks: bool,
    /// With --stacks: growth per thread between two stacks.
    ///
    /// From 4KiB to 1GiB: a number, or with a unit (64KiB, 1MiB).
    #[arg(long, default_value = "64KiB", value_parser = parse_size, value_name = "SIZE",
          help_heading = "What to follow")]
    pub stack_every: u64,
    /// With --stacks: the most stacks per CPU per second.
    ///
    /// In bursts of 64; past it, stacks are skipped and counted, and the growth they would have
    /// named has no call site.
    #[arg(long, default_value_t = memwatch_common::stack::DEFAULT_STACK_RATE, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000),
          help_heading = "What to follow")]
    pub stack_rate: u64,
    /// No eBPF, no root: sample /proc, share growth among log lines.
    ///
    /// Samples RSS and VmSize from /proc and shares each interval's growth among the
    /// access-log lines completed in it (approximate, as the 2008 tool did).
    #[arg(long, help_heading = "What to follow")]
    pub no_ebpf: bool,
    /// How often to sample RSS and VmSize from /proc (10ms or more).
    #[arg(long, value_parser = parse_sample_interval, default_value = "100ms",
          value_name = "DURATION", help_heading = "What to follow", allow_negative_numbers = true)]
    pub sample_interval: Duration,
    /// Bytes of each request and response captured (64 to 1024).
    #[arg(long, default_value_t = 512, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(64..=1024),
          help_heading = "What to follow")]
    pub capture_bytes: u32,
    /// Ring-buffer size in MiB (a power of two).
    #[arg(long, default_value_t = 8, value_name = "MIB", value_parser = parse_ring_mib,
          help_heading = "What to follow")]
    pub ring_mib: u32,
    /// The server's access log, joined to the captured requests (repeatable).
    ///
    /// A file that does not exist yet is waited for; rotation is followed.
    #[arg(long = "access-log", value_name = "PATH", help_heading = "Access logs")]
    pub access_logs: Vec<PathBuf>,
    /// combined, common, vhost_combined, nginx or an Apache LogFormat.
    ///
    /// An Apache LogFormat string such as '%h %l %u %t "%r" %>s %b %D'. Default: detected from
    /// the first lines.
    #[arg(long, value_name = "FORMAT", help_heading = "Access logs")]
    pub log_format: Option<String>,
    /// Read the access logs from their beginning, not from the end.
    ///
    /// By default only lines written after memwatch attached are read.
    #[arg(long, help_heading = "Access logs")]
    pub log_from_start: bool,
    #[command(flatten)]
    pub fleet: FleetArgs,
}

/// Feeding the figures to what a fleet already runs (`docs/fleet.md`): Prometheus scrapes
/// `/metrics`, profiles are written for a continuous profiler or `go tool pprof`.
#[derive(Debug, Clone, Args)]
pub struct FleetArgs {
    /// Serve `/metrics` (OpenMetrics) on this address while recording.
    ///
    /// IP:PORT or HOST:PORT as --listen (docs/metrics.md); port 0 picks a free port. An address
    /// other than loopback needs --metrics-token.
    #[arg(long, value_name = "ADDR", value_parser = parse_listen,
          help_heading = "Page and metrics")]
    pub metrics: Option<SocketAddr>,
    /// Require this token on /metrics.
    ///
    /// As `Authorization: Bearer TOKEN`, which Prometheus's `authorization` scrape setting
    /// sends.
    #[arg(long, value_name = "TOKEN", env = "MEMWATCH_METRICS_TOKEN", hide_env_values = true,
          value_parser = parse_secret, help_heading = "Page and metrics")]
    pub metrics_token: Option<Secret>,
    /// Routes with series of their own on /metrics.
    ///
    /// Also `serve`'s; the routes past it are summed into the route `other`.
    #[arg(long, default_value_t = crate::views::metrics::DEFAULT_MAX_ROUTES, value_name = "N",
          value_parser = parse_max_routes, help_heading = "Page and metrics")]
    pub metrics_max_routes: usize,
    /// With --stacks: write a pprof profile into DIR every --pprof-every.
    ///
    /// One file per period, `memwatch-FROM-TO.pb.gz` (Unix seconds), for an uploader to pick
    /// up (written under a temporary name, then renamed).
    #[arg(
        long,
        value_name = "DIR",
        requires = "stacks",
        help_heading = "Page and metrics"
    )]
    pub pprof_dir: Option<PathBuf>,
    /// How long each periodic profile covers.
    #[arg(long, value_parser = parse_duration, default_value = "60s", value_name = "DURATION",
          requires = "pprof_dir", help_heading = "Page and metrics",
          allow_negative_numbers = true)]
    pub pprof_every: Duration,
    #[command(flatten, next_help_heading = "Page and metrics")]
    pub hosts: HostArgs,
}

impl FleetArgs {
    pub fn options(&self) -> Fleet {
        let Self {
            metrics,
            metrics_token,
            metrics_max_routes,
            pprof_dir,
            pprof_every,
            hosts,
        } = self.clone();
        Fleet {
            metrics,
            metrics_token,
            allow_hosts: hosts.allow_hosts,
            max_routes: metrics_max_routes,
            pprof: pprof_dir.map(|d| (d, pprof_every)),
        }
    }
}

fn parse_max_routes(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=10_000).contains(&n) => Ok(n),
        _ => Err(format!(
            "{s:?}: the route bound must be a number from 1 to 10000"
        )),
    }
}

impl RecordArgs {
    /// The options these arguments stand for.
    pub fn options(&self) -> RecordOptions {
        let Self {
            pids,
            output,
            force,
            duration,
            no_follow_forks,
            sample_interval,
            no_net,
            capture_bytes,
            ring_mib,
            routes,
            redact_query,
            access_logs,
            log_format,
            log_from_start,
            no_ebpf,
            no_heap,
            heap: _,
            heap_budget,
            stacks,
            stack_every,
            stack_rate,
            // Not the session's: `commands::record` serves and writes them.
            fleet: _,
            command,
        } = self.clone();
        RecordOptions {
            pids,
            command,
            output,
            force,
            duration,
            follow_forks: !no_follow_forks,
            sample_interval,
            net: !no_net,
            capture_bytes,
            ring_mib,
            routes,
            redact_query,
            access_logs,
            log_format,
            log_from_start,
            ebpf: !no_ebpf,
            heap: !no_heap && !no_ebpf,
            heap_budget,
            stack_every: stacks.then_some(stack_every),
            stack_rate,
        }
    }

    /// The options of a bare `memwatch record`: the defaults declared above, in one place, for
    /// commands that drive a recording themselves (`ci`).
    pub fn defaults() -> RecordOptions {
        #[derive(Parser)]
        struct Bare {
            #[command(flatten)]
            record: RecordArgs,
        }
        // Parsing no arguments cannot fail: every option has a default or is optional.
        Bare::try_parse_from(["record"])
            .map(|b| b.record.options())
            .unwrap_or_else(|e| unreachable!("defaults of `memwatch record` do not parse: {e}"))
    }
}

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A recording written by `memwatch record`.
    #[arg(value_name = "RECORDING")]
    pub file: PathBuf,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Also list each route's call sites by the memory they keep.
    ///
    /// For a recording made with `record --stacks`.
    #[arg(long)]
    pub stacks: bool,
    /// With --stacks: how many call sites to list per route.
    #[arg(long, default_value_t = 5, value_name = "N", requires = "stacks",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub stacks_top: u16,
}

/// A share of one core: `2%`, `0.5%` (or `2`, a percentage too), from 0.1% to 100%; returned
/// as a fraction.
pub fn parse_share(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let number = t.strip_suffix('%').unwrap_or(t).trim();
    match number.parse::<f64>() {
        Ok(p) if (0.1..=100.0).contains(&p) => Ok(p / 100.0),
        _ => Err(format!(
            "{s:?} is not a share of one core from 0.1% to 100% (2%, 0.5%); to follow no heap \
             at all, use --no-heap"
        )),
    }
}

/// The longest duration any option takes, in seconds (about 31 years).
pub const MAX_DURATION_SECS: u64 = 999_999_999;

/// Seconds as a number (`10`, `0.5`) or a duration with a unit (`500ms`, `2m`), greater than
/// zero and at most [`MAX_DURATION_SECS`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let too_long = || {
        format!(
            "{s:?} is longer than the longest duration memwatch takes, {MAX_DURATION_SECS} \
             seconds (about 31 years); give a shorter one, or none to stop with Ctrl-C"
        )
    };
    let d = match s.parse::<f64>() {
        Ok(secs) if secs.is_nan() => {
            return Err(format!(
                "{s:?} is not a duration; use e.g. 10, 1.5, 500ms or 2m"
            ));
        }
        Ok(secs) if secs < 0.0 => {
            return Err(format!(
                "{s:?} is negative: give a duration greater than zero (10, 1.5, 500ms, 2m)"
            ));
        }
        // `MAX_DURATION_SECS` is exact as an f64; infinity is above it.
        Ok(secs) if secs > MAX_DURATION_SECS as f64 => return Err(too_long()),
        Ok(secs) => Duration::from_secs_f64(secs),
        Err(_) => humantime::parse_duration(s)
            .map_err(|e| format!("{s:?} is not a duration ({e}); use e.g. 10, 1.5, 500ms or 2m"))?,
    };
    if d > Duration::from_secs(MAX_DURATION_SECS) {
        return Err(too_long());
    }
    if d.is_zero() {
        return Err(format!("{s:?}: the duration must be greater than zero"));
    }
    Ok(d)
}

/// The shortest `--sample-interval`.
pub const MIN_SAMPLE_INTERVAL: Duration = Duration::from_millis(10);

/// `--sample-interval`: a duration of at least [`MIN_SAMPLE_INTERVAL`].
pub fn parse_sample_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < MIN_SAMPLE_INTERVAL {
        return Err(format!(
            "{:?} is shorter than the shortest sample interval, 10ms: each sample reads /proc \
             for every traced process, and more than 100 samples a second cost the machine CPU \
             without showing more; give 10ms or more (the default is 100ms)",
            s.trim()
        ));
    }
    Ok(d)
}

/// A PID: a positive integer (whether it names a process is checked before recording).
pub fn parse_pid(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(pid) if pid > 0 => Ok(pid),
        _ => Err(format!(
            "PID must be a positive integer, got {s}; `pgrep NAME` or `ps -e` shows PIDs"
        )),
    }
}

/// An address to listen on: `IP:PORT`, or `HOST:PORT` with a name this machine resolves (its
/// first loopback address if it has one, as `localhost` does, else its first address).
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs as _;
    let t = s.trim();
    if let Ok(addr) = t.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let accepted = "give IP:PORT (127.0.0.1:7070, [::1]:7070, 0.0.0.0:7070) or HOST:PORT with a \
                    name this machine resolves (localhost:7070); port 0 picks a free port";
    let port_given = t
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !port_given {
        return Err(format!("{t:?} has no port: {accepted}"));
    }
    let addrs: Vec<SocketAddr> = match t.to_socket_addrs() {
        Ok(addrs) => addrs.collect(),
        Err(e) => return Err(format!("{t:?} does not resolve ({e}): {accepted}")),
    };
    addrs
        .iter()
        .find(|a| a.ip().is_loopback() && a.is_ipv4())
        .or_else(|| addrs.iter().find(|a| a.ip().is_loopback()))
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| format!("{t:?} resolves to no address: {accepted}"))
}

/// A byte count from 4 KiB to 1 GiB: a number, or with a unit (`64KiB`, `1MiB`, `4k`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit_bytes: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "{s:?} is not a size; use e.g. 65536, 64KiB or 1MiB"
            ));
        }
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size; use e.g. 65536, 64KiB or 1MiB"))?;
    let bytes = n.saturating_mul(unit_bytes);
    if !(4096..=1 << 30).contains(&bytes) {
        return Err(format!("{s:?}: the size must be from 4KiB to 1GiB"));
    }
    Ok(bytes)
}

fn parse_ring_mib(s: &str) -> Result<u32, String> {
    let n: u32 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of MiB"))?;
    if !(1..=1024).contains(&n) || !n.is_power_of_two() {
        return Err(format!(
            "{n} MiB: the ring buffer must be a power of two from 1 to 1024 MiB"
        ));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").unwrap_err().contains("\"soon\""));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("1m"), Ok(1 << 20));
        assert_eq!(
            parse_size("1k").unwrap_err(),
            "\"1k\": the size must be from 4KiB to 1GiB"
        );
        assert!(parse_size("lots").unwrap_err().contains("\"lots\""));
    }

    #[test]
    fn times() {
        let secs = |s: u64| Ok(TimeArg::FromStart(Duration::from_secs(s)));
        assert_eq!(parse_time("90"), secs(90));
        assert_eq!(parse_time("0"), secs(0));
        assert_eq!(parse_time("2m"), secs(120));
        assert_eq!(
            parse_time("1.5"),
            Ok(TimeArg::FromStart(Duration::from_millis(1500)))
        );
        assert_eq!(
            parse_time("2027-01-15T08:00:00Z"),
            Ok(TimeArg::At(1_800_000_000_000_000_000))
        );
        assert_eq!(
            parse_time("2027-01-15T09:00:00.5+01:00"),
            Ok(TimeArg::At(1_800_000_000_500_000_000))
        );
        for bad in ["-1", "soon", "2027-01-15"] {
            assert_eq!(
                parse_time(bad),
                Err(format!(
                    "{bad:?} is neither seconds from the recording's start (90, 1.5, 500ms, 2m) \
                     nor an RFC 3339 time (2026-05-19T08:00:00Z)"
                ))
            );
        }
        let later = TimeArg::FromStart(Duration::from_millis(1500));
        assert_eq!(later.resolve(Some(10)), Some(1_500_000_010));
        assert_eq!(later.resolve(None), None);
        assert_eq!(TimeArg::At(5).resolve(None), Some(5));
    }

    #[test]
    fn stacks_top_needs_stacks() {
        let report = |args: &[&str]| {
            Cli::try_parse_from([&["memwatch", "report", "r.db"], args].concat()).map(|cli| {
                match cli.command {
                    Command::Report(r) => (r.stacks, r.stacks_top),
                    other => unreachable!("{other:?}"),
                }
            })
        };
        assert_eq!(report(&[]).unwrap(), (false, 5));
        assert_eq!(report(&["--stacks"]).unwrap(), (true, 5));
        assert_eq!(
            report(&["--stacks", "--stacks-top", "3"]).unwrap(),
            (true, 3)
        );
        assert!(report(&["--stacks-top", "3"]).is_err());
        assert!(report(&["--stacks", "--stacks-top", "0"]).is_err());
    }

    #[test]
    fn ring_sizes() {
        assert_eq!(parse_ring_mib("8"), Ok(8));
        assert!(parse_ring_mib("3").is_err());
        assert!(parse_ring_mib("0").is_err());
    }

    #[test]
    fn record_defaults_are_the_cli_defaults() {
        let d = RecordArgs::defaults();
        assert_eq!(d.sample_interval, Duration::from_millis(100));
        assert_eq!((d.capture_bytes, d.ring_mib), (512, 8));
        assert!(d.follow_forks && d.net && d.ebpf && !d.force);
    }

    fn parse_error(args: &[&str]) -> String {
        match Cli::try_parse_from([&["memwatch"], args].concat()) {
            Ok(cli) => panic!("{args:?} parsed: {cli:?}"),
            Err(e) => {
                assert_eq!(e.exit_code(), crate::error::exit::INPUT, "{e}");
                e.to_string()
            }
        }
    }

    /// `-p -5` and `--duration -1` reach their parsers (clap would take `-5` for a flag and
    /// suggest `-- -5`, which starts a command).
    #[test]
    fn negative_numbers_are_values_and_refused() {
        assert!(parse_error(&["record", "-p", "-5"]).starts_with(
            "error: invalid value '-5' for '--pid <PID>': PID must be a positive integer, \
                 got -5; `pgrep NAME` or `ps -e` shows PIDs\n"
        ));
        assert!(
            parse_error(&["record", "-p", "1", "--duration", "-1"]).starts_with(
                "error: invalid value '-1' for '--duration <SECS>': \"-1\" is negative: give a \
                 duration greater than zero (10, 1.5, 500ms, 2m)\n"
            )
        );
        assert_eq!(
            parse_pid("0").unwrap_err(),
            "PID must be a positive integer, got 0; `pgrep NAME` or `ps -e` shows PIDs"
        );
        assert!(parse_pid("nginx").unwrap_err().contains("got nginx"));
        assert_eq!(parse_pid("42"), Ok(42));
    }

    #[test]
    fn durations_have_a_limit_and_intervals_a_floor() {
        let too_long = "\"1e9\" is longer than the longest duration memwatch takes, 999999999 \
                        seconds (about 31 years); give a shorter one, or none to stop with Ctrl-C";
        assert_eq!(parse_duration("1e9").unwrap_err(), too_long);
        assert!(parse_duration("inf").unwrap_err().contains("longer than"));
        assert!(
            parse_duration("NaN")
                .unwrap_err()
                .contains("is not a duration")
        );
        assert!(
            parse_duration("100years")
                .unwrap_err()
                .contains("longer than")
        );
        assert_eq!(
            parse_duration("999999999"),
            Ok(Duration::from_secs(MAX_DURATION_SECS))
        );
        assert_eq!(
            parse_sample_interval("1ns").unwrap_err(),
            "\"1ns\" is shorter than the shortest sample interval, 10ms: each sample reads /proc \
             for every traced process, and more than 100 samples a second cost the machine CPU \
             without showing more; give 10ms or more (the default is 100ms)"
        );
        assert_eq!(parse_sample_interval("10ms"), Ok(MIN_SAMPLE_INTERVAL));
    }

    #[test]
    fn listen_addresses_resolve_names() {
        let local = parse_listen("localhost:0").unwrap();
        assert!(local.ip().is_loopback() && local.port() == 0, "{local}");
        assert_eq!(
            parse_listen("[::1]:7070"),
            Ok(SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], 7070)))
        );
        assert_eq!(
            parse_listen("localhost").unwrap_err(),
            "\"localhost\" has no port: give IP:PORT (127.0.0.1:7070, [::1]:7070, 0.0.0.0:7070) \
             or HOST:PORT with a name this machine resolves (localhost:7070); port 0 picks a free \
             port"
        );
        assert!(parse_listen(":7070").unwrap_err().contains("has no port"));
    }

    /// Every help screen fits 100 columns, `record`'s options are grouped, the top level lists
    /// every exit code, and `pprof`'s usage tells its two files apart.
    #[test]
    fn help_is_grouped_short_and_complete() {
        use clap::CommandFactory;
        let mut cli = Cli::command();
        cli.build();
        let mut screens = vec![
            cli.clone().render_help().to_string(),
            cli.clone().render_long_help().to_string(),
        ];
        for sub in cli.get_subcommands() {
            screens.push(sub.clone().render_help().to_string());
            screens.push(sub.clone().render_long_help().to_string());
        }
        for screen in &screens {
            for line in screen.lines() {
                assert!(line.chars().count() <= HELP_WIDTH, "{line:?} in:\n{screen}");
            }
        }
        let record = cli
            .find_subcommand("record")
            .unwrap()
            .clone()
            .render_help()
            .to_string();
        for heading in [
            "Target:",
            "Output:",
            "What to follow:",
            "Access logs:",
            "Page and metrics:",
        ] {
            assert!(
                record.lines().any(|l| l == heading),
                "{heading} in:\n{record}"
            );
        }
        let top = cli.clone().render_help().to_string();
        use crate::error::exit;
        for code in [
            exit::OK,
            exit::REGRESSION,
            exit::INPUT,
            exit::ENVIRONMENT,
            exit::RUNTIME,
            exit::WRITE,
            exit::FORCED,
        ] {
            assert!(
                top.lines().any(|l| l.starts_with(&format!("  {code:<4} "))),
                "exit code {code} in:\n{top}"
            );
        }
        let pprof = cli
            .find_subcommand("pprof")
            .unwrap()
            .clone()
            .render_help()
            .to_string();
        assert!(
            pprof.contains("Usage: memwatch pprof [OPTIONS] --output <FILE> <RECORDING>"),
            "{pprof}"
        );
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
