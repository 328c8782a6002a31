//! Embeds the committed eBPF object (`memwatch-ebpf/object/`), so building memwatch needs no
//! nightly, no LLVM and no bpf-linker.
//!
//! The object is built by `cargo xtask ebpf` with the toolchain pinned in the workspace
//! `Cargo.toml` (`[workspace.metadata.ebpf]`), which also writes a stamp holding the fingerprint of
//! the kernel side's sources. When those sources change, the fingerprint no longer matches and
//! this build stops and says to run `cargo xtask ebpf`: a stale object would decode events with
//! the wrong layout. `cargo xtask test` goes further and rebuilds the object to compare its
//! instructions with the committed one.
//!
//! It also sets `MEMWATCH_VERSION`, what `memwatch --version` prints: the crate's version and,
//! when built from a git checkout, the commit and its date (`0.1.0 (abc1234 2026-12-06)`), with
//! `-dirty` when tracked files had changes. Built outside git (a source tarball), it is the
//! crate's version alone.

#[path = "../xtask/src/fingerprint.rs"]
mod fingerprint;

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

fn main() -> ExitCode {
    match embed().and_then(|()| version()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            // Cargo shows a build script's stderr when it fails: say what to do.
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn embed() -> Result<(), String> {
    let manifest = env::var_os("CARGO_MANIFEST_DIR").ok_or("CARGO_MANIFEST_DIR not set")?;
    let root = Path::new(&manifest)
        .parent()
        .ok_or("memwatch's manifest directory has no parent")?;
    let out_dir = env::var_os("OUT_DIR").ok_or("OUT_DIR not set")?;
    let arch =
        env::var("CARGO_CFG_TARGET_ARCH").map_err(|e| format!("CARGO_CFG_TARGET_ARCH: {e}"))?;

    for krate in fingerprint::KERNEL_SIDE {
        println!("cargo:rerun-if-changed={}", root.join(krate).display());
    }
    let dir = root.join(fingerprint::OBJECT_DIR);
    let object = dir.join(fingerprint::object_name(&arch));
    let stamp = dir.join(fingerprint::stamp_name(&arch));

    let fix = "run `cargo xtask ebpf` to build it with the pinned toolchain (it installs what it \
               needs), then commit both files";
    let stamp_text = fs::read_to_string(&stamp).map_err(|e| {
        format!(
            "no eBPF object for {arch}: cannot read {}: {e}; {fix}",
            stamp.display()
        )
    })?;
    let recorded = fingerprint::stamp_sources(&stamp_text)
        .ok_or_else(|| format!("{} has no `sources = ...` line; {fix}", stamp.display()))?;
    let current = fingerprint::sources(root)
        .map_err(|e| format!("cannot read the kernel side's sources: {e}"))?;
    if recorded != current {
        return Err(format!(
            "the kernel side ({}) changed since {} was built (its stamp says sources {recorded}, \
             they are now {current}); {fix}",
            fingerprint::KERNEL_SIDE.join(", "),
            object.display()
        ));
    }
    let bytes =
        fs::read(&object).map_err(|e| format!("cannot read {}: {e}; {fix}", object.display()))?;
    fs::write(Path::new(&out_dir).join("memwatch.bpf.o"), bytes)
        .map_err(|e| format!("cannot write the embedded object to OUT_DIR: {e}"))?;
    Ok(())
}

/// `MEMWATCH_VERSION`: the crate's version, then the commit when the workspace is a git checkout
/// of its own (not a tarball unpacked inside some other repository).
fn version() -> Result<(), String> {
    let manifest = env::var_os("CARGO_MANIFEST_DIR").ok_or("CARGO_MANIFEST_DIR not set")?;
    let root = Path::new(&manifest)
        .parent()
        .ok_or("memwatch's manifest directory has no parent")?;
    let crate_version =
        env::var("CARGO_PKG_VERSION").map_err(|e| format!("CARGO_PKG_VERSION: {e}"))?;
    let version = match commit(root) {
        Some(commit) => format!("{crate_version} ({commit})"),
        None => crate_version,
    };
    println!("cargo:rustc-env=MEMWATCH_VERSION={version}");
    Ok(())
}

/// `abc1234 2026-12-06`, `abc1234-dirty 2026-12-06`, or None without git or outside a checkout.
/// Asks git for the paths to watch, so a worktree (whose `.git` is a file naming the real git
/// directory) and packed refs are handled as git handles them.
fn commit(root: &Path) -> Option<String> {
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .args(args)
            .current_dir(root)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let toplevel = PathBuf::from(git(&["rev-parse", "--show-toplevel"])?);
    if toplevel.canonicalize().ok()? != root.canonicalize().ok()? {
        return None;
    }
    // Rerun when HEAD moves (checkout, commit): HEAD itself, the branch it names, packed refs.
    let mut watched = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    for name in &watched {
        if let Some(path) = git(&["rev-parse", "--git-path", name]) {
            let path = root.join(path);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    // And when memwatch's own sources change, which may make the tree dirty (they rebuild the
    // crate anyway). Edits elsewhere show up at the next commit or source edit.
    println!(
        "cargo:rerun-if-changed={}",
        root.join("memwatch/src").display()
    );
    let line = git(&["log", "-1", "--format=%h %cs"])?;
    let (hash, date) = line.split_once(' ')?;
    // --no-optional-locks: a build must not take the index lock under the user's git commands.
    let dirty = git(&[
        "--no-optional-locks",
        "status",
        "--porcelain",
        "--untracked-files=no",
    ])
    .is_some_and(|s| !s.is_empty());
    Some(format!(
        "{hash}{} {date}",
        if dirty { "-dirty" } else { "" }
    ))
}
