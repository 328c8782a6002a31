use which::which;

/// Rebuild when bpf-linker changes (the object depends on its LLVM), and tell the code which
/// architecture's user registers it reads (`bpf_target_arch`, as aya-ebpf itself does: a BPF
/// program runs on the host that builds it here).
fn main() {
    match which("bpf-linker") {
        Ok(path) => println!("cargo:rerun-if-changed={}", path.display()),
        Err(err) => println!("cargo:warning=bpf-linker not found ({err}); run `cargo xtask setup`"),
    }
    println!(
        "cargo::rustc-check-cfg=cfg(bpf_target_arch, values(\"x86_64\", \"aarch64\", \"arm\", \
         \"riscv64\", \"powerpc64\", \"s390x\", \"mips\", \"loongarch64\"))"
    );
    println!("cargo:rerun-if-env-changed=HOST");
    let host = std::env::var("HOST").unwrap_or_default();
    if let Some(arch) = host.split('-').next().filter(|a| !a.is_empty()) {
        println!("cargo:rustc-cfg=bpf_target_arch=\"{arch}\"");
    }
}
