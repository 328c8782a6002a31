//! The arguments of the commands that compare runs: `profile` (a recording's per-route
//! figures), `diff` (two of them, against thresholds) and `ci` (a traced server, a workload and
//! a baseline).

use std::{path::PathBuf, time::Duration};

use clap::{Args, ValueEnum};

use super::parse::parse_duration;
use crate::views::profile::{Metric, Thresholds};

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
