//! The recording file: SQLite, the contract between capture and every view.
//!
//! [`schema`] defines it (documented in `docs/recording.md`), [`create`] checks the output and
//! creates the file whole, [`writer`] fills it in batched transactions from a thread of its own,
//! storing each kind of row as `insert` says, [`reader`] opens it with every check a user's file
//! deserves, and [`query`] holds every question the views ask of it.

pub mod create;
mod insert;
pub mod query;
pub mod reader;
pub mod schema;
pub mod writer;

pub use reader::Recording;

use std::path::{Path, PathBuf};

/// Every file SQLite may keep for the recording at `path`: the database itself, its write-ahead
/// log, the log's shared-memory index, and a rollback journal.
pub fn files(path: &Path) -> [PathBuf; 4] {
    ["", "-wal", "-shm", "-journal"].map(|suffix| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    })
}

/// Removes the recording at `path` and its SQLite side files, as far as they exist; failures are
/// logged, not returned (this cleans up after something else failed).
pub fn remove(path: &Path) {
    for file in files(path) {
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(path = %file.display(), error = %e, "could not remove"),
        }
    }
}
pub use writer::Writer;

/// Switches a finished recording that readers held open while it was written (`serve`,
/// `record --metrics`) back to a single rollback-journal file, once they are gone.
pub fn finalize(path: &Path) -> Result<(), crate::error::WriteError> {
    let sqlite = |source| crate::error::WriteError::Sqlite {
        path: path.to_owned(),
        source,
    };
    let conn = rusqlite::Connection::open(path).map_err(sqlite)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sqlite)?;
    conn.pragma_update(None, "wal_checkpoint", "TRUNCATE")
        .map_err(sqlite)?;
    conn.pragma_update(None, "journal_mode", "DELETE")
        .map_err(sqlite)
}
