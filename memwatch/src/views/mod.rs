//! What a user sees of a recording: the report ([`report`]) with its call sites per route
//! ([`call_sites`]) and as text ([`report_text`]), allocation profiles and their comparison
//! ([`profile`]) with the comparison as text and markdown ([`diff_text`]), resident memory by
//! call site as a tree for the page's icicle ([`flame`]) and as a pprof profile ([`pprof`]), the
//! figures for Prometheus ([`metrics`]) and what a fleet takes while recording ([`fleet`]), a
//! second estimate of what each route keeps by regression ([`regression`]), and the page with
//! its JSON API and `/metrics` ([`server`]).

pub mod call_sites;
pub mod diff_text;
pub mod flame;
pub mod fleet;
pub mod metrics;
pub mod pprof;
pub mod profile;
pub mod regression;
pub mod report;
#[cfg(test)]
mod report_json;
pub mod report_text;
pub mod server;
