//! `record`'s arguments, which `serve` takes too, with what a fleet takes while recording
//! (`/metrics`, periodic pprof files), turned into the session's `RecordOptions` and the
//! views' `Fleet`.

use std::{ffi::OsString, net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser};

use super::{
    HostArgs, PageArgs,
    parse::{
        parse_duration, parse_listen, parse_max_routes, parse_pid, parse_ring_mib,
        parse_sample_interval, parse_secret, parse_share, parse_size,
    },
};
use crate::{private::Secret, session::RecordOptions, views::fleet::Fleet};

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten, next_help_heading = "Page and metrics")]
    pub serve: PageArgs,
    #[command(flatten)]
    pub record: RecordArgs,
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
    /// Count each BPF program's runs and run time, for memwatch's own cost.
    ///
    /// Turns the kernel's BPF statistics on while recording (as `sysctl
    /// kernel.bpf_stats_enabled=1` does: every BPF program on the machine then pays a clock read
    /// per run); the report lists what each of memwatch's programs cost.
    #[arg(long, help_heading = "What to follow")]
    pub bpf_stats: bool,
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
            bpf_stats,
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
            bpf_stats,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_defaults_are_the_cli_defaults() {
        let d = RecordArgs::defaults();
        assert_eq!(d.sample_interval, Duration::from_millis(100));
        assert_eq!((d.capture_bytes, d.ring_mib), (512, 8));
        assert!(d.follow_forks && d.net && d.ebpf && !d.force);
    }
}
