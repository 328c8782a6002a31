//! memwatch: which requests make this process's memory grow?
//!
//! Data flows one way (see `docs/architecture.md`):
//! sources ([`probe`] ring buffer, [`source`] /proc sampler and access-log tail) →
//! [`correlate`] (connections → HTTP requests → attribution) → [`recording`] → views
//! ([`report`]). [`commands`] glues them per subcommand.

pub mod cli;
pub mod commands;
pub mod correlate;
pub mod error;
pub mod http;
pub mod probe;
pub mod profile;
pub mod recording;
pub mod report;
pub mod server;
pub mod source;
pub mod spawn;

/// The kernel side's eBPF object: the one committed under `memwatch-ebpf/object/`, embedded by
/// `build.rs` (see `cargo xtask ebpf`).
pub static EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/memwatch.bpf.o"));
