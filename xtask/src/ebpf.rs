//! `cargo xtask ebpf`: builds the kernel side with the pinned toolchain and commits the object
//! under `memwatch-ebpf/object/`, where `memwatch/build.rs` embeds it; `--check` rebuilds it and
//! fails when the committed object is stale.
//!
//! The check compares what the kernel runs and what the loader relocates, not the file bytes:
//! every section but the debug and BTF ones (which carry the paths of the checkout and of
//! rust-src), and every relocation by symbol name.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};
use object::{Object as _, ObjectSection as _, ObjectSymbol as _, RelocationTarget};

use crate::{fingerprint, pin::Pin};

/// The architecture whose user registers the kernel side reads: the host's.
fn arch() -> &'static str {
    std::env::consts::ARCH
}

/// Builds the eBPF object into `target/ebpf` and returns its path.
pub(crate) fn build(pin: &Pin) -> anyhow::Result<PathBuf> {
    let target_dir = crate::root().join("target/ebpf");
    let mut cmd = pin.ebpf_cargo("build");
    cmd.arg("--bins")
        // As aya-build does: full debug info, from which bpf-linker emits the BTF that the loader
        // needs for maps and globals. `bpf_target_arch` comes from memwatch-ebpf's build script.
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            "-Cdebuginfo=2\x1f-Clink-arg=--btf",
        );
    crate::run(&mut cmd)?;
    Ok(target_dir.join("bpfel-unknown-none/release/memwatch"))
}

/// Builds the object and writes it, with its stamp, where memwatch embeds it.
pub(crate) fn update(pin: &Pin) -> anyhow::Result<()> {
    let built = build(pin)?;
    let root = crate::root();
    let dir = root.join(fingerprint::OBJECT_DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let object = dir.join(fingerprint::object_name(arch()));
    std::fs::copy(&built, &object)
        .with_context(|| format!("copying {} to {}", built.display(), object.display()))?;
    let stamp = dir.join(fingerprint::stamp_name(arch()));
    std::fs::write(&stamp, stamp_text(pin, &root)?)
        .with_context(|| format!("writing {}", stamp.display()))?;
    eprintln!(
        "ebpf: wrote {} and its stamp; commit both",
        object.strip_prefix(&root).unwrap_or(&object).display()
    );
    Ok(())
}

fn stamp_text(pin: &Pin, root: &Path) -> anyhow::Result<String> {
    let sources = fingerprint::sources(root).context("fingerprinting the kernel side")?;
    Ok(format!(
        "# Written by `cargo xtask ebpf`; memwatch/build.rs embeds the object only while the\n\
         # kernel side's sources still have this fingerprint.\n\
         sources = \"{sources}\"\n\
         toolchain = \"{}\"\n\
         bpf-linker = \"{} ({})\"\n",
        pin.toolchain,
        pin.bpf_linker,
        pin.linker_feature()
    ))
}

/// Rebuilds the object and fails unless the committed one has the same programs, data and
/// relocations, and its stamp matches the sources.
pub(crate) fn check(pin: &Pin) -> anyhow::Result<()> {
    let root = crate::root();
    let dir = root.join(fingerprint::OBJECT_DIR);
    let committed = dir.join(fingerprint::object_name(arch()));
    let fix = "run `cargo xtask ebpf` and commit memwatch-ebpf/object/";
    let stamp_path = dir.join(fingerprint::stamp_name(arch()));
    let stamp = std::fs::read_to_string(&stamp_path)
        .with_context(|| format!("cannot read {}; {fix}", stamp_path.display()))?;
    let sources = fingerprint::sources(&root)?;
    let recorded = fingerprint::stamp_sources(&stamp);
    if recorded != Some(sources.as_str()) {
        bail!(
            "the committed eBPF object is stale: {} says sources {}, the kernel side's sources \
             are now {sources}; {fix}",
            stamp_path.display(),
            recorded.unwrap_or("(no `sources = ...` line)")
        );
    }
    let built = build(pin)?;
    let old = std::fs::read(&committed)
        .with_context(|| format!("reading {}; {fix}", committed.display()))?;
    let new = std::fs::read(&built).with_context(|| format!("reading {}", built.display()))?;
    let differences = compare(&old, &new)?;
    if !differences.is_empty() {
        bail!(
            "the committed eBPF object is stale: rebuilt with {} it differs in {}; {fix}",
            pin.toolchain,
            differences.join(", ")
        );
    }
    eprintln!(
        "ebpf: the committed object matches a fresh build with {} and bpf-linker {}",
        pin.toolchain, pin.bpf_linker
    );
    Ok(())
}

/// Sections that hold paths and line tables rather than anything the kernel runs.
fn ignored(name: &str) -> bool {
    [
        ".debug",
        ".rel.debug",
        ".BTF",
        ".rel.BTF",
        ".symtab",
        ".strtab",
    ]
    .iter()
    .any(|p| name.starts_with(p))
        || name.is_empty()
}

/// What the kernel and the loader see of an object: each kept section's bytes and its
/// relocations (offset and symbol name).
type Contents = BTreeMap<String, (Vec<u8>, Vec<(u64, String)>)>;

fn contents(data: &[u8]) -> anyhow::Result<Contents> {
    let file = object::File::parse(data).context("parsing the eBPF ELF object")?;
    let mut out = Contents::new();
    for section in file.sections() {
        let name = section.name().unwrap_or_default().to_owned();
        if ignored(&name) {
            continue;
        }
        let bytes = section.data().unwrap_or_default().to_vec();
        let mut relocations = Vec::new();
        for (offset, relocation) in section.relocations() {
            let target = match relocation.target() {
                RelocationTarget::Symbol(index) => file
                    .symbol_by_index(index)
                    .ok()
                    .and_then(|s| s.name().ok().map(str::to_owned))
                    .unwrap_or_default(),
                other => format!("{other:?}"),
            };
            relocations.push((offset, target));
        }
        out.insert(name, (bytes, relocations));
    }
    Ok(out)
}

/// The names of the sections whose contents differ, or that only one object has.
fn compare(old: &[u8], new: &[u8]) -> anyhow::Result<Vec<String>> {
    let old = contents(old)?;
    let new = contents(new)?;
    let mut differences = Vec::new();
    for (name, value) in &old {
        match new.get(name) {
            None => differences.push(format!("{name} (gone)")),
            Some(v) if v != value => differences.push(name.clone()),
            Some(_) => {}
        }
    }
    for name in new.keys().filter(|n| !old.contains_key(*n)) {
        differences.push(format!("{name} (new)"));
    }
    Ok(differences)
}
