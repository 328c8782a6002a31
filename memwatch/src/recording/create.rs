//! Creates the recording file before anything is traced: the output path checked up front
//! ([`check_output`]), a [`Reserve`] of disk space taken beside it, and the file created whole
//! (schema and meta, built in memory, then given its name in one step), so that a file at the
//! recording's path is always a readable recording.

use std::{
    fs::{File, OpenOptions},
    io::{self, Write as _},
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
};

use rusqlite::Connection;

use super::schema;
use crate::error::SetupError;

/// Disk space held in reserve beside a recording while it is written, given back when writing
/// fails, so that the writer can still commit why it stopped and fold the write-ahead log into
/// the file. The log holds at most about SQLite's auto-checkpoint threshold (1000 pages, 4 MiB)
/// and one batch before a commit that fails.
pub const RESERVE_BYTES: u64 = 8 << 20;

const MIB: u64 = 1 << 20;

/// Disk space held by an unnamed file in the recording's directory (so on its filesystem):
/// invisible, and given back by the kernel whenever memwatch exits, even killed.
#[derive(Debug, Default)]
pub struct Reserve(Option<File>);

impl Reserve {
    /// Holds [`RESERVE_BYTES`] in `dir`.
    fn take(dir: &Path) -> io::Result<Self> {
        let file = unnamed_file(dir)?;
        allocate(&file, RESERVE_BYTES)?;
        Ok(Self(Some(file)))
    }

    /// Gives the space back.
    pub(super) fn release(&mut self) {
        if self.0.take().is_some() {
            tracing::debug!("disk space reserve released");
        }
    }
}

/// A file with no name in `dir`: `O_TMPFILE`, or on filesystems without it, a file unlinked as
/// soon as it is open.
fn unnamed_file(dir: &Path) -> io::Result<File> {
    match OpenOptions::new()
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE)
        .open(dir)
    {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EISDIR)) => {
            let path = dir.join(format!(".memwatch-reserve-{}", std::process::id()));
            let file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)?;
            std::fs::remove_file(&path)?;
            Ok(file)
        }
        other => other,
    }
}

/// Allocates `len` bytes of `file` on disk: `fallocate`, or zeros where it is not supported.
fn allocate(file: &File, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd as _;
    let len_off = libc::off_t::try_from(len).map_err(io::Error::other)?;
    // SAFETY: fallocate on a file descriptor we own; no memory is passed.
    if unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len_off) } == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::EOPNOTSUPP) {
        return Err(err);
    }
    let zeros = vec![0u8; MIB as usize];
    let mut file = file;
    for _ in 0..len.div_ceil(MIB) {
        file.write_all(&zeros)?;
    }
    Ok(())
}

/// Bytes an unprivileged writer may still use on the filesystem of `dir`, if it can be told.
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt as _;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: all-zero is a valid statvfs; statvfs fills it from a NUL-terminated path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    (unsafe { libc::statvfs(c.as_ptr(), &mut st) } == 0)
        .then(|| st.f_bavail.saturating_mul(st.f_frsize))
}

