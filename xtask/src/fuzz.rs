//! `cargo xtask fuzz`: every cargo-fuzz target in `fuzz/`, for a bounded time or a number of
//! executions each, then a table of what each run did. Fails when any target crashed.
//!
//! Each target starts from its committed seeds, `fuzz/seeds/TARGET/`, copied into
//! `fuzz/corpus/TARGET/`, where libFuzzer also keeps what it adds (not committed; it speeds up the
//! next run on the same machine). A crashing input is written to `fuzz/artifacts/TARGET/`; fix the
//! bug and make the input a unit test next to the code (see `docs/reliability.md`).

use std::{
    io::{BufRead as _, BufReader},
    process::Stdio,
    time::Instant,
};

use anyhow::{Context as _, bail};

use crate::{describe, pin::Pin, root, setup};

/// A cargo-fuzz target in fuzz/.
pub(crate) struct Target {
    pub name: &'static str,
    /// Longest input libFuzzer makes (its default is 4096 bytes).
    pub max_len: Option<usize>,
}

/// One target per parser that reads hostile input. Every target is built with debug
/// assertions, so that an arithmetic overflow is a crash, not a wrong figure.
///
/// `accesslog_line` inputs are a few lines: every line goes through eight formats and
/// detection, so 4 KiB inputs run at a fifth of the speed and find nothing more.
pub(crate) const TARGETS: &[Target] = &[
    Target {
        name: "http_stream",
        max_len: None,
    },
    Target {
        name: "accesslog_line",
        max_len: Some(1024),
    },
    Target {
        name: "accesslog_format",
        max_len: None,
    },
    Target {
        name: "recording",
        max_len: None,
    },
    Target {
        name: "profile_json",
        max_len: None,
    },
];

/// How long each target runs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Bound {
    Seconds(u64),
    Runs(u64),
}

/// What one target's run did, read from libFuzzer's output.
#[derive(Debug, Default)]
struct Outcome {
    target: String,
    runs: u64,
    wall_s: f64,
    cov: Option<u64>,
    ft: Option<u64>,
    /// Inputs libFuzzer wrote because they crashed (or leaked, or timed out).
    artifacts: Vec<String>,
    /// The run failed without a crash input (a build failure, say).
    failed: Option<String>,
}

impl Outcome {
    /// Reads one line of libFuzzer's output.
    fn read(&mut self, line: &str) {
        if let Some(n) = field(line, "cov:") {
            self.cov = Some(n);
        }
        if let Some(n) = field(line, "ft:") {
            self.ft = Some(n);
        }
        if let Some(n) = line
            .strip_prefix("stat::number_of_executed_units:")
            .and_then(|v| v.trim().parse().ok())
        {
            self.runs = n;
        }
        // Fork mode (`--jobs`) prints neither of those: its status lines (`#N: cov: ...`)
        // count the executions of all its processes, and its last line says how many.
        if let Some(n) = line
            .strip_prefix('#')
            .and_then(|rest| rest.split(':').next())
            .and_then(|v| v.parse().ok())
        {
            self.runs = self.runs.max(n);
        }
        if let Some(n) = line
            .strip_prefix("INFO: fuzzed for ")
            .and_then(|rest| rest.strip_suffix(" iterations, wrapping up soon"))
            .and_then(|v| v.parse().ok())
        {
            self.runs = self.runs.max(n);
        }
        if let Some(rest) = line.strip_prefix("Done ")
            && let Some(n) = rest.split_whitespace().next().and_then(|v| v.parse().ok())
        {
            self.runs = self.runs.max(n);
        }
        if let Some((_, path)) = line.split_once("Test unit written to ") {
            self.artifacts.push(path.trim().to_owned());
        }
    }

    fn exec_per_s(&self) -> f64 {
        if self.wall_s > 0.0 {
            self.runs as f64 / self.wall_s
        } else {
            0.0
        }
    }
}

/// The number after `name` in a libFuzzer status line (`#1024 NEW cov: 812 ft: 2301 ...`).
fn field(line: &str, name: &str) -> Option<u64> {
    if !line.starts_with('#') {
        return None;
    }
    let mut words = line.split_whitespace();
    words.find(|w| *w == name)?;
    words.next()?.parse().ok()
}

