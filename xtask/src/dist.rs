//! `cargo xtask dist`: the release binary, its man pages and shell completions, and the .deb
//! that installs them; with `--check-install`, installs that .deb on this machine, checks what it
//! installed, and removes it again.
//!
//! The man pages and completions come from memwatch's own clap definition, through the
//! `dist-files` example of the memwatch crate (its doc comment says why an example). The .deb's
//! contents are listed in `[package.metadata.deb]` of `memwatch/Cargo.toml`.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, bail};

use crate::{cargo, describe, is_root, root, run, setup};

/// Where the generated files and the .deb go, relative to the workspace root (the asset paths in
/// `memwatch/Cargo.toml` name the same directory).
const DIST: &str = "target/dist";

/// The installed paths `--check-install` expects, besides the binary and the man pages.
const COMPLETIONS: &[&str] = &[
    "/usr/share/bash-completion/completions/memwatch",
    "/usr/share/zsh/vendor-completions/_memwatch",
    "/usr/share/fish/vendor_completions.d/memwatch.fish",
];

pub(crate) fn run_dist(check_install: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    setup::ensure_dist_tools()?;
    let dist = root().join(DIST);
    run(cargo().args([
        "build",
        "--release",
        "-p",
        "memwatch",
        "--bin",
        "memwatch",
        "--example",
        "dist-files",
    ]))?;
    run(Command::new(root().join("target/release/examples/dist-files")).arg(&dist))?;
    let deb = build_deb(&dist)?;
    let size = std::fs::metadata(&deb)
        .with_context(|| {
            format!(
                "cargo deb said it wrote {}, which cannot be read",
                deb.display()
            )
        })?
        .len();
    eprintln!(
        "dist: built in {:.0} s: man pages in {DIST}/man, completions in {DIST}/completions",
        started.elapsed().as_secs_f64()
    );
    eprintln!("dist: {} ({} KiB)", deb.display(), size.div_ceil(1024));
    if check_install {
        check_install_deb(&deb)?;
    }
    // The .deb's path alone on stdout, for scripts.
    println!("{}", deb.display());
    Ok(())
}

