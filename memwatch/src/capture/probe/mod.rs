//! The kernel side from user space: checks before loading ([`preflight`], which reads this
//! kernel's tracepoint formats with [`format`]), loading and attaching ([`loader`]), and typed
//! events from the ring buffer ([`event`]); glibc's allocator, per process, with `--heap`
//! ([`heap`]). Failures are typed in [`error`].

pub mod error;
pub mod event;
pub mod format;
pub mod heap;
pub mod loader;
pub mod preflight;

pub use event::{Event, NetRecord};
pub use loader::{Probe, ProbeConfig};