/// The directory the recording at `path` goes in.
fn directory_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Everything about the output path that can be wrong, before anything is loaded: it is a
/// directory, it exists (unless `force`), its directory is missing or read-only or not
/// writable, or its filesystem has no room for the [`Reserve`], which this takes and returns.
/// Creates nothing under a name.
pub fn check_output(path: &Path, force: bool) -> Result<Reserve, SetupError> {
    let dir = directory_of(path);
    if path.is_dir() || path.file_name().is_none() {
        return Err(SetupError::OutputIsDirectory {
            path: path.to_owned(),
        });
    }
    if !force && path.symlink_metadata().is_ok() {
        return Err(SetupError::OutputExists {
            path: path.to_owned(),
        });
    }
    match dir.metadata() {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(SetupError::OutputNotWritable {
                path: path.to_owned(),
                source: io::Error::from_raw_os_error(libc::ENOTDIR),
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(SetupError::OutputDirMissing {
                path: path.to_owned(),
                dir,
            });
        }
        Err(source) => {
            return Err(SetupError::OutputNotWritable {
                path: path.to_owned(),
                source,
            });
        }
    }
    Reserve::take(&dir).map_err(|source| match source.raw_os_error() {
        Some(libc::EROFS) => SetupError::OutputReadOnly {
            path: path.to_owned(),
            dir: dir.clone(),
        },
        Some(libc::EACCES | libc::EPERM) => SetupError::OutputDirNotWritable {
            path: path.to_owned(),
            dir: dir.clone(),
            source,
        },
        Some(libc::ENOSPC | libc::EDQUOT) => SetupError::OutputNoSpace {
            path: path.to_owned(),
            free_mib: free_bytes(&dir).unwrap_or(0) / MIB,
            reserve_mib: RESERVE_BYTES / MIB,
        },
        _ => SetupError::OutputNotWritable {
            path: path.to_owned(),
            source,
        },
    })
}

pub(super) fn sqlite_err(path: &Path, e: &rusqlite::Error) -> SetupError {
    SetupError::OutputNotWritable {
        path: path.to_owned(),
        source: io::Error::other(e.to_string()),
    }
}

/// Creates the recording at `path` with its schema and `meta`, in one step, so that no instant
/// leaves a partial file or a temporary one: the file is built in memory, written to an unnamed
/// file in the directory (`O_TMPFILE`) and linked to `path`, never over an existing file
/// (`force` removes that first). Where the filesystem has no unnamed files, a temporary name
/// beside `path` is renamed instead.
pub(super) fn create_file(
    path: &Path,
    force: bool,
    meta: &[(&str, String)],
) -> Result<(), SetupError> {
    let head = head_bytes(meta).map_err(|e| sqlite_err(path, &e))?;
    let dir = directory_of(path);
    let not_writable = |source| SetupError::OutputNotWritable {
        path: path.to_owned(),
        source,
    };
    if force {
        remove_old(path)?;
    }
    // Private from its first byte (see `crate::private`): SQLite gives the -wal and -shm files
    // the database's mode and, running as root, its owner.
    match crate::private::options()
        .custom_flags(libc::O_TMPFILE)
        .open(&dir)
    {
        Ok(mut file) => {
            crate::private::make_private(&file).map_err(not_writable)?;
            file.write_all(&head).map_err(not_writable)?;
            match link_unnamed(&file, path) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(SetupError::OutputExists {
                        path: path.to_owned(),
                    });
                }
                Err(e) => tracing::debug!(error = %e, "cannot link an unnamed file; renaming one"),
            }
        }
        Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EISDIR)) => {}
        Err(e) => return Err(not_writable(e)),
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .ok_or_else(|| SetupError::OutputIsDirectory {
            path: path.to_owned(),
        })?;
    let temp = dir.join(format!(".{name}.memwatch-{}", std::process::id()));
    let created = crate::private::write(&temp, &head)
        .map_err(not_writable)
        .and_then(|()| move_into_place(&temp, path));
    if created.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    created
}

/// A new recording's bytes: the schema and `meta`, built in memory.
fn head_bytes(meta: &[(&str, String)]) -> rusqlite::Result<Vec<u8>> {
    let mut conn = Connection::open_in_memory()?;
    let tx = conn.transaction()?;
    tx.pragma_update(None, "application_id", schema::APPLICATION_ID)?;
    tx.pragma_update(None, "user_version", schema::SCHEMA_VERSION)?;
    tx.execute_batch(schema::CREATE)?;
    for (k, v) in meta {
        super::insert::meta(&tx, k, v)?;
    }
    tx.commit()?;
    Ok(conn.serialize(rusqlite::MAIN_DB)?.to_vec())
}

