//! memwatch's developer commands: `cargo xtask setup | build | run | demo | ebpf | test | page |
//! stress | fuzz | bench | dist`.
//!
//! Every command checks its prerequisites first (fast when present) and installs what is
//! missing, so a fresh Debian/Ubuntu machine needs nothing but Rust and this checkout. Building
//! and running memwatch needs stable Rust alone: the eBPF object is committed. Only `ebpf`, `test`
//! and `fuzz` need the kernel-side toolchain pinned in `[workspace.metadata.ebpf]`.
//!
//! `fuzz` runs every cargo-fuzz target in `fuzz/` (the HTTP stream parser, the access-log line
//! and LogFormat parsers, the recording reader, the profile JSON) for `--seconds N` or `--runs N`
//! each (with `--jobs N`, N processes per target), from the seeds in `fuzz/seeds/`, prints
//! executions, exec/s, coverage and crashes per target, and fails naming the crashing input. It
//! installs cargo-fuzz when missing; CI runs a short pass, and `docs/reliability.md` has the
//! figures of a long one.
//!
//! `dist` builds what a user installs: the release binary, its man pages and shell completions
//! (generated from the clap definition) and a .deb holding them (cargo-deb, installed when
//! missing); `--check-install` installs that .deb, checks it, and removes it (CI runs it).

mod demo;
mod dist;
mod ebpf;
mod fingerprint;
mod fuzz;
mod pin;
mod setup;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "xtask", about = "memwatch developer commands")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Install the kernel-side toolchain (idempotent): the pinned nightly with rust-src and
    /// clippy, LLVM, bpf-linker; with --test also the servers and load generators the tests use.
    Setup {
        #[arg(long)]
        test: bool,
    },
    /// Build memwatch in release (the committed eBPF object is embedded; stable Rust suffices).
    Build,
    /// Rebuild the eBPF object with the pinned toolchain and write it to memwatch-ebpf/object/;
    /// with --check, fail when the committed object differs from a fresh build.
    Ebpf {
        #[arg(long)]
        check: bool,
    },
    /// Build, then run memwatch: `--pid N` records process N and serves the live page;
    /// `-- ARGS` passes ARGS through.
    Run {
        #[arg(long)]
        pid: Option<u32>,
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Everything: formatting, clippy, the page's lint, type check and unit tests, unit tests
    /// and the privileged integration tests.
    Test {
        /// Extra arguments for the test harness (e.g. a test name filter; `runtimes::` for the
        /// tests of tests/tests/runtimes.rs).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// The page's script alone: its lint, type check and unit tests (no root, a few seconds;
    /// `test` runs them too).
    Page,
    /// The reliability tests in their long form (`MEMWATCH_STRESS=1`): the same tests `test`
    /// runs short, at the sizes docs/reliability.md reports.
    Stress {
        /// Extra arguments for the test harness; names (or parts of them) pick among the stress
        /// tests.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// A first look: the demo server under a mixed workload where one route leaks, recorded
    /// and served live at http://127.0.0.1:7070/.
    Demo {
        #[arg(long, default_value = "127.0.0.1:7070")]
        listen: String,
    },
    /// Fuzz every parser for a bounded time or number of executions (cargo-fuzz, libFuzzer;
    /// installed if missing); fails on any crash.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60, conflicts_with = "runs")]
        seconds: u64,
        /// Executions per target, instead of a time bound.
        #[arg(long)]
        runs: Option<u64>,
        /// Only this target (repeatable); all of them by default.
        #[arg(long = "target")]
        targets: Vec<String>,
        /// Build with AddressSanitizer (slower; for the C and unsafe code below the parsers).
        #[arg(long)]
        asan: bool,
        /// Fuzzing processes per target (libFuzzer's -fork=N): a run of N processes, which
        /// share one corpus and one count of executions.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
        jobs: u32,
    },
    /// Benchmarks; writes BENCHMARKS.md.
    Bench {
        #[arg(long)]
        quick: bool,
    },
    /// The release binary, man pages, shell completions and a .deb of them, in target/dist
    /// (installs cargo-deb and dpkg-dev when missing); prints the .deb's path.
    Dist {
        /// Then install the .deb (apt-get, as root), check `memwatch --version`, `man -w
        /// memwatch` and the completions, and remove it again.
        #[arg(long)]
        check_install: bool,
    },
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Runs a command in the workspace root, echoing it; fails with its exit status.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("+ {}", describe(cmd));
    let status = cmd
        .current_dir(root())
        .status()
        .with_context(|| format!("could not start {}", describe(cmd)))?;
    if !status.success() {
        bail!("{} failed with {status}", describe(cmd));
    }
    Ok(())
}

pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn build() -> anyhow::Result<()> {
    run(cargo().args(["build", "--release", "--bins"]))
}

/// Every binary the tests drive: memwatch, the demo server and the test crate's helpers (the test
/// crate is not a default member, so that a plain `cargo test` needs no root).
fn build_all() -> anyhow::Result<()> {
    run(cargo().args([
        "build",
        "--release",
        "--bins",
        "--workspace",
        "--exclude",
        "memwatch-ebpf",
    ]))
}

/// The README's test command: prerequisites, formatting, lints (the eBPF crate too, for its own
/// target, and the fuzz crate), the page's script checked and unit-tested, the committed eBPF
/// object against a fresh build, then every test.
fn test(args: &[String]) -> anyhow::Result<()> {
    let pin = pin::Pin::read()?;
    setup::ensure_ebpf(&pin)?;
    setup::ensure_test_tools()?;
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--release",
        "--all-targets",
        "--workspace",
        "--exclude",
        "memwatch-ebpf",
        "--",
        "-D",
        "warnings",
    ]))?;
    page_checks()?;
    // The eBPF crate is not a default member: it only builds for the BPF target.
    run(pin.ebpf_cargo("clippy").args(["--", "-D", "warnings"]))?;
    // The fuzz crate is a workspace of its own (cargo-fuzz), which the lint above does not
    // reach: linted here, so that a change to the types its targets build breaks this command
    // and not only CI's fuzz pass (about a minute and a half on a fresh clone).
    run(cargo()
        .args(["clippy", "--release", "--all-targets", "--manifest-path"])
        .arg(root().join("fuzz/Cargo.toml"))
        .arg("--target-dir")
        .arg(root().join("target/fuzz-clippy"))
        .args(["--", "-D", "warnings"]))?;
    ebpf::check(&pin)?;
    build_all()?;
    let mut cmd = cargo();
    cmd.args([
        "test",
        "--release",
        "--workspace",
        "--exclude",
        "memwatch-ebpf",
    ]);
    cmd.args(["--no-fail-fast", "--", "--test-threads", "2"]);
    cmd.args(args);
    cmd.env("MEMWATCH_BIN", root().join("target/release/memwatch"));
    run(&mut cmd)
}

