//! Errors that reach the user: each says what was wrong, shows the offending value, and says
//! what to do. Each enum's `exit_code` gives its documented exit code; `commands::exit_code`
//! does the same for any error that reaches `main`. This module imports nothing of memwatch's
//! own, so every other module may use it: the kernel side's own error types
//! (`capture::probe::error`) reach [`SetupError`] boxed, their causes kept.

use std::path::PathBuf;

/// A subsystem's typed error carried inside a [`SetupError`]; its message and causes are kept,
/// and it can be downcast back to its type.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error and its causes on one line, `: `-separated, each cause once: a cause whose text an
/// earlier message already contains (as aya's errors include their source's) is not repeated.
pub fn message(err: &anyhow::Error) -> String {
    let mut out = String::new();
    let mut previous = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.is_empty() {
            out.push_str(&text);
        } else if !previous.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        previous = text;
    }
    out
}

/// Exit codes, documented in the README.
pub mod exit {
    /// Success (for `diff`: within thresholds).
    pub const OK: i32 = 0;
    /// `diff`/`ci`: a regression was found.
    pub const REGRESSION: i32 = 1;
    /// Bad input: usage, PIDs, files.
    pub const INPUT: i32 = 2;
    /// The environment cannot run memwatch: privileges, kernel features, tracefs.
    pub const ENVIRONMENT: i32 = 3;
    /// Something failed while running.
    pub const RUNTIME: i32 = 4;
    /// The recording could not be written (its disk filled up, or an I/O error): recording
    /// stopped, and what was committed before is readable.
    pub const WRITE: i32 = 5;
    /// A second Ctrl-C (or SIGTERM) while stopping: memwatch exited at once (128 + SIGINT, as
    /// a shell reports a process a Ctrl-C ended).
    pub const FORCED: i32 = 130;
}

/// Failures of the checks memwatch runs before it loads anything, and of loading itself.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(
        "memwatch needs CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN (or root) to load eBPF programs, \
         and this process has {have}.\n  Run it as root: sudo memwatch ...\n  Without root, \
         `memwatch record --no-ebpf -p PID --access-log PATH` samples memory and reads the \
         access log instead (approximate attribution)"
    )]
    Privileges { have: String },
    #[error(
        "tracefs is not mounted at /sys/kernel/tracing and mounting it failed ({reason}).\n  \
         Mount it yourself: sudo mount -t tracefs nodev /sys/kernel/tracing"
    )]
    Tracefs { reason: String },
    #[error(
        "this kernel has no tracepoint {name} (looked for {path}).\n  memwatch needs Linux >= 5.8 \
         with CONFIG_FTRACE_SYSCALLS and tracepoints enabled"
    )]
    MissingTracepoint { name: String, path: PathBuf },
    /// A tracepoint's record is not laid out as the kernel side reads it; the message comes
    /// from the boxed `capture::probe::error::FormatError`.
    #[error(transparent)]
    Format(Cause),
    #[error("no process with PID {pid}: check it with `ps -p {pid}`")]
    NoSuchPid { pid: u32 },
    #[error("PID {pid} is memwatch itself; memwatch never traces itself. Pass the server's PID")]
    SelfTarget { pid: u32 },
    #[error(
        "PID 1 is init: following its forks traces every process on this machine, memwatch's \
         own children among them.\n  Pass the server's PID; if PID 1 is the server (in a \
         container) or you mean the whole machine, add --force (or --no-follow-forks for init \
         alone)"
    )]
    InitTarget,
    #[error(
        "PID {pid} is a kernel thread ({name}): it has no user memory to trace.\n  Pass the \
         server's PID (`pgrep NAME` or `ps -e --forest` shows them)"
    )]
    KernelThread { pid: u32, name: String },
    #[error("process {pid} exited while memwatch was attaching; nothing was recorded")]
    ExitedWhileAttaching { pid: u32 },
    #[error(
        "cannot read the access log {path}: {source}.\n  Check the path and that this user may \
         read it"
    )]
    LogUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the access log {path} does not exist and neither does its directory; check the path \
         (a log that does not exist yet is waited for, but its directory must exist)"
    )]
    LogDirMissing { path: PathBuf },
    #[error(
        "the access log {path} is a directory.\n  Pass the log file itself, e.g. --access-log \
         {path}/access.log"
    )]
    LogIsDirectory { path: PathBuf },
    #[error("{path} already exists; pass --force to overwrite it, or choose another -o path")]
    OutputExists { path: PathBuf },
    #[error(
        "cannot write the recording {path}: its directory {dir} does not exist.\n  Create it \
         first (mkdir -p {dir}), or choose another -o path"
    )]
    OutputDirMissing { path: PathBuf, dir: PathBuf },
    #[error(
        "cannot write the recording {path}: {path} is a directory.\n  -o takes the recording's \
         file name, e.g. -o {path}/memwatch.db"
    )]
    OutputIsDirectory { path: PathBuf },
    #[error(
        "cannot write the recording {path}: its directory {dir} is on a read-only filesystem.\n  \
         Choose an -o path on a writable filesystem"
    )]
    OutputReadOnly { path: PathBuf, dir: PathBuf },
    #[error(
        "cannot write the recording {path}: this user may not create files in {dir} \
         ({source}).\n  Choose an -o path in a directory memwatch may write to (see ls -ld {dir} \
         and lsattr -d {dir})"
    )]
    OutputDirNotWritable {
        path: PathBuf,
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the recording {path}: {source}.\n  Choose a writable -o path")]
    OutputNotWritable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot write the recording {path}: its filesystem has {free_mib} MiB free, and memwatch \
         keeps {reserve_mib} MiB of it in reserve, to close the recording cleanly should the disk \
         fill up.\n  Free some space there, or choose an -o path on another filesystem"
    )]
    OutputNoSpace {
        path: PathBuf,
        free_mib: u64,
        reserve_mib: u64,
    },
    #[error(
        "command not found: {command:?} is not an executable file and is not on PATH.\n  Pass \
         the command after `--` with its path, e.g. memwatch record -- ./server --port 8080"
    )]
    CommandNotFound { command: String },
    #[error("the command argument {argument:?} contains a NUL byte, which exec cannot pass")]
    NulInArgument { argument: String },
    #[error(
        "could not start the command: {what} failed: {source}.\n  The system may be out of \
         processes or file descriptors (check ulimit -u and ulimit -n)"
    )]
    Spawn {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// Loading, configuring or attaching the kernel side failed; the message and aya's cause
    /// come from the boxed `capture::probe::error::LoadError`.
    #[error(transparent)]
    Load(Cause),
}