/// Runs cargo-deb on the binary built above (`--no-build`: one build, ours) and returns the path
/// of the .deb, which cargo-deb prints last on stdout.
fn build_deb(dist: &Path) -> anyhow::Result<PathBuf> {
    let mut cmd = cargo();
    cmd.args(["deb", "-p", "memwatch", "--no-build", "--output"])
        .arg(dist)
        .current_dir(root());
    eprintln!("+ {}", describe(&cmd));
    let out = cmd
        .output()
        .with_context(|| format!("could not start {}", describe(&cmd)))?;
    // cargo-deb warns about every asset under ../target/ that it will not build (they are built
    // above, on purpose); those warnings are dropped, anything else it says is passed on.
    for line in String::from_utf8_lossy(&out.stderr).lines() {
        let ours = line.contains("Only source paths starting with exactly 'target/release/'")
            && line.contains(&format!("'../{DIST}/"));
        if !ours {
            eprintln!("{line}");
        }
    }
    if !out.status.success() {
        bail!(
            "{} failed with {}; its messages are above. `cargo xtask dist` installs cargo-deb \
             itself; if it is an old one, `cargo install --locked cargo-deb@<version in \
             xtask/src/setup.rs>` replaces it",
            describe(&cmd),
            out.status
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let path = stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.ends_with(".deb"))
        .with_context(|| {
            format!(
                "{} printed no .deb path on stdout; it printed: {stdout:?}",
                describe(&cmd)
            )
        })?;
    Ok(root().join(path))
}

/// Installs the .deb with apt-get, checks the binary, its version, the man pages and the
/// completions, then removes the package whatever the checks said, so that the machine is left
/// as it was. Refuses to start when a memwatch is installed already (the removal would take it).
fn check_install_deb(deb: &Path) -> anyhow::Result<()> {
    eprintln!("dist: checking that {} installs and works", deb.display());
    if !is_root() {
        bail!(
            "--check-install installs the .deb with apt-get and needs root; run `cargo xtask dist \
             --check-install` as root, or install it yourself: sudo apt-get install {}",
            deb.display()
        );
    }
    let status =
        capture(Command::new("dpkg-query").args(["-W", "-f=${Status} ${Version}", "memwatch"]));
    if status.contains("install ok installed") {
        bail!(
            "a memwatch package is installed already ({status}); the check would replace it and \
             then remove it. Remove it first (apt-get remove memwatch), or run `cargo xtask dist` \
             without --check-install"
        );
    }
    if Path::new("/usr/bin/memwatch").exists() {
        bail!(
            "/usr/bin/memwatch exists and belongs to no package; installing the .deb would \
             overwrite it and removing it would delete it. Move it away first, or run `cargo \
             xtask dist` without --check-install"
        );
    }
    setup::apt_install(&setup::missing_packages(&["man-db"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .arg(deb)
        .env("DEBIAN_FRONTEND", "noninteractive"))
    .with_context(|| format!("installing {} failed", deb.display()))?;
    let checked = check_installed();
    let removed = run(Command::new("apt-get")
        .args(["purge", "-y", "-q", "memwatch"])
        .env("DEBIAN_FRONTEND", "noninteractive"))
    .context("removing the memwatch package after the check failed; remove it with: apt-get purge memwatch");
    checked?;
    removed?;
    eprintln!("dist: the .deb installs, runs, has its man pages and completions, and was removed");
    Ok(())
}

/// The checks on the installed package; the first failure says what is missing and why.
fn check_installed() -> anyhow::Result<()> {
    let out = Command::new("/usr/bin/memwatch")
        .arg("--version")
        .output()
        .context("the .deb installed no runnable /usr/bin/memwatch")?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() {
        bail!(
            "/usr/bin/memwatch --version failed with {}: {version:?} {:?}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    eprintln!("dist: /usr/bin/memwatch --version: {version}");
    let want = format!("memwatch {} ", env!("CARGO_PKG_VERSION"));
    if !version.starts_with(&want) {
        bail!(
            "/usr/bin/memwatch --version printed {version:?}, not {want:?} followed by the \
             commit; is memwatch's build script (memwatch/build.rs) setting MEMWATCH_VERSION?"
        );
    }
    let head = capture(
        Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(root()),
    );
    let head = head.trim();
    let printed = version
        .split_once('(')
        .and_then(|(_, rest)| rest.split([' ', '-']).next())
        .unwrap_or_default();
    if head.is_empty() {
        eprintln!("dist: not a git checkout; the version's commit is not checked");
    } else if printed.len() < 7 || !head.starts_with(printed) {
        bail!(
            "/usr/bin/memwatch --version printed {version:?}, which does not name this checkout's \
             commit {head}; the .deb holds a binary built from another commit: run `cargo \
             xtask dist` again"
        );
    }

    for page in ["memwatch", "memwatch-record"] {
        let found = capture(Command::new("man").args(["-w", page]));
        let expected = format!("/usr/share/man/man1/{page}.1.gz");
        if found.trim() != expected {
            let hint = if Path::new(&expected).exists() {
                String::new()
            } else {
                format!(
                    " {expected} is not there: if the .deb lists it (dpkg-deb -c), dpkg skipped \
                     it; minimal and container images often do, with `path-exclude \
                     /usr/share/man/*` in /etc/dpkg/dpkg.cfg.d/"
                )
            };
            bail!("`man -w {page}` printed {found:?}, not {expected:?}.{hint}");
        }
        eprintln!("dist: man -w {page}: {expected}");
    }

    for path in COMPLETIONS {
        if !Path::new(path).is_file() {
            bail!("the .deb installed no {path}; see the assets in memwatch/Cargo.toml");
        }
    }
    // bash reads its script: the completion function is defined for memwatch.
    let script = COMPLETIONS[0];
    let defined = capture(
        Command::new("bash").args(["-c", &format!("source {script} && complete -p memwatch")]),
    );
    if !defined.contains("memwatch") {
        bail!(
            "bash defines no completion for memwatch after `source {script}` (`complete -p \
             memwatch` printed {defined:?})"
        );
    }
    eprintln!("dist: completions installed: {}", COMPLETIONS.join(", "));
    Ok(())
}

/// A command's stdout, empty when it cannot run or fails.
fn capture(cmd: &mut Command) -> String {
    cmd.output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}