/// The page's script (memwatch/assets, ES modules): ESLint, TypeScript's check of the JSDoc types
/// each module declares (`// @ts-check`), and the unit tests of its pure parts (tests/e2e/unit,
/// `node --test`). No browser and no root: the browser test is among the integration tests.
fn page_checks() -> anyhow::Result<()> {
    let bin = Path::new("tests/e2e/node_modules/.bin");
    run(Command::new(root().join(bin).join("eslint")).args([
        "-c",
        "tests/e2e/eslint.config.js",
        "memwatch/assets",
        "tests/e2e",
    ]))?;
    run(Command::new(root().join(bin).join("tsc")).args(["-p", "tests/e2e"]))?;
    let unit = Path::new("tests/e2e/unit");
    let mut tests = Vec::new();
    for entry in std::fs::read_dir(root().join(unit)).context("listing tests/e2e/unit")? {
        let name = entry?.file_name();
        if name.to_string_lossy().ends_with(".test.mjs") {
            tests.push(unit.join(name));
        }
    }
    tests.sort();
    run(Command::new("node").arg("--test").args(tests))
}

/// Modules of the test binary (`tests/tests/main.rs`) whose tests scale with `MEMWATCH_STRESS`:
/// `test` runs them short, `stress` long.
const STRESS_MODULES: &[&str] = &["durability::", "load::", "churn::"];

/// libtest's options that take a value as the next argument: that value is no name filter.
const TAKES_VALUE: &[&str] = &[
    "--skip",
    "--test-threads",
    "--format",
    "--color",
    "--logfile",
];

/// `cargo test` of the one integration-test binary, `tests/tests/main.rs`.
fn test_main() -> Command {
    let mut cmd = cargo();
    cmd.args([
        "test",
        "--release",
        "-p",
        "memwatch-tests",
        "--test",
        "main",
    ]);
    cmd
}

