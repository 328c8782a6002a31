//! A second estimate of what each route keeps, that needs no probe: the change of a retained
//! signal per interval (the targets' resident memory) against how many requests of each route
//! ended in that interval, fitted by non-negative least squares. A route that keeps memory
//! makes the signal rise with its count; one whose memory is freed (or reused) does not.
//!
//! It rests on nothing but the samples and the request counts, so it covers runtimes no hook
//! reaches and checks the origin figures when a runtime's allocator changes. It needs the
//! routes' counts to vary independently across intervals: routes always hit together cannot be
//! told apart, and it says so.
//!
//! `fit.rs` holds the fit itself, on plain numbers; `over_recording.rs` builds what is fitted
//! from a recording and sets each route's estimate; `kept_from.rs` decides which routes take
//! it as their figure.

mod fit;
pub mod kept_from;
pub mod over_recording;

pub use fit::{Coefficient, Fit, fit, fit_robust, nnls};
