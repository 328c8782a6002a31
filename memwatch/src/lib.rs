//! memwatch: which requests make this process's memory grow?
//!
//! Data flows one way (see `docs/architecture.md`), and the modules are listed in its order:
//! [`capture`] (the eBPF ring buffer, /proc, access logs, the traced command) → [`correlate`]
//! (connections → HTTP requests → attribution) → [`recording`] → [`views`] (report, profile,
//! the page). [`session`] runs that flow for one recording; [`commands`] are thin subcommands.
//! [`error`] and [`model`] sit below everything: errors, and the rows every stage passes on.

/// `eprintln!` that never panics: a closed stderr (`memwatch record ... 2>&1 | head`) must not
/// stop a recording, so what cannot be said is dropped.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub mod error;
pub mod model;
pub mod private;
pub mod units;

pub mod capture;
pub mod correlate;
pub mod recording;
pub mod views;

pub mod session;

pub mod cli;
pub mod commands;

/// The kernel side's eBPF object: the one committed under `memwatch-ebpf/object/`, embedded by
/// `build.rs` (see `cargo xtask ebpf`).
pub static EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/memwatch.bpf.o"));
