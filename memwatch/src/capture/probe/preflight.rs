//! Checks that run before anything is loaded: privileges, tracefs, tracepoints, and the layout
//! of every tracepoint record the kernel side reads.

use std::path::{Path, PathBuf};

use super::{
    error::FormatError,
    format::{self, Offsets},
    loader::ProbeConfig,
};
use crate::error::SetupError;

pub const TRACEFS: &str = "/sys/kernel/tracing";

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Effective capability bits of this process, from /proc/self/status.
fn effective_caps() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0)
}

/// Names of the relevant capabilities present in `caps`, for the error message.
fn describe(caps: u64) -> String {
    let names: Vec<&str> = [
        (CAP_BPF, "CAP_BPF"),
        (CAP_PERFMON, "CAP_PERFMON"),
        (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
    ]
    .into_iter()
    .filter(|(bit, _)| caps & (1 << bit) != 0)
    .map(|(_, name)| name)
    .collect();
    if names.is_empty() {
        "none of them".to_owned()
    } else {
        format!("only {}", names.join(", "))
    }
}

/// Loading and attaching needs CAP_BPF + CAP_PERFMON, or CAP_SYS_ADMIN; mounting tracefs needs
/// CAP_SYS_ADMIN. RLIMIT_MEMLOCK is not needed on kernels >= 5.11 and is not checked.
pub fn check_privileges() -> Result<(), SetupError> {
    let caps = effective_caps();
    let has = |bit: u32| caps & (1 << bit) != 0;
    if has(CAP_SYS_ADMIN) && has(CAP_BPF) && has(CAP_PERFMON) {
        return Ok(());
    }
    Err(SetupError::Privileges {
        have: describe(caps),
    })
}

/// Makes sure tracefs is mounted, mounting it when it is not (many hosts do not at boot).
pub fn ensure_tracefs() -> Result<(), SetupError> {
    let events = Path::new(TRACEFS).join("events");
    if events.is_dir() {
        return Ok(());
    }
    tracing::info!("tracefs is not mounted; mounting it at {TRACEFS}");
    let target = c"/sys/kernel/tracing";
    // SAFETY: all pointers are valid NUL-terminated strings; data is null.
    let rc = unsafe {
        libc::mount(
            c"nodev".as_ptr(),
            target.as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        // Another process (a second memwatch starting at the same moment) mounted it between
        // the check and the mount: EBUSY, and tracefs is there.
        if err.raw_os_error() == Some(libc::EBUSY) && events.is_dir() {
            return Ok(());
        }
        return Err(SetupError::Tracefs {
            reason: err.to_string(),
        });
    }
    if !events.is_dir() {
        return Err(SetupError::Tracefs {
            reason: format!("{} is still missing after mounting", events.display()),
        });
    }
    Ok(())
}

/// Path of a tracepoint's directory in tracefs.
pub fn tracepoint_dir(category: &str, name: &str) -> PathBuf {
    Path::new(TRACEFS).join("events").join(category).join(name)
}

/// Fails with the first tracepoint of `wanted` that this kernel lacks.
pub fn check_tracepoints<'a>(
    wanted: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), SetupError> {
    for (category, name) in wanted {
        let path = tracepoint_dir(category, name);
        if !path.is_dir() {
            return Err(SetupError::MissingTracepoint {
                name: format!("{category}:{name}"),
                path,
            });
        }
    }
    Ok(())
}

/// Reads the format file of every tracepoint whose record the kernel side reads, and checks
/// each field read against it: the fixed syscall offsets must match, and the others' offsets
/// are returned for [`super::Probe::load`] to set as load-time globals. Fails, naming the
/// tracepoint and field, on the first field that is missing, moved or of another width.
pub fn check_formats(config: &ProbeConfig) -> Result<Offsets, SetupError> {
    let mut offsets = Offsets::default();
    for (category, name, reads) in config.field_reads() {
        let tracepoint = format!("{category}:{name}");
        let path = tracepoint_dir(category, name).join("format");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(source) => {
                return Err(FormatError::Unreadable {
                    tracepoint,
                    path,
                    source,
                }
                .into());
            }
        };
        let parsed = match format::parse(&text) {
            Ok(parsed) => parsed,
            Err(error) => {
                return Err(FormatError::Malformed {
                    tracepoint,
                    path,
                    error,
                }
                .into());
            }
        };
        if let Err(mismatch) = offsets.resolve(&parsed, reads) {
            return Err(FormatError::Field {
                tracepoint,
                path,
                mismatch,
            }
            .into());
        }
        tracing::debug!(%tracepoint, fields = reads.len(), "tracepoint format checked");
    }
    Ok(offsets)
}

/// `PF_KTHREAD` in the flags of /proc/PID/stat (include/linux/sched.h): a kernel thread.
const PF_KTHREAD: u32 = 0x0020_0000;

/// A target PID must exist, be a user process, and not be memwatch; PID 1 with its forks
/// followed (every process on the machine) needs `force`.
pub fn check_pid(pid: u32, follow_forks: bool, force: bool) -> Result<(), SetupError> {
    if pid == std::process::id() {
        return Err(SetupError::SelfTarget { pid });
    }
    if pid == 0 || !Path::new(&format!("/proc/{pid}")).is_dir() {
        return Err(SetupError::NoSuchPid { pid });
    }
    let stat = i32::try_from(pid)
        .ok()
        .and_then(|p| ::procfs::process::Process::new(p).ok())
        .and_then(|p| p.stat().ok());
    if let Some(stat) = stat
        && stat.flags & PF_KTHREAD != 0
    {
        return Err(SetupError::KernelThread {
            pid,
            name: stat.comm,
        });
    }
    if pid == 1 && follow_forks && !force {
        return Err(SetupError::InitTarget);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_missing_capabilities() {
        assert_eq!(describe(0), "none of them");
        assert_eq!(describe(1 << CAP_BPF), "only CAP_BPF");
        assert_eq!(
            describe((1 << CAP_BPF) | (1 << CAP_SYS_ADMIN)),
            "only CAP_BPF, CAP_SYS_ADMIN"
        );
    }

    #[test]
    fn rejects_self_and_missing_pids() {
        assert!(matches!(
            check_pid(std::process::id(), true, true),
            Err(SetupError::SelfTarget { .. })
        ));
        assert!(matches!(
            check_pid(0, true, true),
            Err(SetupError::NoSuchPid { pid: 0 })
        ));
        // PIDs are at most 2^22 on Linux.
        assert!(matches!(
            check_pid(4_194_304 + 17, true, true),
            Err(SetupError::NoSuchPid { .. })
        ));
    }

    /// PID 1 with its forks is every process: refused unless forced or alone. A kernel thread
    /// (kthreadd, PID 2 outside a container) is refused whatever the flags.
    #[test]
    fn refuses_init_unless_forced_and_kernel_threads() {
        assert!(matches!(
            check_pid(1, true, false),
            Err(SetupError::InitTarget)
        ));
        assert!(check_pid(1, true, true).is_ok());
        assert!(check_pid(1, false, false).is_ok());
        let kthreadd = std::fs::read_to_string("/proc/2/comm").unwrap_or_default();
        if kthreadd.trim() == "kthreadd" {
            assert!(matches!(
                check_pid(2, true, true),
                Err(SetupError::KernelThread { pid: 2, name }) if name == "kthreadd"
            ));
        }
    }
}
