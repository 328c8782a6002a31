//! The kernel-side toolchain pin, read from `[workspace.metadata.ebpf]` in the workspace
//! `Cargo.toml`: the one place it is written.

use std::process::Command;

use anyhow::{Context as _, bail};

/// The pinned kernel-side toolchain.
#[derive(Debug, Clone)]
pub(crate) struct Pin {
    /// A dated nightly toolchain, e.g. `nightly-2026-05-19`.
    pub toolchain: String,
    /// The LLVM major both the nightly and bpf-linker use.
    pub llvm: u32,
    /// The bpf-linker release.
    pub bpf_linker: String,
}

impl Pin {
    /// Reads the pin from the workspace manifest.
    pub(crate) fn read() -> anyhow::Result<Self> {
        let manifest = crate::root().join("Cargo.toml");
        let metadata = cargo_metadata::MetadataCommand::new()
            .manifest_path(&manifest)
            .no_deps()
            .exec()
            .context("cargo metadata")?;
        let table = &metadata.workspace_metadata["ebpf"];
        let text = |key: &str| {
            table[key].as_str().map(str::to_owned).with_context(|| {
                format!(
                    "[workspace.metadata.ebpf] in {} has no string `{key}` (found {})",
                    manifest.display(),
                    table[key]
                )
            })
        };
        let pin = Self {
            toolchain: text("toolchain")?,
            llvm: table["llvm"]
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .with_context(|| {
                    format!(
                        "[workspace.metadata.ebpf] in {} has no integer `llvm` (found {})",
                        manifest.display(),
                        table["llvm"]
                    )
                })?,
            bpf_linker: text("bpf-linker")?,
        };
        if !is_dated(&pin.toolchain) {
            bail!(
                "[workspace.metadata.ebpf] toolchain = {:?} in {}: pin a dated nightly toolchain, \
                 nightly-YYYY-MM-DD (for example \"nightly-2026-05-19\"), whose LLVM major is \
                 `llvm`; an undated channel changes under the build",
                pin.toolchain,
                manifest.display()
            );
        }
        Ok(pin)
    }

    /// `cargo` of the pinned nightly. `rustup run` rather than `cargo +T`: it works whichever
    /// cargo proxy is first on PATH, and ignores a RUSTUP_TOOLCHAIN set by an outer cargo.
    pub(crate) fn cargo(&self) -> Command {
        let mut cmd = Command::new("rustup");
        cmd.args(["run", &self.toolchain, "cargo"])
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("RUSTC")
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .env_remove("CARGO");
        cmd
    }

    /// `cargo SUBCOMMAND` of the pinned nightly on the eBPF crate, for its own target, with core
    /// built from source, in `target/ebpf` (kept apart from the host build).
    pub(crate) fn ebpf_cargo(&self, subcommand: &str) -> Command {
        let mut cmd = self.cargo();
        cmd.args([
            subcommand,
            "--package",
            "memwatch-ebpf",
            "--release",
            "--target",
            "bpfel-unknown-none",
            "-Z",
            "build-std=core",
            "--target-dir",
        ])
        .arg(crate::root().join("target/ebpf"));
        cmd
    }

    /// bpf-linker's cargo feature for the pinned LLVM.
    pub(crate) fn linker_feature(&self) -> String {
        format!("llvm-{}", self.llvm)
    }

    /// Where Debian installs the pinned LLVM.
    pub(crate) fn llvm_prefix(&self) -> String {
        format!("/usr/lib/llvm-{}", self.llvm)
    }

    /// The command that installs the pinned bpf-linker, as a user would type it.
    pub(crate) fn install_linker_command(&self) -> String {
        format!(
            "{}={prefix} LLVM_PREFIX={prefix} cargo install bpf-linker --version {} \
             --no-default-features --features {} --force",
            self.llvm_sys_prefix_var(),
            self.bpf_linker,
            self.linker_feature(),
            prefix = self.llvm_prefix(),
        )
    }

    /// llvm-sys reads `LLVM_SYS_<major><minor>_PREFIX`; its releases for LLVM 18 and later are
    /// numbered `<major>1`.
    pub(crate) fn llvm_sys_prefix_var(&self) -> String {
        format!("LLVM_SYS_{}1_PREFIX", self.llvm)
    }
}

/// `nightly-YYYY-MM-DD`, digits where the date goes.
fn is_dated(toolchain: &str) -> bool {
    toolchain.strip_prefix("nightly-").is_some_and(|date| {
        date.len() == 10
            && date.char_indices().all(|(i, c)| {
                if i == 4 || i == 7 {
                    c == '-'
                } else {
                    c.is_ascii_digit()
                }
            })
    })
}

/// The LLVM major in `rustc -vV` output (`LLVM version: 22.1.4`).
pub(crate) fn rustc_llvm_major(verbose_version: &str) -> Option<u32> {
    verbose_version
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version:"))
        .and_then(|v| v.trim().split('.').next()?.parse().ok())
}

/// The LLVM major a bpf-linker binary links against, from `ldd` (`libLLVM.so.22.1` or
/// `libLLVM-22.so`). None when it cannot be told (a static build).
pub(crate) fn linker_llvm_major(ldd: &str) -> Option<u32> {
    ldd.lines().find_map(|line| {
        let name = line.split_whitespace().next()?;
        let rest = name
            .strip_prefix("libLLVM.so.")
            .or_else(|| name.strip_prefix("libLLVM-"))?;
        rest.split(['.', '-']).next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dated_toolchains_are_pins() {
        assert!(is_dated("nightly-2026-05-19"));
        assert!(!is_dated("nightly-latest"));
        assert!(!is_dated("beta"));
        assert!(!is_dated("nightly-2026-5-19"));
        assert!(!is_dated("stable"));
    }

    #[test]
    fn reads_llvm_majors() {
        let rustc =
            "rustc 1.97.0-nightly (9eb3be26b 2026-05-18)\nbinary: rustc\nLLVM version: 22.1.4\n";
        assert_eq!(rustc_llvm_major(rustc), Some(22));
        assert_eq!(rustc_llvm_major("rustc 1.95.0\n"), None);
        let ldd = "\tlinux-vdso.so.1 (0x00007ffc)\n\tlibLLVM.so.22.1 => /usr/lib/llvm-22/lib/libLLVM.so.22.1 (0x1)\n";
        assert_eq!(linker_llvm_major(ldd), Some(22));
        assert_eq!(
            linker_llvm_major("\tlibLLVM-21.so => /usr/lib/llvm-21/lib/libLLVM-21.so (0x1)\n"),
            Some(21)
        );
        assert_eq!(linker_llvm_major("\tnot a dynamic executable\n"), None);
    }
}
