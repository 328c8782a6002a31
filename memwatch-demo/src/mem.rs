//! Memory effects whose size is exact: anonymous mappings made, touched page by page and kept or
//! unmapped on the calling thread, so a tracer sees them as that thread's own syscalls and faults.

use std::io;
use std::sync::Mutex;

/// Pages are touched at this stride: one write per 4 KiB, so every page is faulted in even where
/// the system page is 4 KiB.
const TOUCH_STRIDE: usize = 4096;

/// Addresses of mappings that are never freed.
static LEAKED: Mutex<Vec<usize>> = Mutex::new(Vec::new());

fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size)
        .ok()
        .filter(|&s| s > 0)
        .unwrap_or(4096)
}

/// An anonymous private read-write mapping of at least `kib` KiB (rounded up to whole pages),
/// every page written once. Returns its address and length; `None` for `kib == 0`.
fn map_and_touch(kib: u64) -> io::Result<Option<(*mut u8, usize)>> {
    let bytes = usize::try_from(kib)
        .ok()
        .and_then(|k| k.checked_mul(1024))
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    if bytes == 0 {
        return Ok(None);
    }
    let page = page_size();
    let len = bytes.div_ceil(page) * page;
    // SAFETY: a fresh anonymous private mapping at an address the kernel picks; no existing memory
    // is affected.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let base = ptr.cast::<u8>();
    for offset in (0..len).step_by(TOUCH_STRIDE) {
        // SAFETY: `offset < len` and the mapping is `len` bytes, readable and writable. Volatile so
        // the write (and its page fault) is not optimised away.
        unsafe { base.add(offset).write_volatile(1) };
    }
    Ok(Some((base, len)))
}

/// Maps `kib` KiB, touches every page and keeps the mapping forever.
pub(crate) fn leak(kib: u64) -> io::Result<()> {
    if let Some((ptr, _len)) = map_and_touch(kib)? {
        LEAKED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(ptr as usize);
    }
    Ok(())
}

/// Maps `kib` KiB, touches every page, then unmaps it: faults taken, no net growth.
pub(crate) fn churn(kib: u64) -> io::Result<()> {
    if let Some((ptr, len)) = map_and_touch(kib)? {
        // SAFETY: `ptr`/`len` is exactly the mapping made above, not shared with anything else.
        let rc = unsafe { libc::munmap(ptr.cast(), len) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A buffer kept by the process and reused by every `/reuse` request: the heap-reuse shape. It
/// only grows (to the largest size asked for); each request writes every page of the part it
/// asked for, so only growth beyond the high-water mark faults new pages in.
static REUSED: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// Writes `kib` KiB of the process-wide reusable buffer, growing it first if needed.
pub(crate) fn reuse(kib: u64) -> io::Result<()> {
    let bytes = usize::try_from(kib)
        .ok()
        .and_then(|k| k.checked_mul(1024))
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut buf = REUSED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if buf.len() < bytes {
        let more = bytes - buf.len();
        buf.try_reserve_exact(more)
            .map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
        buf.resize(bytes, 0);
    }
    for offset in (0..bytes).step_by(TOUCH_STRIDE) {
        // Volatile: the write must happen even though nothing reads the buffer.
        // SAFETY: `offset < bytes <= buf.len()`.
        unsafe { buf.as_mut_ptr().add(offset).write_volatile(1) };
    }
    Ok(())
}

/// A mapping handed to the collector thread, as an address and length.
struct Garbage(usize, usize);

/// The collector: unmaps what `/deferred` requests hand it, [`COLLECT_AFTER`] later, on its own
/// thread — as a garbage collector frees memory after the request that allocated it ended.
static COLLECTOR: std::sync::OnceLock<Mutex<std::sync::mpsc::Sender<Garbage>>> =
    std::sync::OnceLock::new();

/// How long the collector waits before it frees a batch.
pub(crate) const COLLECT_AFTER: std::time::Duration = std::time::Duration::from_millis(200);

fn collector() -> &'static Mutex<std::sync::mpsc::Sender<Garbage>> {
    COLLECTOR.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Garbage>();
        let spawned = std::thread::Builder::new()
            .name("collector".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    std::thread::sleep(COLLECT_AFTER);
                    for Garbage(ptr, len) in std::iter::once(first).chain(rx.try_iter()) {
                        // SAFETY: each mapping was made by `deferred` and handed over whole;
                        // nothing else refers to it.
                        unsafe { libc::munmap(ptr as *mut libc::c_void, len) };
                    }
                }
            });
        if let Err(e) = spawned {
            eprintln!("memwatch-demo: cannot start the collector thread: {e}");
        }
        Mutex::new(tx)
    })
}

/// Maps `kib` KiB, touches every page and hands the mapping to the collector thread, which
/// unmaps it [`COLLECT_AFTER`] later: memory freed after its request, by another thread.
pub(crate) fn deferred(kib: u64) -> io::Result<()> {
    if let Some((ptr, len)) = map_and_touch(kib)? {
        let sent = collector()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .send(Garbage(ptr as usize, len));
        if sent.is_err() {
            // No collector: free it here rather than leak it.
            // SAFETY: the mapping made above, not shared.
            unsafe { libc::munmap(ptr.cast(), len) };
        }
    }
    Ok(())
}

/// Number of live leaked mappings.
#[cfg(test)]
fn leaked_mappings() -> usize {
    LEAKED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leak_and_churn() {
        let before = leaked_mappings();
        leak(0).unwrap();
        assert_eq!(leaked_mappings(), before);
        leak(5).unwrap();
        assert_eq!(leaked_mappings(), before + 1);
        churn(64).unwrap();
        churn(0).unwrap();
        reuse(64).unwrap();
        reuse(16).unwrap();
        assert_eq!(
            REUSED.lock().unwrap().len(),
            64 * 1024,
            "the buffer only grows"
        );
        deferred(8).unwrap();
        assert!(leak(u64::MAX).is_err());
    }
}
