//! What memwatch writes is readable by the person who ran it and by no one else: a recording
//! holds every request's target with its query string, `Host` names, the traced processes'
//! command lines, access-log lines and call stacks. Files are created mode 0600 (as `perf
//! record` makes `perf.data`), and under sudo they are given to the user who ran it, so that
//! `memwatch report FILE` works without sudo while other users still cannot read them.
//!
//! Below everything, like `units`: it imports nothing of memwatch's own.

use std::{
    fs::{File, OpenOptions},
    io::{self, Write as _},
    os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _},
    path::Path,
};

/// A token that guards the page or `/metrics`: compared, never shown. Its `Debug` hides it,
/// so no log line made from a type that holds one can leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::ops::Deref for Secret {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// The mode of every file memwatch creates.
pub const FILE_MODE: u32 = 0o600;

/// The user a file is given to: the one who ran `sudo memwatch ...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

impl Owner {
    /// Under sudo (`SUDO_UID` and `SUDO_GID` set, memwatch running as root), the invoking user;
    /// otherwise `None`: files stay the running user's.
    pub fn invoking() -> Option<Self> {
        Self::from_env(
            // SAFETY: geteuid has no preconditions.
            unsafe { libc::geteuid() },
            std::env::var("SUDO_UID").ok().as_deref(),
            std::env::var("SUDO_GID").ok().as_deref(),
        )
    }

    fn from_env(euid: u32, uid: Option<&str>, gid: Option<&str>) -> Option<Self> {
        if euid != 0 {
            return None;
        }
        let uid = uid?.trim().parse().ok()?;
        let gid = gid?.trim().parse().ok()?;
        // sudo run by root itself: nothing to give.
        (uid != 0).then_some(Self { uid, gid })
    }

    /// The user's name, for messages (the uid when it has none).
    pub fn name(self) -> String {
        user_name(self.uid).unwrap_or_else(|| format!("uid {}", self.uid))
    }
}

/// The login name of `uid`, from the password database.
pub fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: an all-zero passwd is a valid out-parameter (pointers null, integers 0).
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; buf outlives the strings pwd points into,
    // which are read before it is dropped.
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut found,
        )
    };
    if rc != 0 || found.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: getpwuid_r succeeded, so pw_name is a NUL-terminated string inside buf.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

/// Options that create a file with [`FILE_MODE`] (an existing file keeps its own mode: see
/// [`make_private`]).
pub fn options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.write(true).mode(FILE_MODE);
    o
}

/// `file` gets mode 0600 and, under sudo, the invoking user as its owner.
pub fn make_private(file: &File) -> io::Result<()> {
    file.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))?;
    if let Some(owner) = Owner::invoking() {
        std::os::unix::fs::fchown(file, Some(owner.uid), Some(owner.gid))?;
    }
    Ok(())
}

/// Writes `bytes` to `path` (created or truncated) as a private file.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = options().create(true).truncate(true).open(path)?;
    make_private(&file)?;
    file.write_all(bytes)?;
    file.sync_data()
}

/// Who can read a file memwatch wrote, for the line that names it: `(yours, alice, mode 0600)`
/// under sudo, `(mode 0600)` otherwise.
pub fn describe() -> String {
    match Owner::invoking() {
        Some(owner) => format!(
            "(given to {}, mode 0600: readable by no other user)",
            owner.name()
        ),
        None => "(mode 0600: readable by no other user)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_invoking_user_only_under_sudo_as_root() {
        assert_eq!(
            Owner::from_env(0, Some("1000"), Some("1001")),
            Some(Owner {
                uid: 1000,
                gid: 1001
            })
        );
        assert_eq!(Owner::from_env(1000, Some("1000"), Some("1000")), None);
        assert_eq!(Owner::from_env(0, None, Some("1000")), None);
        assert_eq!(Owner::from_env(0, Some("x"), Some("1000")), None);
        assert_eq!(Owner::from_env(0, Some("0"), Some("0")), None);
    }

    #[test]
    fn written_files_are_0600_whatever_the_umask_and_the_old_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.json");
        std::fs::write(&path, b"old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write(&path, b"new").unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
    }

    #[test]
    fn a_secret_is_never_shown() {
        let s = Secret::new("s3cret");
        assert_eq!(
            format!("{s:?} {:?}", Some(s.clone())),
            "Secret(***) Some(Secret(***))"
        );
        assert_eq!(&*s, "s3cret");
    }

    #[test]
    fn root_has_a_name() {
        assert_eq!(user_name(0).as_deref(), Some("root"));
    }
}