/// Gives the unnamed `file` the name `path`, unless `path` exists.
fn link_unnamed(file: &File, path: &Path) -> io::Result<()> {
    use std::os::{fd::AsRawFd as _, unix::ffi::OsStrExt as _};
    let from = std::ffi::CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
    let to = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: two NUL-terminated paths; the first is the magic link of a descriptor we hold,
    // which AT_SYMLINK_FOLLOW resolves to the unnamed file (see open(2), O_TMPFILE).
    let linked = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if linked == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `--force`: the recording at `path` and its SQLite side files go.
fn remove_old(path: &Path) -> Result<(), SetupError> {
    for p in super::files(path) {
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(SetupError::OutputNotWritable { path: p, source }),
        }
    }
    Ok(())
}

/// Renames `temp` to `path` unless `path` exists (`renameat2(RENAME_NOREPLACE)`; a hard link
/// where the filesystem lacks it).
fn move_into_place(temp: &Path, path: &Path) -> Result<(), SetupError> {
    use std::os::unix::ffi::OsStrExt as _;
    let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes());
    let (Ok(from), Ok(to)) = (c(temp), c(path)) else {
        return Err(SetupError::OutputNotWritable {
            path: path.to_owned(),
            source: io::Error::from_raw_os_error(libc::EINVAL),
        });
    };
    // SAFETY: two NUL-terminated paths, relative to the working directory.
    let renamed = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    let result = if renamed == 0 {
        Ok(())
    } else {
        match io::Error::last_os_error() {
            e if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => {
                // The link leaves the temporary name behind, which a rename would not: it goes
                // (the recording is in place whether or not it can).
                std::fs::hard_link(temp, path).map(|()| {
                    let _ = std::fs::remove_file(temp);
                })
            }
            e => Err(e),
        }
    };
    result.map_err(|source| {
        if source.kind() == io::ErrorKind::AlreadyExists {
            SetupError::OutputExists {
                path: path.to_owned(),
            }
        } else {
            SetupError::OutputNotWritable {
                path: path.to_owned(),
                source,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{model::meta, recording::Writer};

    /// The output checks name what is wrong, and create nothing.
    #[test]
    fn check_output_refuses_bad_paths_and_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing").join("r.db");
        assert!(matches!(
            check_output(&missing, false),
            Err(SetupError::OutputDirMissing { dir: d, .. }) if d == dir.path().join("missing")
        ));
        assert!(matches!(
            check_output(dir.path(), true),
            Err(SetupError::OutputIsDirectory { .. })
        ));
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        assert!(matches!(
            check_output(&file.join("r.db"), false),
            Err(SetupError::OutputNotWritable { source, .. })
                if source.raw_os_error() == Some(libc::ENOTDIR)
        ));
        assert!(matches!(
            check_output(&file, false),
            Err(SetupError::OutputExists { .. })
        ));
        let path = dir.path().join("r.db");
        let reserve = check_output(&path, false).unwrap();
        assert!(reserve.0.is_some(), "the reserve is held");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("file")]);
    }

    /// The recording appears whole, never over an existing file unless forced, and leaves no
    /// temporary file behind.
    #[test]
    fn a_recording_is_created_whole_and_never_over_another_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        std::fs::write(&path, b"someone else's").unwrap();
        assert!(matches!(
            Writer::create(&path, &[(meta::KERNEL, "k".into())]),
            Err(SetupError::OutputExists { .. })
        ));
        assert_eq!(std::fs::read(&path).unwrap(), b"someone else's");
        let writer = Writer::create_reserved(
            &path,
            true,
            Reserve::default(),
            &[(meta::KERNEL, "k".into())],
        )
        .unwrap();
        // Readable before the first commit: schema and meta are there from the start.
        let db = Connection::open(&path).unwrap();
        let kernel: String = db
            .query_row("SELECT value FROM meta WHERE key = 'kernel'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(kernel, "k");
        drop(db);
        writer.finish().unwrap();
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["r.db"]);
    }
}