/// Runs the targets (all of them when `only` is empty), prints the table, and fails on a crash.
pub(crate) fn run(bound: Bound, only: &[String], asan: bool, jobs: u32) -> anyhow::Result<()> {
    let names: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
    for name in only {
        if !names.contains(&name.as_str()) {
            bail!(
                "no fuzz target {name:?}; the targets are {}",
                names.join(", ")
            );
        }
    }
    // cargo-fuzz needs a nightly toolchain: the dated one pinned for the kernel side.
    let pin = Pin::read()?;
    setup::ensure_toolchain(&pin)?;
    setup::ensure_cargo_fuzz()?;
    let fuzz = root().join("fuzz");
    let mut outcomes = Vec::new();
    for &Target {
        name: target,
        max_len,
    } in TARGETS
        .iter()
        .filter(|t| only.is_empty() || only.iter().any(|o| o == t.name))
    {
        // libFuzzer writes what it finds into its corpus directory: give it a copy of the seeds
        // there, never the committed seeds themselves.
        let corpus = fuzz.join("corpus").join(target);
        let seeds = fuzz.join("seeds").join(target);
        std::fs::create_dir_all(&corpus)
            .with_context(|| format!("creating {}", corpus.display()))?;
        for seed in std::fs::read_dir(&seeds)
            .with_context(|| format!("reading the seeds in {}", seeds.display()))?
        {
            let seed = seed.with_context(|| format!("reading {}", seeds.display()))?;
            let copy = corpus.join(seed.file_name());
            std::fs::copy(seed.path(), &copy)
                .with_context(|| format!("copying a seed to {}", copy.display()))?;
        }
        let mut cmd = pin.cargo();
        // No sanitizer by default: the code under test is safe Rust, whose failures (panics,
        // overflow, runaway memory or time) libFuzzer sees without one, two to three times
        // faster; --asan adds AddressSanitizer for the C and unsafe code below (SQLite,
        // httparse's SIMD).
        cmd.args([
            "fuzz",
            "run",
            "--sanitizer",
            if asan { "address" } else { "none" },
        ]);
        cmd.arg("--debug-assertions")
            .arg(target)
            .arg(&corpus)
            .arg("--")
            .arg(match bound {
                Bound::Seconds(s) => format!("-max_total_time={s}"),
                Bound::Runs(n) => format!("-runs={n}"),
            })
            .arg("-print_final_stats=1")
            .args(max_len.map(|n| format!("-max_len={n}")))
            // libFuzzer's fork mode: one parent, N fuzzing children, one corpus, and a bound
            // on the executions (or time) of them all.
            .args((jobs > 1).then(|| format!("-fork={jobs}")))
            .current_dir(&fuzz)
            .stderr(Stdio::piped());
        eprintln!("+ (in fuzz/) {}", describe(&cmd));
        let mut started = Instant::now();
        let mut child = cmd.spawn().context("could not start cargo fuzz")?;
        let mut outcome = Outcome {
            target: target.to_owned(),
            ..Outcome::default()
        };
        if let Some(stderr) = child.stderr.take() {
            for line in BufReader::new(stderr).lines() {
                let line = line.context("reading cargo fuzz's output")?;
                eprintln!("{line}");
                // The build is over when libFuzzer starts: time the fuzzing alone.
                if line.starts_with("INFO: Seed:") {
                    started = Instant::now();
                }
                outcome.read(&line);
            }
        }
        let status = child.wait().context("waiting for cargo fuzz")?;
        outcome.wall_s = started.elapsed().as_secs_f64();
        if !status.success() && outcome.artifacts.is_empty() {
            outcome.failed = Some(format!("cargo fuzz run {target} failed with {status}"));
        }
        outcomes.push(outcome);
    }
    print_table(&outcomes);
    let failures: Vec<String> = outcomes
        .iter()
        .flat_map(|o| {
            o.artifacts
                .iter()
                .map(move |a| format!("{} crashed: {a}", o.target))
                .chain(o.failed.clone())
        })
        .collect();
    if !failures.is_empty() {
        bail!("fuzzing failed:\n  {}", failures.join("\n  "));
    }
    Ok(())
}

fn print_table(outcomes: &[Outcome]) {
    let show = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    eprintln!();
    eprintln!(
        "{:<18} {:>12} {:>9} {:>9} {:>7} {:>8} {:>8}",
        "target", "executions", "wall s", "exec/s", "cov", "ft", "crashes"
    );
    for o in outcomes {
        eprintln!(
            "{:<18} {:>12} {:>9.0} {:>9.0} {:>7} {:>8} {:>8}",
            o.target,
            o.runs,
            o.wall_s,
            o.exec_per_s(),
            show(o.cov),
            show(o.ft),
            if o.failed.is_some() {
                "failed".to_owned()
            } else {
                o.artifacts.len().to_string()
            }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libfuzzer_output() {
        let mut o = Outcome::default();
        for line in [
            "#2\tINITED cov: 10 ft: 11 corp: 1/1b exec/s: 0 rss: 30Mb",
            "#1048576\tpulse  cov: 812 ft: 2301 corp: 90/4Kb lim: 4096 exec/s: 9000 rss: 80Mb",
            "Done 10000000 runs in 1111 second(s)",
            "stat::number_of_executed_units: 10000000",
            "artifact_prefix='/x/'; Test unit written to /x/crash-abc",
        ] {
            o.read(line);
        }
        assert_eq!((o.cov, o.ft, o.runs), (Some(812), Some(2301), 10_000_000));
        assert_eq!(o.artifacts, ["/x/crash-abc"]);
    }

    #[test]
    fn reads_fork_mode_output() {
        let mut o = Outcome::default();
        for line in [
            "INFO: -fork=2: 5 seed inputs, starting to fuzz in /tmp/libFuzzerTemp.x.dir",
            "#147501: cov: 832 ft: 1233 corp: 5 exec/s: 73750 oom/timeout/crash: 0/0/0 time: 2s \
             job: 1 dft_time: 0",
            "#418417: cov: 1465 ft: 3715 corp: 530 exec/s: 90305 oom/timeout/crash: 0/0/0 \
             time: 3s job: 2 dft_time: 0",
            "INFO: fuzzed for 418417 iterations, wrapping up soon",
            "INFO: exiting: 0 time: 3s",
        ] {
            o.read(line);
        }
        assert_eq!((o.cov, o.ft, o.runs), (Some(1465), Some(3715), 418_417));
        assert!(o.artifacts.is_empty());
    }
}
