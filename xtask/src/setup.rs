//! Prerequisites, installed idempotently. Each step says what it checks and what it does; where
//! it cannot install (not root, not Debian-like) it prints the exact commands instead.

use std::process::Command;

use anyhow::{Context as _, bail};

use crate::{describe, is_root, pin::Pin};

/// Debian packages the tests and benchmarks drive.
const TEST_PACKAGES: &[&str] = &[
    "nginx-light",
    "apache2-utils",
    "wrk",
    "bpftrace",
    "strace",
    "goaccess",
    "chromium",
    // The runtime tests: a Node.js http server, a Go net/http server, and Python's venv for
    // gunicorn and Flask. Go's `go tool pprof` also reads the profiles `memwatch pprof` writes
    // (a unit test, which fails without Go).
    "nodejs",
    "golang-go",
    "python3-venv",
    // A Rack app under puma's threads (Debian's ruby and puma).
    "ruby",
    "puma",
    "ruby-rack",
    // A HotSpot server (`com.sun.net.httpserver`), compiled with javac.
    "openjdk-17-jdk-headless",
    // The call-site tests build a C fixture with and without frame pointers.
    "gcc",
    "libc6-dev",
    // The metrics test scrapes `record --metrics` with a real Prometheus.
    "prometheus",
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

pub(crate) fn missing_packages(wanted: &[&str]) -> Vec<String> {
    wanted
        .iter()
        .filter(|p| {
            let status = output(Command::new("dpkg-query").args(["-W", "-f=${Status}", p]));
            !status.contains("install ok installed")
        })
        .map(|p| (*p).to_owned())
        .collect()
}

pub(crate) fn apt_install(packages: &[String]) -> anyhow::Result<()> {
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

/// The pinned nightly with the components the kernel side needs (`rust-src`: it builds core from
/// source; `clippy`: the tests lint it for its own target), installed when missing; then checks
/// that its LLVM is the pinned one, before anything is built with it.
pub(crate) fn ensure_toolchain(pin: &Pin) -> anyhow::Result<()> {
    step(&format!(
        "{} with rust-src and clippy (the kernel-side toolchain)",
        pin.toolchain
    ));
    let installed = output(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        &pin.toolchain,
        "--installed",
    ]));
    let has = |c: &str| installed.lines().any(|l| l.starts_with(c));
    if !has("rust-src") || !has("clippy") {
        crate::run(Command::new("rustup").args([
            "toolchain",
            "install",
            &pin.toolchain,
            "--profile",
            "minimal",
            "--component",
            "rust-src,clippy",
        ]))?;
    }
    let version = output(Command::new("rustup").args(["run", &pin.toolchain, "rustc", "-vV"]));
    let llvm = crate::pin::rustc_llvm_major(&version).with_context(|| {
        format!(
            "`rustup run {} rustc -vV` printed no LLVM version:\n{version}",
            pin.toolchain
        )
    })?;
    if llvm != pin.llvm {
        bail!(
            "the pinned toolchain does not fit together: {} uses LLVM {llvm}, but bpf-linker {} is \
             pinned with --features {} (LLVM {}), and bpf-linker cannot read bitcode from a newer \
             LLVM.\n  Fix: in [workspace.metadata.ebpf] of Cargo.toml, set `toolchain` to a dated \
             nightly toolchain whose LLVM major is {}; `rustup run nightly-YYYY-MM-DD rustc -vV | \
             grep LLVM` tells. Or set `llvm = {llvm}` with a bpf-linker release that supports it.",
            pin.toolchain,
            pin.bpf_linker,
            pin.linker_feature(),
            pin.llvm,
            pin.llvm,
        );
    }
    Ok(())
}

