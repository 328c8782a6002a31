//! Embeds the committed eBPF object (`memwatch-ebpf/object/`), so building memwatch needs no
//! nightly, no LLVM and no bpf-linker.
//!
//! The object is built by `cargo xtask ebpf` with the toolchain pinned in the workspace
//! `Cargo.toml` (`[workspace.metadata.ebpf]`), which also writes a stamp holding the fingerprint of
//! the kernel side's sources. When those sources change, the fingerprint no longer matches and
//! this build stops and says to run `cargo xtask ebpf`: a stale object would decode events with
//! the wrong layout. `cargo xtask test` goes further and rebuilds the object to compare its
//! instructions with the committed one.

#[path = "../xtask/src/fingerprint.rs"]
mod fingerprint;

use std::{env, fs, path::Path, process::ExitCode};

fn main() -> ExitCode {
    match embed() {
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
