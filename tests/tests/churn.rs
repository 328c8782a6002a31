//! Reliability tests (issue 15); see docs/reliability.md. Scaled by `tests::scaled`: short under `cargo xtask test`, long under `cargo xtask stress`.
