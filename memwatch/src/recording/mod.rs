//! The recording file: SQLite, the contract between capture and every view.
//!
//! [`schema`] defines it (documented in `docs/recording.md`), [`writer`] fills it in batched
//! transactions from a thread of its own, [`reader`] opens it with every check a user's file
//! deserves.

pub mod reader;
pub mod schema;
pub mod writer;

pub use reader::Recording;
pub use writer::{Row, Writer};