/// Everything `cargo xtask ebpf` needs to build the kernel side: the pinned nightly, LLVM's
/// development libraries and the pinned bpf-linker, with their LLVM majors checked against each
/// other before anything is built.
pub(crate) fn ensure_ebpf(pin: &Pin) -> anyhow::Result<()> {
    ensure_toolchain(pin)?;
    step(&format!(
        "LLVM {} development libraries (bpf-linker links against them)",
        pin.llvm
    ));
    let packages: Vec<String> = [
        format!("llvm-{}-dev", pin.llvm),
        format!("libpolly-{}-dev", pin.llvm),
        "libzstd-dev".to_owned(),
        "zlib1g-dev".to_owned(),
    ]
    .into();
    let wanted: Vec<&str> = packages.iter().map(String::as_str).collect();
    apt_install(&missing_packages(&wanted))?;
    ensure_linker(pin)?;
    step("kernel-side toolchain ready");
    Ok(())
}

/// The pinned bpf-linker: installed when absent; a bpf-linker of another release or built for
/// another LLVM stops setup with the command that replaces it (it may be another project's).
fn ensure_linker(pin: &Pin) -> anyhow::Result<()> {
    step(&format!(
        "bpf-linker {} built for LLVM {}",
        pin.bpf_linker, pin.llvm
    ));
    let Ok(path) = which::which("bpf-linker") else {
        let mut cmd = Command::new("cargo");
        cmd.args([
            "install",
            "bpf-linker",
            "--version",
            &pin.bpf_linker,
            "--no-default-features",
            "--features",
            &pin.linker_feature(),
        ])
        // Both variables: llvm-sys reads the first; bpf-linker's build script reads the second
        // and otherwise picks whatever llvm-config is first on PATH (often an older LLVM).
        .env(pin.llvm_sys_prefix_var(), pin.llvm_prefix())
        .env("LLVM_PREFIX", pin.llvm_prefix());
        crate::run(&mut cmd).with_context(|| {
            format!(
                "installing bpf-linker failed; the command was: {}",
                describe(&cmd)
            )
        })?;
        if which::which("bpf-linker").is_err() {
            bail!(
                "bpf-linker was installed but is not on PATH: add $CARGO_HOME/bin (usually \
                 ~/.cargo/bin) to PATH"
            );
        }
        return Ok(());
    };
    let version = output(Command::new(&path).arg("--version"));
    let version = version.trim().trim_start_matches("bpf-linker").trim();
    let llvm = crate::pin::linker_llvm_major(&output(Command::new("ldd").arg(&path)));
    let right_version = version == pin.bpf_linker;
    let right_llvm = llvm.is_none_or(|v| v == pin.llvm);
    if right_version && right_llvm {
        if llvm.is_none() {
            eprintln!(
                "setup: could not tell which LLVM {} links against (no libLLVM in ldd's \
                 output); assuming LLVM {}",
                path.display(),
                pin.llvm
            );
        }
        return Ok(());
    }
    let found = match llvm {
        Some(v) => format!("bpf-linker {version} built for LLVM {v}"),
        None => format!("bpf-linker {version}"),
    };
    bail!(
        "{} is {found}, but memwatch's kernel side is pinned to {} with LLVM {} and needs bpf-linker \
         {} built for LLVM {} (otherwise the link fails with `Invalid record`).\n  Fix: {}",
        path.display(),
        pin.toolchain,
        pin.llvm,
        pin.bpf_linker,
        pin.llvm,
        pin.install_linker_command(),
    );
}

/// Everything the test suite (and the benchmarks) drive: servers, load generators, peer tools,
/// the browser tests' npm packages, and the Python runtime tests' packages.
pub(crate) fn ensure_test_tools() -> anyhow::Result<()> {
    step("servers and load generators for the tests (nginx, ab, wrk, bpftrace, strace, go)");
    apt_install(&missing_packages(TEST_PACKAGES))?;
    ensure_e2e()?;
    ensure_python_runtime()
}