impl SetupError {
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Privileges { .. }
            | Self::Tracefs { .. }
            | Self::MissingTracepoint { .. }
            | Self::Format(_)
            | Self::Load(_)
            | Self::Spawn { .. } => exit::ENVIRONMENT,
            Self::NoSuchPid { .. }
            | Self::SelfTarget { .. }
            | Self::InitTarget
            | Self::KernelThread { .. }
            | Self::ExitedWhileAttaching { .. }
            | Self::OutputExists { .. }
            | Self::OutputDirMissing { .. }
            | Self::OutputIsDirectory { .. }
            | Self::OutputReadOnly { .. }
            | Self::OutputDirNotWritable { .. }
            | Self::OutputNotWritable { .. }
            | Self::OutputNoSpace { .. }
            | Self::CommandNotFound { .. }
            | Self::NulInArgument { .. }
            | Self::LogUnreadable { .. }
            | Self::LogDirMissing { .. }
            | Self::LogIsDirectory { .. } => exit::INPUT,
        }
    }
}

/// What to do about a file that is not a recording.
const PASS_A_RECORDING: &str = "Pass a file written by `memwatch record -o FILE`";

/// Failures reading a recording file.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("{path}: no such file")]
    Missing { path: PathBuf },
    #[error(
        "{path}: permission denied: it belongs to {owner} with mode {mode:04o}, as recordings are \
         private to whoever made them.\n  Read it as {owner}, or with sudo"
    )]
    Unreadable {
        path: PathBuf,
        owner: String,
        mode: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is a directory, not a memwatch recording.\n  {PASS_A_RECORDING}")]
    IsDirectory { path: PathBuf },
    #[error(
        "{path} is empty: not a memwatch recording (was the recording interrupted before it \
         began?).\n  {PASS_A_RECORDING}"
    )]
    Empty { path: PathBuf },
    /// Not SQLite, or SQLite another program wrote (its application id is not memwatch's).
    #[error("{path} is not a memwatch recording.\n  {PASS_A_RECORDING}")]
    NotARecording { path: PathBuf },
    #[error(
        "{path} is truncated or corrupt: {reason}.\n  A recording cut off by a crash keeps what \
         was committed; this one cannot be read"
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "{path} was written by a newer memwatch (recording schema {found}; this memwatch reads up \
         to {supported}).\n  Upgrade memwatch to read it"
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error(
        "SQLite error on {path}: {source}.\n  Another process may hold the file locked, or its \
         filesystem is read-only; copy it elsewhere and retry"
    )]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
}

impl RecordingError {
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Sqlite { .. } => exit::RUNTIME,
            _ => exit::INPUT,
        }
    }
}

/// Failures writing a recording.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(
        "the disk holding the recording {path} is full, so recording stopped: {source}.\n  \
         Everything committed before is in it ({unwritten} rows captured after that were not \
         written): `memwatch report {path}` reads it. Free space there, or record to another \
         filesystem with -o"
    )]
    DiskFull {
        path: PathBuf,
        unwritten: u64,
        /// ENOSPC, which SQLite reports as SQLITE_FULL.
        #[source]
        source: std::io::Error,
    },
    #[error(
        "writing the recording {path} failed, so recording stopped: {source}.\n  Everything \
         committed before is in it ({unwritten} rows captured after that were not written): \
         `memwatch report {path}` reads it. Check the disk and its filesystem"
    )]
    Failed {
        path: PathBuf,
        unwritten: u64,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "writing the recording {path} failed: {source}.\n  Check that its filesystem has room \
         and is writable; what was committed before the failure is still readable"
    )]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "the thread writing the recording {path} panicked; what it committed is still readable. \
         Please report this as a bug"
    )]
    WriterPanicked { path: PathBuf },
}

impl WriteError {
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::DiskFull { .. } | Self::Failed { .. } | Self::Sqlite { .. } => exit::WRITE,
            Self::WriterPanicked { .. } => exit::RUNTIME,
        }
    }
}

/// A command line that does not make sense, caught after clap's own checks.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);