/// `cargo xtask stress`: the reliability tests at full size, one at a time (they load the
/// machine on purpose, and their figures are measured against a quiet one). Names given after
/// `--` pick among them (`stress -- ten_thousand`): libtest would run any test whose name holds
/// one, in every module, so the stress tests are listed, chosen here and run by exact name.
fn stress(args: &[String]) -> anyhow::Result<()> {
    let pin = pin::Pin::read()?;
    setup::ensure_ebpf(&pin)?;
    setup::ensure_test_tools()?;
    build_all()?;
    let (filters, options) = split_filters(args);
    let names = stress_tests(&filters)?;
    if names.is_empty() {
        bail!(
            "no stress test's name holds {}: they are the tests of {}",
            filters.join(" or "),
            STRESS_MODULES.join(", ")
        );
    }
    let mut cmd = test_main();
    cmd.args(["--", "--exact", "--test-threads", "1", "--nocapture"]);
    cmd.args(options).args(names);
    cmd.env("MEMWATCH_BIN", root().join("target/release/memwatch"));
    cmd.env("MEMWATCH_STRESS", "1");
    run(&mut cmd)
}

/// `args` for the test harness, split into name filters and options (with their values).
fn split_filters(args: &[String]) -> (Vec<String>, Vec<String>) {
    let (mut filters, mut options) = (Vec::new(), Vec::new());
    let mut args = args.iter();
    while let Some(a) = args.next() {
        if TAKES_VALUE.contains(&a.as_str()) {
            options.push(a.clone());
            options.extend(args.next().cloned());
        } else if a.starts_with('-') {
            options.push(a.clone());
        } else {
            filters.push(a.clone());
        }
    }
    (filters, options)
}

/// The stress tests' full names whose name holds one of `filters` (all of them when none).
fn stress_tests(filters: &[String]) -> anyhow::Result<Vec<String>> {
    let mut cmd = test_main();
    cmd.args(["--", "--list", "--format", "terse"]);
    eprintln!("+ {}", describe(&cmd));
    let out = cmd
        .current_dir(root())
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("could not list the tests")?;
    if !out.status.success() {
        bail!("listing the tests failed with {}", out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .filter(|name| STRESS_MODULES.iter().any(|m| name.starts_with(m)))
        .filter(|name| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .map(str::to_owned)
        .collect())
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc_geteuid() == 0 }
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Setup { test } => {
            setup::ensure_ebpf(&pin::Pin::read()?)?;
            if test {
                setup::ensure_test_tools()?;
            }
            Ok(())
        }
        Cmd::Build => build(),
        Cmd::Ebpf { check } => {
            let pin = pin::Pin::read()?;
            setup::ensure_ebpf(&pin)?;
            if check {
                ebpf::check(&pin)
            } else {
                ebpf::update(&pin)
            }
        }
        Cmd::Run { pid, args } => {
            build()?;
            let bin = root().join("target/release/memwatch");
            let mut argv: Vec<String> = Vec::new();
            if let Some(pid) = pid {
                argv.extend(["serve".into(), "-p".into(), pid.to_string()]);
            }
            argv.extend(args);
            if argv.is_empty() {
                bail!("nothing to run: pass --pid N, or memwatch arguments after `--`");
            }
            let mut cmd = if is_root() {
                Command::new(&bin)
            } else {
                // Build as the user, run the built binary with privileges.
                let mut c = Command::new("sudo");
                c.arg(&bin);
                c
            };
            cmd.args(&argv);
            eprintln!("+ {}", describe(&cmd));
            let status = cmd.status().context("could not start memwatch")?;
            std::process::exit(status.code().unwrap_or(1));
        }
        Cmd::Test { args } => test(&args),
        Cmd::Page => {
            setup::ensure_e2e()?;
            page_checks()
        }
        Cmd::Stress { args } => stress(&args),
        Cmd::Demo { listen } => {
            build()?;
            demo::run(&listen)
        }
        Cmd::Fuzz {
            seconds,
            runs,
            targets,
            asan,
            jobs,
        } => {
            let bound = runs.map_or(fuzz::Bound::Seconds(seconds), fuzz::Bound::Runs);
            fuzz::run(bound, &targets, asan, jobs)
        }
        Cmd::Dist { check_install } => dist::run_dist(check_install),
        Cmd::Bench { quick } => {
            setup::ensure_test_tools()?;
            build_all()?;
            let mut cmd = cargo();
            cmd.args([
                "run",
                "--release",
                "-p",
                "memwatch-tests",
                "--bin",
                "bench",
                "--",
            ]);
            if quick {
                cmd.arg("--quick");
            }
            run(&mut cmd)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_told_from_options_and_their_values() {
        let args: Vec<String> = ["hostile", "--skip", "kill", "--nocapture", "disk_full"]
            .map(String::from)
            .into();
        let (filters, options) = split_filters(&args);
        assert_eq!(filters, ["hostile", "disk_full"]);
        assert_eq!(options, ["--skip", "kill", "--nocapture"]);
    }
}