/// gunicorn, Flask, Starlette and uvicorn from PyPI, pinned in tests/fixtures/runtimes/requirements.txt, in a venv
/// under target/ (the tests find it there).
fn ensure_python_runtime() -> anyhow::Result<()> {
    step("gunicorn, Flask, Starlette and uvicorn for the runtime tests (target/runtimes/venv)");
    let root = crate::root();
    let venv = root.join("target/runtimes/venv");
    let requirements = root.join("tests/fixtures/runtimes/requirements.txt");
    let stamp = venv.join("requirements.txt");
    let wanted = std::fs::read(&requirements)
        .with_context(|| format!("reading {}", requirements.display()))?;
    if std::fs::read(&stamp).is_ok_and(|have| have == wanted) {
        return Ok(());
    }
    // Debian's own python3, not whatever python3 comes first on PATH (a version manager's shim
    // would hide the real interpreter from the tests).
    let python = if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    crate::run(
        Command::new(python)
            .args(["-m", "venv", "--clear"])
            .arg(&venv),
    )?;
    crate::run(
        Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "--disable-pip-version-check", "-r"])
            .arg(&requirements),
    )?;
    std::fs::write(&stamp, wanted).with_context(|| format!("writing {}", stamp.display()))?;
    Ok(())
}

/// cargo-fuzz, for `cargo xtask fuzz`.
pub(crate) fn ensure_cargo_fuzz() -> anyhow::Result<()> {
    step("cargo-fuzz");
    if !quiet(Command::new("cargo").args(["fuzz", "--version"])) {
        crate::run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    Ok(())
}

/// The cargo-deb release `cargo xtask dist` installs when cargo-deb is missing.
const CARGO_DEB: &str = "3.8.0";

/// What `cargo xtask dist` needs besides Rust: cargo-deb (pinned, installed when missing), and
/// dpkg-dev, whose dpkg-shlibdeps computes the .deb's library dependencies (`depends = "$auto"`).
pub(crate) fn ensure_dist_tools() -> anyhow::Result<()> {
    step("dpkg-dev (dpkg-shlibdeps, for the .deb's dependencies)");
    apt_install(&missing_packages(&["dpkg-dev"]))?;
    step(&format!("cargo-deb {CARGO_DEB}"));
    let version = output(Command::new("cargo").args(["deb", "--version"]));
    if version.trim().is_empty() {
        let spec = format!("cargo-deb@{CARGO_DEB}");
        crate::run(Command::new("cargo").args(["install", "--locked", &spec]))?;
        if !quiet(Command::new("cargo").args(["deb", "--version"])) {
            bail!(
                "cargo-deb was installed but `cargo deb` does not run: add $CARGO_HOME/bin \
                 (usually ~/.cargo/bin) to PATH"
            );
        }
    } else if !version.contains(CARGO_DEB) {
        // Another project's cargo-deb is left alone: its manifest format is stable across
        // releases. Say so, since the .deb's layout was checked with the pinned one.
        eprintln!(
            "setup: using the installed {} (memwatch's .deb was checked with cargo-deb \
             {CARGO_DEB}; `cargo install --locked cargo-deb@{CARGO_DEB}` installs that one)",
            version.trim()
        );
    }
    Ok(())
}

/// The npm packages of tests/e2e, pinned in its package-lock.json: playwright-core for the browser
/// tests; ESLint, TypeScript and uPlot's types for the page's lint and type check. Installed again
/// whenever the lock file differs from the one they were installed from (a copy kept in
/// node_modules), so that a package added to it reaches every checkout.
pub(crate) fn ensure_e2e() -> anyhow::Result<()> {
    step("npm packages for the page's checks and browser tests (tests/e2e)");
    let dir = crate::root().join("tests/e2e");
    let lock = dir.join("package-lock.json");
    let stamp = dir.join("node_modules/.memwatch-package-lock.json");
    let wanted = std::fs::read(&lock).with_context(|| format!("reading {}", lock.display()))?;
    if std::fs::read(&stamp).is_ok_and(|have| have == wanted) {
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
    std::fs::write(&stamp, wanted).with_context(|| format!("writing {}", stamp.display()))?;
    Ok(())
}
