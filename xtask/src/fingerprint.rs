//! The fingerprint of the kernel side's sources, shared by `cargo xtask ebpf` (which writes it
//! next to the committed object) and `memwatch/build.rs` (which refuses to embed an object whose
//! fingerprint no longer matches the sources). Both include this one file with `#[path]`, so the
//! two can never hash differently.
//!
//! The hash is FNV-1a (64 bit) over every file of the kernel-side crates in path order: the
//! relative path, a NUL, the length, then the bytes. It only has to notice change, not resist an
//! adversary, and it needs no dependency in a build script.

use std::{
    io,
    path::{Path, PathBuf},
};

/// The crates whose sources make up the eBPF object, relative to the workspace root.
pub(crate) const KERNEL_SIDE: &[&str] = &["memwatch-ebpf", "memwatch-common"];

/// Where the committed object and its stamp live, relative to the workspace root.
pub(crate) const OBJECT_DIR: &str = "memwatch-ebpf/object";

/// The committed object for a host architecture (the kernel side reads that architecture's user
/// registers, so the object is per architecture).
pub(crate) fn object_name(arch: &str) -> String {
    format!("memwatch-{arch}.bpf.o")
}

/// The stamp written beside the object: the source fingerprint and the toolchain that built it.
pub(crate) fn stamp_name(arch: &str) -> String {
    format!("memwatch-{arch}.bpf.stamp")
}

/// The fingerprint of the kernel side's sources under `root`, as 16 hex digits.
pub(crate) fn sources(root: &Path) -> io::Result<String> {
    let mut files = Vec::new();
    for krate in KERNEL_SIDE {
        collect(root, &root.join(krate), &mut files)?;
    }
    files.sort();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for rel in files {
        let data = std::fs::read(root.join(&rel))?;
        feed(rel.to_string_lossy().as_bytes());
        feed(&[0]);
        feed(&(data.len() as u64).to_le_bytes());
        feed(&data);
    }
    Ok(format!("{hash:016x}"))
}

/// Every regular file below `dir` (relative to `root`), leaving out the committed objects
/// themselves and anything a build leaves behind.
fn collect(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        if name == "target"
            || path == root.join(OBJECT_DIR)
            || name.to_string_lossy().starts_with('.')
        {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_dir() {
            collect(root, &path, out)?;
        } else if kind.is_file() {
            let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            out.push(rel);
        }
    }
    Ok(())
}

/// The `sources = "…"` value of a stamp file's text, if it has one.
pub(crate) fn stamp_sources(stamp: &str) -> Option<&str> {
    stamp.lines().find_map(|line| {
        let value = line
            .strip_prefix("sources")?
            .trim_start()
            .strip_prefix('=')?;
        Some(value.trim().trim_matches('"'))
    })
}
