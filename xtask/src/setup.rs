//! Prerequisites, installed idempotently. Each step says what it checks and what it does; where
//! it cannot install (not root, not Debian-like) it prints the exact commands instead.

use std::process::Command;

use anyhow::{Context as _, bail};

use crate::{describe, is_root};

/// bpf-linker pinned to the release that links against LLVM 22 (nightly's LLVM).
const BPF_LINKER_VERSION: &str = "0.13.0";
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
/// Debian packages the eBPF build needs.
const BUILD_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
];
/// Debian packages the tests and benchmarks drive.
const TEST_PACKAGES: &[&str] = &[
    "nginx-light",
    "apache2-utils",
    "wrk",
    "bpftrace",
    "strace",
    "goaccess",
    "chromium",
];

fn quiet(cmd: &mut Command) -> bool {
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn output(cmd: &mut Command) -> String {
    cmd.output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn step(name: &str) {
    eprintln!("setup: {name}");
}

fn missing_packages(wanted: &[&str]) -> Vec<String> {
    wanted
        .iter()
        .filter(|p| {
            let status = output(Command::new("dpkg-query").args(["-W", "-f=${Status}", p]));
            !status.contains("install ok installed")
        })
        .map(|p| (*p).to_owned())
        .collect()
}

fn apt_install(packages: &[String]) -> anyhow::Result<()> {
    if packages.is_empty() {
        return Ok(());
    }
    let debian_like = std::path::Path::new("/usr/bin/apt-get").exists();
    if !debian_like || !is_root() {
        let sudo = if is_root() { "" } else { "sudo " };
        bail!(
            "missing packages: {}.\n  Install them with:\n    {sudo}apt-get update && {sudo}apt-get \
             install -y {}\n  then run this command again",
            packages.join(" "),
            packages.join(" ")
        );
    }
    crate::run(Command::new("apt-get").args(["update", "-q"]))?;
    crate::run(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// Makes sure everything the build (and, with `test`, the test suite) needs is installed.
pub fn ensure(test: bool) -> anyhow::Result<()> {
    step("nightly toolchain with rust-src (the eBPF crate builds core from source)");
    let installed = output(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]));
    if !installed.lines().any(|l| l.starts_with("rust-src")) {
        crate::run(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
        crate::run(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))?;
    }

    if test && !installed.lines().any(|l| l.starts_with("clippy")) {
        step("nightly clippy (the tests lint the eBPF crate for its own target)");
        crate::run(Command::new("rustup").args([
            "component",
            "add",
            "clippy",
            "--toolchain",
            "nightly",
        ]))?;
    }

    step("LLVM 22 development libraries (bpf-linker links against them)");
    let mut packages = missing_packages(BUILD_PACKAGES);
    if test {
        step("servers and load generators for the tests (nginx, ab, wrk, bpftrace, strace)");
        packages.extend(missing_packages(TEST_PACKAGES));
    }
    apt_install(&packages)?;

    if test {
        ensure_e2e()?;
    }

    step(&format!("bpf-linker {BPF_LINKER_VERSION}"));
    let version = output(Command::new("bpf-linker").arg("--version"));
    if !version.contains(BPF_LINKER_VERSION) {
        let mut cmd = Command::new("cargo");
        cmd.args([
            "install",
            "bpf-linker",
            "--version",
            BPF_LINKER_VERSION,
            "--no-default-features",
            "--features",
            "llvm-22",
            "--force",
        ])
        // Both variables: llvm-sys reads the first; bpf-linker's build script reads the second
        // and otherwise picks whatever llvm-config is first on PATH (often an older LLVM).
        .env("LLVM_SYS_221_PREFIX", LLVM_PREFIX)
        .env("LLVM_PREFIX", LLVM_PREFIX);
        crate::run(&mut cmd).with_context(|| {
            format!(
                "installing bpf-linker failed; the command was: {}",
                describe(&cmd)
            )
        })?;
    }
    if !quiet(Command::new("bpf-linker").arg("--version")) {
        bail!("bpf-linker is installed but not on PATH: add ~/.cargo/bin to PATH");
    }
    step("ready");
    Ok(())
}

/// cargo-fuzz, for `cargo xtask fuzz`.
pub fn ensure_cargo_fuzz() -> anyhow::Result<()> {
    step("cargo-fuzz");
    if !quiet(Command::new("cargo").args(["fuzz", "--version"])) {
        crate::run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    Ok(())
}

/// The browser tests' npm packages (playwright-core, pinned in tests/e2e/package-lock.json).
fn ensure_e2e() -> anyhow::Result<()> {
    step("npm packages for the browser tests (tests/e2e)");
    let dir = crate::root().join("tests/e2e");
    if dir.join("node_modules/playwright-core").is_dir() {
        return Ok(());
    }
    if !quiet(Command::new("npm").arg("--version")) {
        apt_install(&["nodejs".to_owned(), "npm".to_owned()])?;
    }
    let mut cmd = Command::new("npm");
    cmd.args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir);
    eprintln!("+ (in tests/e2e) {}", describe(&cmd));
    let status = cmd.status().context("could not start npm")?;
    if !status.success() {
        bail!("npm ci in tests/e2e failed with {status}");
    }
    Ok(())
}
