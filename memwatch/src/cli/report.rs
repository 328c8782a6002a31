//! The arguments of the commands that read one recording: `report` and `pprof`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::parse::{TimeArg, parse_time};

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

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use crate::cli::{Cli, Command};

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
}
