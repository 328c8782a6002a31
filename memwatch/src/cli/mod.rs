//! The command line, and nothing else: clap types that turn arguments into the plain option
//! structs of the session and the views. Every option is validated here or in the session's
//! preflight, before anything is loaded.
//!
//! This file holds the top level (`Cli`, `Command`, the help's width and exit codes); each
//! command family's arguments have a file (`record.rs`: record and serve; `page.rs`: the page's
//! and view's; `report.rs`: report and pprof; `compare.rs`: profile, diff and ci), and the value
//! parsers theirs (`parse.rs`).

mod compare;
mod page;
mod parse;
mod record;
mod report;

use clap::{Parser, Subcommand};

pub use compare::{CiArgs, DiffArgs, DiffFormat, MetricArg, ProfileArgs, ThresholdArgs};
pub use page::{HostArgs, PageArgs, ViewArgs};
pub use parse::{
    MAX_DURATION_SECS, MIN_SAMPLE_INTERVAL, TimeArg, parse_duration, parse_listen, parse_pid,
    parse_sample_interval, parse_share, parse_size, parse_time,
};
pub use record::{FleetArgs, RecordArgs, ServeArgs};
pub use report::{Format, PprofArgs, ReportArgs};

/// Help is wrapped at this many columns at most (fewer on a narrower terminal).
const HELP_WIDTH: usize = 100;

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

#[cfg(test)]
mod tests {
    use super::*;

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
