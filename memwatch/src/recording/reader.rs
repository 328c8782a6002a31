//! Opens a recording with every check a user's file deserves: missing, not a recording,
//! truncated or corrupt, or from a newer schema.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension as _, ffi::ErrorCode};

use super::schema::{APPLICATION_ID, HAS_ORIGIN, HAS_STACKS, HAS_VM_ORIGIN, SCHEMA_VERSION};
use crate::{error::RecordingError, model::meta};

/// An open recording. Live and offline views read through this same type, with the queries of
/// [`super::query`].
pub struct Recording {
    conn: Connection,
    path: PathBuf,
    schema_version: i64,
    /// Whether it carries retained-memory figures; fixed when it is written, so read once here.
    has_origin: bool,
    has_vm_origin: bool,
    /// Whether its schema has call-site tables (schema 5; empty unless `record --stacks`).
    has_stacks: bool,
}

impl std::fmt::Debug for Recording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recording")
            .field("path", &self.path)
            .field("schema_version", &self.schema_version)
            .field("has_origin", &self.has_origin)
            .field("has_vm_origin", &self.has_vm_origin)
            .field("has_stacks", &self.has_stacks)
            .finish_non_exhaustive()
    }
}

impl Recording {
    /// Opens and validates `path`.
    pub fn open(path: &Path) -> Result<Self, RecordingError> {
        let path_buf = || path.to_owned();
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => return Err(RecordingError::IsDirectory { path: path_buf() }),
            Ok(m) if !m.is_file() => {
                return Err(RecordingError::NotARecording { path: path_buf() });
            }
            // A recording being written may hold everything in its write-ahead log yet.
            Ok(m) if m.len() == 0 && !has_wal(path) => {
                return Err(RecordingError::Empty { path: path_buf() });
            }
            Ok(_) => {}
            Err(_) => return Err(RecordingError::Missing { path: path_buf() }),
        }
        // A file this user may not read says so, and whose it is, before SQLite says less.
        if let Err(source) = std::fs::File::open(path)
            && source.kind() == std::io::ErrorKind::PermissionDenied
        {
            use std::os::unix::fs::MetadataExt as _;
            let meta = std::fs::metadata(path).ok();
            let uid = meta.as_ref().map_or(0, |m| m.uid());
            return Err(RecordingError::Unreadable {
                path: path.to_owned(),
                owner: crate::private::user_name(uid).unwrap_or_else(|| format!("uid {uid}")),
                mode: meta.map_or(0, |m| m.mode() & 0o7777),
                source,
            });
        }
        // Read-write so that SQLite can recover a WAL left by a killed recorder; fall back to
        // read-only for files the user may not write.
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .or_else(|_| {
            Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
        })
        .map_err(|e| classify(path, e))?;
        let app_id: i64 = conn
            .pragma_query_value(None, "application_id", |r| r.get(0))
            .map_err(|e| classify(path, e))?;
        if app_id != APPLICATION_ID {
            tracing::debug!(app_id, "SQLite application id is not memwatch's");
            return Err(RecordingError::NotARecording {
                path: path.to_owned(),
            });
        }
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| classify(path, e))?;
        if version > SCHEMA_VERSION {
            return Err(RecordingError::NewerSchema {
                path: path.to_owned(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|e| classify(path, e))?;
        if check != "ok" {
            return Err(RecordingError::Corrupt {
                path: path.to_owned(),
                reason: check,
            });
        }
        // The views ask a few dozen distinct questions, the page every second: keep them all
        // prepared.
        conn.set_prepared_statement_cache_capacity(64);
        // Retained figures need schema 3 and eBPF (`--no-ebpf` sees no pages). `meta.ebpf` is
        // written when the recording is created and absent from old ones (which had eBPF).
        let ebpf: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [meta::EBPF], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| classify(path, e))?;
        let has_origin = version >= HAS_ORIGIN && ebpf.as_deref() != Some("false");
        Ok(Self {
            conn,
            path: path.to_owned(),
            schema_version: version,
            has_origin,
            has_vm_origin: has_origin && version >= HAS_VM_ORIGIN,
            has_stacks: has_origin && version >= HAS_STACKS,
        })
    }

    /// Whether this recording carries retained-memory figures.
    pub fn has_origin(&self) -> bool {
        self.has_origin
    }

    /// Whether this recording carries the origin of address space (schema 4).
    pub fn has_vm_origin(&self) -> bool {
        self.has_vm_origin
    }

    /// Whether this recording's schema has call-site tables (schema 5). They are empty unless
    /// it was recorded with `--stacks` (`meta.stacks`).
    pub fn has_stacks(&self) -> bool {
        self.has_stacks
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn schema_version(&self) -> i64 {
        self.schema_version
    }

    /// The underlying connection, for [`super::query`]: the views ask their questions there.
    pub(super) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Maps a query failure to the error a user should see.
    pub(super) fn error(&self, e: rusqlite::Error) -> RecordingError {
        classify(&self.path, e)
    }
}

/// Whether `path` has a non-empty SQLite write-ahead log beside it.
fn has_wal(path: &Path) -> bool {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(wal).is_ok_and(|m| m.len() > 0)
}

fn classify(path: &Path, e: rusqlite::Error) -> RecordingError {
    let code = e.sqlite_error_code();
    match code {
        Some(ErrorCode::NotADatabase) => RecordingError::NotARecording {
            path: path.to_owned(),
        },
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::SystemIoFailure) => RecordingError::Corrupt {
            path: path.to_owned(),
            reason: e.to_string(),
        },
        _ => RecordingError::Sqlite {
            path: path.to_owned(),
            source: e,
        },
    }
}
