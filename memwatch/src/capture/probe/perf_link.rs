//! A uprobe on a USDT probe that sits behind a semaphore, attached with the semaphore counted
//! by the kernel: aya 0.14's `UProbe::attach` cannot pass the kernel the semaphore's offset, so
//! the perf event is opened here (the `uprobe` PMU, its `ref_ctr_offset` in the upper half of
//! `config`) and the program linked to it with `BPF_LINK_CREATE`, as libbpf does.
//!
//! A USDT probe behind a semaphore is skipped by its program (`if (semaphore) probe();`) until
//! some tracer raises the semaphore. With `ref_ctr_offset` the kernel raises it in each process
//! that maps the file while the probe is attached and lowers it when the probe goes, as it
//! does for bpftrace and libbpf; memwatch writes nothing into the target itself.
//!
//! The two fds are owned: dropping a [`PerfLink`] detaches the probe (bpftop's RAII cleanup).

use std::{
    ffi::CString,
    io,
    os::{
        fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd},
        unix::ffi::OsStrExt as _,
    },
    path::Path,
};

/// The `uprobe` PMU's type, as the kernel numbers it on this boot.
const UPROBE_TYPE: &str = "/sys/bus/event_source/devices/uprobe/type";
/// `PERF_FLAG_FD_CLOEXEC`.
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
/// `PERF_UPROBE_REF_CTR_OFFSET_SHIFT`: where `config` holds the semaphore's offset.
const REF_CTR_SHIFT: u32 = 32;
/// `BPF_LINK_CREATE`, and `BPF_PERF_EVENT` as its attach type.
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_PERF_EVENT: u32 = 41;

/// An attached uprobe: the perf event and the BPF link on it.
#[derive(Debug)]
pub struct PerfLink {
    _link: OwnedFd,
    _event: OwnedFd,
}

/// `struct perf_event_attr` up to `config2` (`PERF_ATTR_SIZE_VER1`, 72 bytes) and zeros after,
/// as 64-bit words: every field the uprobe PMU reads is a whole word or the low half of one.
#[repr(C)]
struct PerfEventAttr([u64; 16]);

/// Attaches the loaded program `program` to `path` at file offset `offset` for process `pid`
/// alone, with the semaphore at file offset `semaphore` counted by the kernel (0: none), and
/// `cookie` for the program's `bpf_get_attach_cookie`.
pub fn attach(
    program: BorrowedFd<'_>,
    path: &Path,
    offset: u64,
    semaphore: u64,
    pid: u32,
    cookie: u64,
) -> io::Result<PerfLink> {
    let pmu: u64 = std::fs::read_to_string(UPROBE_TYPE)?
        .trim()
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{UPROBE_TYPE}: {e}")))?;
    let path = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let size = std::mem::size_of::<PerfEventAttr>() as u64;
    let mut attr = PerfEventAttr([0; 16]);
    // type (u32) and size (u32).
    attr.0[0] = pmu | (size << 32);
    // config: the semaphore's offset (bit 0 clear: an entry probe, not a return probe).
    attr.0[1] = semaphore << REF_CTR_SHIFT;
    // sample_period, as the kernel's own uprobe events have it.
    attr.0[2] = 1;
    // wakeup_events (the low half).
    attr.0[6] = 1;
    // config1: the path; config2: the offset in the file.
    attr.0[7] = path.as_ptr() as u64;
    attr.0[8] = offset;
    let pid =
        libc::pid_t::try_from(pid).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: the attribute and the path it points to outlive the call; the kernel reads
    // `size` bytes of the attribute, all initialised.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr as *const PerfEventAttr,
            pid,
            -1 as libc::c_int,
            -1 as libc::c_int,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd, and nothing else owns it.
    let event = unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) };
    // `union bpf_attr`'s link_create: prog_fd, target_fd, attach_type, flags (u32 each), then
    // perf_event.bpf_cookie (u64); zeros after.
    let mut link_attr = [0u64; 8];
    // An fd is never negative, so it fits a u32 as the kernel takes it.
    let fd_word = |fd: libc::c_int| u64::from(fd.unsigned_abs());
    link_attr[0] = fd_word(program.as_raw_fd()) | (fd_word(event.as_raw_fd()) << 32);
    link_attr[1] = u64::from(BPF_PERF_EVENT);
    link_attr[2] = cookie;
    // SAFETY: the attribute outlives the call and its size is passed with it.
    let link = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_LINK_CREATE,
            link_attr.as_ptr(),
            std::mem::size_of_val(&link_attr) as libc::c_uint,
        )
    };
    if link < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(PerfLink {
        // SAFETY: as above.
        _link: unsafe { OwnedFd::from_raw_fd(link as libc::c_int) },
        _event: event,
    })
}
