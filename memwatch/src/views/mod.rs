//! What a user sees of a recording: the report ([`report`]) with its call sites per route
//! ([`call_sites`]), allocation profiles and their comparison ([`profile`]), their rendering as
//! text and markdown ([`format`]), resident memory by call site as a tree for the page's icicle
//! ([`flame`]) and as a pprof profile ([`pprof`]), the figures for Prometheus ([`metrics`]), a
//! second estimate of what each route keeps by regression ([`regression`]), and the page with
//! its JSON API and `/metrics` ([`server`]).

pub mod call_sites;
pub mod flame;
pub mod format;
pub mod metrics;
pub mod pprof;
pub mod profile;
pub mod regression;
pub mod report;
pub mod server;
