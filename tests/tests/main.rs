//! memwatch's integration tests, as one test binary: each file beside this one is a module, so
//! the tests link once instead of once per file (ripgrep's `tests/tests.rs` does the same).
//! They need root and the release binaries: `cargo xtask test` builds and runs them. One file's
//! tests are a filter on the module's name:
//!
//! ```text
//! MEMWATCH_BIN=$PWD/target/release/memwatch \
//!     cargo test --release -p memwatch-tests --test main -- runtimes::
//! ```

mod accesslog;
mod browser;
mod callsites;
mod churn;
mod ci;
mod demo;
mod durability;
mod errors;
mod load;
mod memory;
mod metrics;
mod private;
mod requests;
mod retained;
mod runtimes;
mod web;
