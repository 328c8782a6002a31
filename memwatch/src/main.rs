//! The `memwatch` binary: parse, set up logging, run one subcommand, map errors to exit codes.

use clap::Parser as _;
use memwatch::{
    cli::{Cli, Command},
    commands::{self, exit_code},
    error::{exit, message},
};
use std::io::{IsTerminal as _, Write as _};
use tracing_subscriber::EnvFilter;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn main() {
    let cli = Cli::parse();
    let default = match cli.verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Colours only on a terminal: logs piped to a file or a journal stay plain text.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        // A log line that cannot be written (stderr closed: `2>&1 | head -1`) is dropped. By
        // default the subscriber reports that failure with `eprintln!`, which panics on the
        // same closed pipe, and memwatch would exit 101 mid-recording.
        .log_internal_errors(false)
        .init();
    let result = match cli.command {
        Command::Report(args) => commands::report::run(&args).map(|()| exit::OK),
        Command::Record(args) => runtime().and_then(|rt| {
            rt.block_on(commands::record::run(
                args.options(),
                None,
                args.fleet.options(),
            ))
        }),
        Command::Serve(args) => runtime().and_then(|rt| {
            rt.block_on(commands::record::run(
                args.record.options(),
                Some(args.serve.options(&args.record.fleet.hosts)),
                args.record.fleet.options(),
            ))
        }),
        Command::Profile(args) => commands::profile::profile(&args),
        Command::Pprof(args) => commands::pprof::run(&args),
        Command::Diff(args) => commands::profile::diff_command(&args),
        Command::Ci(args) => runtime().and_then(|rt| rt.block_on(commands::ci::run(args))),
        Command::View(args) => runtime().and_then(|rt| rt.block_on(commands::view::run(args))),
        Command::CalibrateHeap => memwatch::capture::probe::heap::calibrate::child_main(),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(err) => {
            // Not eprintln!: a closed stderr must not turn an error into a panic.
            let _ = writeln!(std::io::stderr(), "error: {}", message(&err));
            std::process::exit(exit_code(&err));
        }
    }
}
