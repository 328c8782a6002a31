//! What a recording is asked to do: `memwatch record`'s options, and `memwatch ci`'s hooks.

use std::{ffi::OsString, path::PathBuf, sync::Arc, time::Duration};

use crate::capture::spawn::SpawnOptions;

/// What one recording does: the options of `memwatch record`, as plain values (the command line
/// in `cli/record.rs` turns arguments into these).
#[derive(Debug, Clone)]
pub struct RecordOptions {
    /// Processes to trace, with their current descendants.
    pub pids: Vec<u32>,
    /// Command to start and trace from its first instruction.
    pub command: Vec<OsString>,
    /// The recording; None picks `memwatch-<date>-<time>.db`.
    pub output: Option<PathBuf>,
    /// Overwrite an existing recording.
    pub force: bool,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Follow descendants and processes forked later.
    pub follow_forks: bool,
    /// How often RSS and VmSize are sampled from /proc.
    pub sample_interval: Duration,
    /// Hook sockets (HTTP requests).
    pub net: bool,
    /// Bytes of each request and response captured.
    pub capture_bytes: u32,
    /// Ring-buffer size in MiB.
    pub ring_mib: u32,
    /// Route patterns, first match wins.
    pub routes: Vec<String>,
    /// Drop query strings before anything is stored.
    pub redact_query: bool,
    /// Access logs to follow and join.
    pub access_logs: Vec<PathBuf>,
    /// Their format (detected when None).
    pub log_format: Option<String>,
    /// Read the logs from their beginning.
    pub log_from_start: bool,
    /// Load the eBPF programs (false: /proc sampling and access logs only).
    pub ebpf: bool,
    /// Follow glibc's malloc and free and Go's spans in each target (uprobes), so that heap
    /// memory reused by another request changes hands (on unless `--no-heap`).
    pub heap: bool,
    /// The share of one core the heap probes may cost (`--heap-budget`).
    pub heap_budget: f64,
    /// Take the call sites of growth, one stack per this many bytes per thread (`--stacks`).
    pub stack_every: Option<u64>,
    /// At most this many stacks per CPU per second (`--stack-rate`).
    pub stack_rate: u64,
    /// Turn the kernel's BPF statistics on while recording, for each program's cost
    /// (`--bpf-stats`).
    pub bpf_stats: bool,
}

/// What `memwatch ci` needs from a recording it drives.
#[derive(Debug, Default)]
pub struct Hooks {
    /// How the command is started.
    pub spawn: SpawnOptions,
    /// Receives the command's PID once it runs traced.
    pub started: Option<tokio::sync::oneshot::Sender<u32>>,
    /// Notified to stop recording.
    pub stop: Option<Arc<tokio::sync::Notify>>,
}
