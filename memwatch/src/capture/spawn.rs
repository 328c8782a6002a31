//! `record -- CMD`: the command is forked, held before exec until the probes are attached, then
//! released, so nothing it does from its first instruction is missed (as bcc's memleak `-c`).

use std::{
    ffi::{CString, OsString},
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::ffi::{OsStrExt, OsStringExt},
    },
    path::{Path, PathBuf},
};

use crate::error::SetupError;

/// A forked child waiting, before exec, for [`HeldChild::release`].
#[derive(Debug)]
pub struct HeldChild {
    pub pid: u32,
    go: OwnedFd,
}

fn is_executable(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: valid NUL-terminated path.
    path.is_file() && unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0
}

/// Resolves a command like a shell does: a path if it has a slash, else the first match on PATH.
pub fn resolve(command: &OsString) -> Result<PathBuf, SetupError> {
    let not_found = || SetupError::CommandNotFound {
        command: command.to_string_lossy().into_owned(),
    };
    let as_path = Path::new(command);
    if command.as_bytes().contains(&b'/') {
        return if is_executable(as_path) {
            Ok(as_path.to_owned())
        } else {
            Err(not_found())
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(command))
        .find(|p| is_executable(p))
        .ok_or_else(not_found)
}

fn cstring(s: OsString) -> Result<CString, SetupError> {
    CString::new(s.into_vec()).map_err(|e| SetupError::NulInArgument {
        argument: String::from_utf8_lossy(&e.into_vec()).into_owned(),
    })
}

/// How `record -- CMD` starts the command.
#[derive(Debug, Default)]
pub struct SpawnOptions {
    /// Put the command in a process group of its own (`memwatch ci` stops the whole group).
    pub new_group: bool,
    /// Send the command's standard error here instead of memwatch's.
    pub stderr: Option<OwnedFd>,
}

impl HeldChild {
    /// Forks `argv[0]` with `argv`, held before exec.
    pub fn spawn(argv: &[OsString]) -> Result<Self, SetupError> {
        Self::spawn_with(argv, &SpawnOptions::default())
    }

    /// As [`HeldChild::spawn`], with options.
    pub fn spawn_with(argv: &[OsString], options: &SpawnOptions) -> Result<Self, SetupError> {
        let stderr_fd = options.stderr.as_ref().map(AsRawFd::as_raw_fd);
        let new_group = options.new_group;
        let first = argv.first().ok_or_else(|| SetupError::CommandNotFound {
            command: String::new(),
        })?;
        let spawn_err = |what: &'static str| SetupError::Spawn {
            what,
            source: std::io::Error::last_os_error(),
        };
        let path = cstring(resolve(first)?.into_os_string())?;
        let args: Vec<CString> = argv
            .iter()
            .cloned()
            .map(cstring)
            .collect::<Result<_, _>>()?;
        let env: Vec<CString> = std::env::vars_os()
            .filter_map(|(k, v)| {
                let mut kv = k.into_vec();
                kv.push(b'=');
                kv.extend(v.into_vec());
                CString::new(kv).ok()
            })
            .collect();
        let mut argp: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
        argp.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = env.iter().map(|a| a.as_ptr()).collect();
        envp.push(std::ptr::null());

        let mut fds = [0; 2];
        // SAFETY: fds is a valid two-int array.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(spawn_err("pipe2"));
        }
        // SAFETY: both fds were just created and are owned here.
        let (rx, tx) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: after fork the child only calls async-signal-safe functions (read, execve,
        // _exit) on memory prepared before the fork, as required in a multi-threaded parent.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(spawn_err("fork"));
        }
        if pid == 0 {
            let mut byte = 0u8;
            // SAFETY: see above; the read end is valid in the child, CLOEXEC closes it on exec.
            // setpgid and dup2 are async-signal-safe too.
            unsafe {
                if new_group {
                    libc::setpgid(0, 0);
                }
                if let Some(fd) = stderr_fd {
                    libc::dup2(fd, 2);
                }
                // Without its own copy of the write end, the child sees end-of-file, and exits,
                // if memwatch drops the held child without releasing it (a setup failure),
                // instead of waiting forever.
                libc::close(tx.as_raw_fd());
                if libc::read(rx.as_raw_fd(), (&raw mut byte).cast(), 1) == 1 {
                    libc::execve(path.as_ptr(), argp.as_ptr(), envp.as_ptr());
                }
                libc::_exit(127);
            }
        }
        drop(rx);
        if new_group {
            // Also from the parent, so the group exists before either side runs on.
            // SAFETY: plain syscall on our own child.
            unsafe { libc::setpgid(pid, pid) };
        }
        Ok(Self {
            pid: pid as u32,
            go: tx,
        })
    }

    /// Lets the child exec.
    pub fn release(self) -> std::io::Result<()> {
        let byte = 1u8;
        // SAFETY: valid fd and one-byte buffer.
        let n = unsafe { libc::write(self.go.as_raw_fd(), (&raw const byte).cast(), 1) };
        if n == 1 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}

/// Non-blocking reap: `Some(exit code)` once the child has exited (128+signal when killed).
pub fn try_reap(pid: u32) -> Option<i32> {
    let mut status = 0;
    // SAFETY: valid out-pointer; WNOHANG never blocks.
    let rc = unsafe { libc::waitpid(pid as i32, &mut status, libc::WNOHANG) };
    if rc != pid as i32 {
        return None;
    }
    if libc::WIFEXITED(status) {
        Some(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        Some(128 + libc::WTERMSIG(status))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits up to two seconds for `pid` to exit; its exit code.
    fn exit_code(pid: u32) -> Option<i32> {
        for _ in 0..200 {
            if let Some(code) = try_reap(pid) {
                return Some(code);
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        None
    }

    #[test]
    fn a_released_child_runs_its_command() {
        let child = HeldChild::spawn(&["true".into()]).unwrap();
        let pid = child.pid;
        child.release().unwrap();
        assert_eq!(exit_code(pid), Some(0));
    }

    /// A held child dropped without being released (memwatch's setup failed) exits with 127
    /// instead of waiting forever.
    #[test]
    fn a_dropped_held_child_exits() {
        let child = HeldChild::spawn(&["true".into()]).unwrap();
        let pid = child.pid;
        drop(child);
        assert_eq!(exit_code(pid), Some(127));
    }
}
