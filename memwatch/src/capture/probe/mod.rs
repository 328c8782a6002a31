//! The kernel side from user space: checks before loading ([`preflight`], which reads this
//! kernel's tracepoint formats with [`format`]), loading and attaching ([`loader`]), and typed
//! events from the ring buffer ([`event`]); glibc's allocator and Go's spans, per process,
//! unless `--no-heap` ([`heap`]); collected runtimes' own live-heap reports ([`gc`]), and Go's
//! own sampled heap ([`go_profile`]); the
//! probes' slow detach left to a child at the end
//! ([`linger`]); what each program cost the kernel, with `--bpf-stats` ([`stats`]). USDT notes
//! are read in [`usdt`], and a probe behind a semaphore attached through [`perf_link`].
//! Failures are typed in [`error`].

pub mod conns;
pub mod error;
pub mod event;
pub mod format;
pub mod gc;
pub mod go_profile;
pub mod heap;
pub mod linger;
pub mod loader;
pub mod perf_link;
pub mod preflight;
pub mod stats;
pub mod usdt;

pub use event::{Event, NetRecord};
pub use loader::{Probe, ProbeConfig};
