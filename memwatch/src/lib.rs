//! memwatch: which requests make this process's memory grow?
//!
//! Data flows one way (see `docs/architecture.md`):
//! sources ([`probe`] ring buffer, [`source`] /proc sampler and access-log tail) →
//! [`correlate`] (connections → HTTP requests → attribution) → [`recording`] → views
//! ([`report`]).

pub mod http;
pub mod source;
pub mod correlate;
