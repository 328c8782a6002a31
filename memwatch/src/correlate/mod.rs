//! Correlation: connections → HTTP requests → attribution.
pub mod route;
