//! The kernel side from user space: checks before loading ([`preflight`]), tracepoint format
//! files ([`format`]), loading and attaching ([`loader`], failing with an [`error::LoadError`]),
//! and typed events from the ring buffer ([`event`]).

pub mod error;
pub mod event;
pub mod format;
pub mod loader;
pub mod preflight;

pub use event::{Event, NetRecord};
pub use loader::{Probe, ProbeConfig};
