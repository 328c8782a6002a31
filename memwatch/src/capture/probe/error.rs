//! Why the kernel side could not be loaded, configured or attached: one variant per step, each
//! keeping aya's error as its `#[source]` so the whole chain reaches the user (`main` prints it
//! after the message, `: `-separated) and `-vv` logs.
//!
//! Each message says what failed and what to do; the cause follows it. This module imports
//! nothing of memwatch's own, so `crate::error` can wrap it in [`crate::error::SetupError`].

use aya::{
    EbpfError,
    maps::MapError,
    programs::{ProgramError, ProgramType},
};

/// What to check when the kernel refuses memwatch's object or one of its programs.
const NEEDS_KERNEL: &str =
    "memwatch needs Linux >= 5.8 with BTF (/sys/kernel/btf/vmlinux); run with -vv for details";

/// What to do when the embedded object lacks something this memwatch expects: they were built
/// from different sources, which `memwatch/build.rs` normally prevents.
const REBUILD: &str = "the embedded eBPF object does not match this memwatch; run `cargo xtask \
                       ebpf` and rebuild memwatch";

/// Failures of [`super::Probe`]: loading the object, loading and attaching its programs, and
/// using its maps.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// aya could not parse the object, relocate it against this kernel's BTF, set its globals or
    /// create its maps.
    #[error("cannot load memwatch's eBPF object ({NEEDS_KERNEL})")]
    Object(#[source] EbpfError),
    /// The object has no program of that name.
    #[error("memwatch's eBPF object has no program `{program}` ({REBUILD})")]
    MissingProgram { program: &'static str },
    /// The program is not of a type memwatch attaches to tracepoints.
    #[error(
        "`{program}` in memwatch's eBPF object is a {found:?} program, not a tracepoint ({REBUILD})"
    )]
    NotATracepoint {
        program: &'static str,
        found: ProgramType,
    },
    /// The kernel refused the program (the verifier's log is in the cause).
    #[error("the kernel refused the eBPF program `{program}` ({NEEDS_KERNEL})")]
    Program {
        program: &'static str,
        #[source]
        source: ProgramError,
    },
    /// The object has no map of that name.
    #[error("memwatch's eBPF object has no map `{map}` ({REBUILD})")]
    MissingMap { map: &'static str },
    /// The map is not of the type or key/value sizes memwatch reads it as.
    #[error("the map `{map}` of memwatch's eBPF object is not what memwatch expects ({REBUILD})")]
    MapType {
        map: &'static str,
        #[source]
        source: MapError,
    },
    /// A process could not be made a target.
    #[error("cannot add process {pid} to the kernel side's targets (run with -vv for details)")]
    AddTarget {
        pid: u32,
        #[source]
        source: MapError,
    },
    /// A connection open before memwatch attached could not be registered.
    #[error(
        "cannot register connection fd {fd} of process {pid} with the kernel side (run with -vv \
         for details)"
    )]
    AddConnection {
        pid: u32,
        fd: u32,
        #[source]
        source: MapError,
    },
    /// The ring buffer's fd could not be registered with tokio's reactor.
    #[error("cannot watch the eBPF ring buffer for events")]
    RingBuffer(#[source] std::io::Error),
    /// A loaded program could not be attached to one of its tracepoints.
    #[error(
        "cannot attach the eBPF program `{program}` to the tracepoint {tracepoint} (run with -vv \
         for details)"
    )]
    Attach {
        program: &'static str,
        /// `category:name`.
        tracepoint: String,
        #[source]
        source: ProgramError,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{SetupError, exit};

    /// How `main` prints an error: the message, then each cause, `: `-separated.
    fn printed(e: SetupError) -> String {
        format!("{:#}", anyhow::Error::from(e))
    }

    #[test]
    fn keeps_aya_cause_and_says_what_to_do() {
        let e = SetupError::from(LoadError::Program {
            program: "mmap_enter",
            source: ProgramError::NotLoaded,
        });
        assert_eq!(e.exit_code(), exit::ENVIRONMENT);
        let cause = std::error::Error::source(&e).expect("the aya error is kept");
        assert!(cause.downcast_ref::<ProgramError>().is_some(), "{cause:?}");
        assert_eq!(
            printed(e),
            format!(
                "the kernel refused the eBPF program `mmap_enter` ({NEEDS_KERNEL}): the program \
                 is not loaded"
            )
        );
    }

    #[test]
    fn attach_names_program_and_tracepoint() {
        let e = SetupError::from(LoadError::Attach {
            program: "close_enter",
            tracepoint: "syscalls:sys_enter_close".into(),
            source: ProgramError::AlreadyAttached,
        });
        assert_eq!(e.exit_code(), exit::ENVIRONMENT);
        let text = printed(e);
        assert!(
            text.starts_with(
                "cannot attach the eBPF program `close_enter` to the tracepoint \
                 syscalls:sys_enter_close"
            ),
            "{text}"
        );
        assert!(
            text.ends_with(": the program was already attached"),
            "{text}"
        );
    }

    #[test]
    fn io_cause_is_kept() {
        let e = SetupError::from(LoadError::RingBuffer(std::io::Error::from_raw_os_error(
            libc::EBADF,
        )));
        assert_eq!(e.exit_code(), exit::ENVIRONMENT);
        let text = printed(e);
        assert!(
            text.starts_with("cannot watch the eBPF ring buffer for events: "),
            "{text}"
        );
        assert!(text.contains("os error 9"), "{text}");
    }
}
