//! Why the kernel side cannot run here: [`FormatError`] when this kernel's tracepoint records
//! are not laid out as the programs read them (found by preflight, before anything is loaded),
//! [`LoadError`] when loading, configuring or attaching fails, with aya's error as its
//! `#[source]`. `main` prints the cause chain after the message, `: `-separated.
//!
//! Each message says what failed and what to do; the cause follows it. Of memwatch's own, this
//! module imports only the pure [`super::format`], so `crate::error` can wrap both enums in
//! [`crate::error::SetupError`].

use std::path::PathBuf;

use aya::{
    EbpfError,
    maps::MapError,
    programs::{ProgramError, ProgramType},
};

use super::format::{FieldMismatch, ParseError};
use crate::error::SetupError;

/// What to check when the kernel refuses memwatch's object or one of its programs.
const NEEDS_KERNEL: &str =
    "memwatch needs Linux >= 5.8 with BTF (/sys/kernel/btf/vmlinux); run with -vv for details";

/// What to do when the embedded object lacks something this memwatch expects: they were built
/// from different sources, which `memwatch/build.rs` normally prevents.
const REBUILD: &str = "the embedded eBPF object does not match this memwatch; run `cargo xtask \
                       ebpf` and rebuild memwatch";

/// What to do when a kernel's record layout is not the one memwatch's programs read.
const REPORT: &str = "memwatch loaded nothing rather than read wrong numbers. Report this kernel \
                      (`uname -r`) with that format file; meanwhile `memwatch record --no-ebpf -p \
                      PID --access-log PATH` samples memory and reads the access log instead \
                      (approximate attribution)";

/// This kernel's tracepoint formats do not describe a field the kernel side reads as the
/// program reads it, or cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The format file could not be read.
    #[error(
        "cannot read the format of tracepoint {tracepoint} ({path}), which says where its fields \
         are; check that tracefs is mounted and readable by this user"
    )]
    Unreadable {
        /// `category:name`.
        tracepoint: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The format file is not in the format memwatch knows. (The parse error is part of the
    /// message, like a [`FieldMismatch`], so that what to do comes last.)
    #[error("cannot parse the format of tracepoint {tracepoint} ({path}): {error}.\n  {REPORT}")]
    Malformed {
        tracepoint: String,
        path: PathBuf,
        error: ParseError,
    },
    /// A field the kernel side reads is missing, elsewhere or of another width.
    #[error("tracepoint {tracepoint} ({path}): {mismatch}.\n  {REPORT}")]
    Field {
        tracepoint: String,
        path: PathBuf,
        mismatch: FieldMismatch,
    },
}

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

impl From<LoadError> for SetupError {
    fn from(e: LoadError) -> Self {
        Self::Load(Box::new(e))
    }
}

impl From<FormatError> for SetupError {
    fn from(e: FormatError) -> Self {
        Self::Format(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::exit;

    /// As `main` prints it: the message, then each cause, `: `-separated.
    fn printed(e: SetupError) -> String {
        crate::error::message(&anyhow::Error::from(e))
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
    fn a_field_mismatch_names_everything_and_says_what_to_do() {
        let e = SetupError::from(FormatError::Field {
            tracepoint: "sched:sched_process_exit".into(),
            path: "/sys/kernel/tracing/events/sched/sched_process_exit/format".into(),
            mismatch: FieldMismatch::Size {
                field: "group_dead",
                decl: "int group_dead".into(),
                expected: 1,
                found: 4,
            },
        });
        assert_eq!(e.exit_code(), exit::ENVIRONMENT);
        assert_eq!(
            printed(e),
            format!(
                "tracepoint sched:sched_process_exit \
                 (/sys/kernel/tracing/events/sched/sched_process_exit/format): field `group_dead` \
                 is 4 bytes wide on this kernel (`int group_dead`); memwatch reads 1 byte.\n  \
                 {REPORT}"
            )
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
