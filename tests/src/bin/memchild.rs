//! A child whose memory behaviour is known exactly, for the integration tests.
//!
//! Modes (first argument):
//! - `exact`: 40 anonymous 1 MiB mmaps, each page touched; hold 400 ms; 20 munmaps; one mremap
//!   growing 1 MiB to 3 MiB; one brk growth of 8 MiB; two calls that fail (EINVAL).
//! - `threaded`: a second thread mallocs 64 MiB in 1 KiB pieces and touches them; prints
//!   `tid=N` first.
//! - `forker`: forks a child that forks a grandchild; the grandchild prints `grandchild=PID`,
//!   mmaps and touches 10 MiB, holds it 300 ms and exits.
//! - `family TRIGGER`: forks two children that wait for the file TRIGGER to exist, then each
//!   mmaps 10 MiB, prints `child=PID`, and exits; the parent waits for both.
//! - `sleeper SECS`: mmaps and touches 1 MiB every 50 ms for SECS seconds.
//! - `storm SECS`: mmap/munmap 64 KiB in a tight loop; prints the syscall rate.
//! - `storm-when TRIGGER SECS`: the same, once the file TRIGGER exists.
//! - `exit-soon MS`: sleeps MS milliseconds and exits.
//! - `huge N`: maps N transparent huge pages' worth (2 MiB-aligned), asks for huge pages
//!   (MADV_HUGEPAGE), writes one byte in each 2 MiB, prints `huge_kib=K` (the AnonHugePages the
//!   kernel gave it: 0 if it gave none), holds them 300 ms and exits.
//! - `cow-and-zero`: maps and writes 8 MiB, then forks a child that writes every page of it
//!   again (copy-on-write: the child's resident set does not grow) and reads every page of 8
//!   MiB it maps and never writes (the shared zero page: no growth either); the child prints
//!   `child=PID`, holds 300 ms and exits; the parent waits for it.
//! - `fork-stream EVERY_MS COUNT LIFE_MS`: forks COUNT children, one every EVERY_MS, printing
//!   `child=PID` for each; every child sleeps LIFE_MS and exits; the parent then reaps them.
//! - `touch KIB`: maps and touches KIB KiB and exits.
//! - `churn COUNT`: forks COUNT short-lived children as fast as it can, reaping as it goes. Each
//!   child maps and touches 264 KiB and exits, except every tenth, which execs `memchild touch
//!   136` instead. Every fiftieth child, a thread maps and touches 72 KiB and exits. Then a PID
//!   is reused: a child maps 1032 KiB and exits, the next PID is set to it (`ns_last_pid`), and
//!   the next child, given the same PID, maps 2056 KiB (up to 20 attempts). Prints `children=N
//!   per_s=R threads=T attempts=A reused=PID` (`reused=0`: no attempt got the PID). The sizes
//!   are odd so that no runtime mapping has them.
//! - `churn-when TRIGGER COUNT`: the same, once the file TRIGGER exists.

use std::{io::Write as _, time::Duration};

const MIB: usize = 1024 * 1024;
const PAGE: usize = 4096;

fn mmap_anon(len: usize) -> *mut u8 {
    // SAFETY: anonymous private mapping; the result is checked.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED, "mmap failed");
    p.cast()
}

fn touch(p: *mut u8, len: usize) {
    for off in (0..len).step_by(PAGE) {
        // SAFETY: `p..p+len` is a writable mapping owned by the caller.
        unsafe { p.add(off).write_volatile(1) };
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn exact() {
    let mut maps = Vec::new();
    for _ in 0..40 {
        let p = mmap_anon(MIB);
        touch(p, MIB);
        maps.push(p);
    }
    std::thread::sleep(Duration::from_millis(400));
    for p in maps.drain(..20) {
        // SAFETY: unmapping a mapping made above.
        assert_eq!(unsafe { libc::munmap(p.cast(), MIB) }, 0);
    }
    let old = maps[0];
    // SAFETY: growing a mapping made above; MAYMOVE lets the kernel move it.
    let grown = unsafe { libc::mremap(old.cast(), MIB, 3 * MIB, libc::MREMAP_MAYMOVE) };
    assert_ne!(grown, libc::MAP_FAILED);
    // SAFETY: sbrk grows the heap; the result is checked.
    let brk = unsafe { libc::sbrk(8 * MIB as libc::intptr_t) };
    assert_ne!(brk as isize, -1);
    // Two calls that fail with EINVAL: an unaligned munmap and an mmap without MAP_PRIVATE
    // or MAP_SHARED. Neither may count as growth.
    // SAFETY: both calls are rejected by the kernel before touching memory.
    unsafe {
        assert_eq!(
            libc::munmap(std::ptr::dangling_mut::<u8>().cast(), PAGE),
            -1
        );
        let p = libc::mmap(
            std::ptr::null_mut(),
            7 * MIB,
            libc::PROT_READ,
            libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_eq!(p, libc::MAP_FAILED);
    }
    std::thread::sleep(Duration::from_millis(200));
}

fn threaded() {
    let handle = std::thread::spawn(|| {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        say(&format!("tid={tid}"));
        let mut kept = Vec::with_capacity(65536);
        for _ in 0..65536 {
            // SAFETY: malloc of 1 KiB; checked and written within bounds.
            let p = unsafe { libc::malloc(1024) }.cast::<u8>();
            assert!(!p.is_null());
            // SAFETY: p points to 1024 writable bytes.
            unsafe { std::ptr::write_bytes(p, 7, 1024) };
            kept.push(p as usize);
        }
        std::thread::sleep(Duration::from_millis(400));
        kept.len()
    });
    let n = handle.join().unwrap_or(0);
    assert_eq!(n, 65536);
}

fn fork() -> i32 {
    // SAFETY: the fixture is single-threaded when it forks.
    unsafe { libc::fork() }
}

fn wait_all() {
    // SAFETY: reaps children; -1 means any child.
    while unsafe { libc::waitpid(-1, std::ptr::null_mut(), 0) } > 0 {}
}

fn forker() {
    if fork() == 0 {
        if fork() == 0 {
            say(&format!("grandchild={}", std::process::id()));
            let p = mmap_anon(10 * MIB);
            touch(p, 10 * MIB);
            std::thread::sleep(Duration::from_millis(300));
            std::process::exit(0);
        }
        wait_all();
        std::process::exit(0);
    }
    wait_all();
}

fn fork_stream(every_ms: u64, count: u32, life_ms: u64) {
    for _ in 0..count {
        let pid = fork();
        if pid == 0 {
            std::thread::sleep(Duration::from_millis(life_ms));
            // SAFETY: _exit in a forked child skips the parent's atexit handlers and buffers.
            unsafe { libc::_exit(0) };
        }
        say(&format!("child={pid}"));
        std::thread::sleep(Duration::from_millis(every_ms));
    }
    wait_all();
}

fn touch_kib(kib: usize) {
    touch(mmap_anon(kib * 1024), kib * 1024);
}

fn reap_ready() {
    // SAFETY: reaps exited children without waiting.
    while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
}

fn churn(count: u32) {
    let exe = std::env::current_exe().expect("own path");
    let exe = std::ffi::CString::new(exe.into_os_string().into_encoded_bytes()).expect("path");
    let argv = [
        exe.as_ptr(),
        c"touch".as_ptr(),
        c"136".as_ptr(),
        std::ptr::null(),
    ];
    let start = std::time::Instant::now();
    let mut threads = 0;
    for i in 0..count {
        if i % 50 == 0 {
            // Joined before the next fork: the fixture forks single-threaded.
            std::thread::spawn(|| touch_kib(72)).join().expect("thread");
            threads += 1;
        }
        if fork() == 0 {
            if i % 10 == 0 {
                // SAFETY: argv is NULL-terminated and outlives the call; on failure, exit.
                unsafe {
                    libc::execv(exe.as_ptr(), argv.as_ptr());
                    libc::_exit(3);
                }
            }
            touch_kib(264);
            // SAFETY: _exit in a forked child skips the parent's atexit handlers and buffers.
            unsafe { libc::_exit(0) };
        }
        reap_ready();
    }
    wait_all();
    let per_s = f64::from(count) / start.elapsed().as_secs_f64();
    let (mut attempts, mut reused) = (0, 0);
    while attempts < 20 && reused == 0 {
        attempts += 1;
        let first = fork();
        if first == 0 {
            touch_kib(1032);
            // SAFETY: as above.
            unsafe { libc::_exit(0) };
        }
        wait_all();
        // The next PID handed out is the one after ns_last_pid.
        if std::fs::write("/proc/sys/kernel/ns_last_pid", (first - 1).to_string()).is_err() {
            break;
        }
        let second = fork();
        if second == 0 {
            if std::process::id() == first as u32 {
                touch_kib(2056);
            }
            // SAFETY: as above.
            unsafe { libc::_exit(0) };
        }
        wait_all();
        if second == first {
            reused = first;
        }
    }
    say(&format!(
        "children={count} per_s={per_s:.0} threads={threads} attempts={attempts} reused={reused}"
    ));
}

fn family(trigger: &str) {
    for _ in 0..2 {
        if fork() == 0 {
            while !std::path::Path::new(trigger).exists() {
                std::thread::sleep(Duration::from_millis(10));
            }
            let p = mmap_anon(10 * MIB);
            touch(p, 10 * MIB);
            say(&format!("child={}", std::process::id()));
            std::thread::sleep(Duration::from_millis(300));
            std::process::exit(0);
        }
    }
    wait_all();
}

fn sleeper(secs: f64) {
    let end = std::time::Instant::now() + Duration::from_secs_f64(secs);
    while std::time::Instant::now() < end {
        let p = mmap_anon(MIB);
        touch(p, MIB);
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// mmap + touch + munmap of 64 KiB as fast as possible; prints `rate=CALLS_PER_SECOND`
/// (one call = one syscall).
fn storm(secs: f64) {
    let start = std::time::Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let mut iterations = 0u64;
    while std::time::Instant::now() < end {
        for _ in 0..256 {
            let p = mmap_anon(64 * 1024);
            // SAFETY: unmapping the mapping just made.
            unsafe { libc::munmap(p.cast(), 64 * 1024) };
        }
        iterations += 256;
    }
    let rate = (iterations * 2) as f64 / start.elapsed().as_secs_f64();
    say(&format!("rate={rate:.0}"));
}

fn huge(n: usize) {
    const HUGE: usize = 2 * MIB;
    let base = mmap_anon((n + 1) * HUGE) as usize;
    let start = base.next_multiple_of(HUGE);
    // SAFETY: `start..start + n * HUGE` lies inside the mapping just made.
    let rc = unsafe { libc::madvise(start as *mut libc::c_void, n * HUGE, libc::MADV_HUGEPAGE) };
    assert_eq!(rc, 0, "madvise(MADV_HUGEPAGE) failed");
    for i in 0..n {
        // SAFETY: inside the mapping, writable.
        unsafe { ((start + i * HUGE) as *mut u8).write_volatile(1) };
    }
    let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap_or_default();
    let kib: u64 = rollup
        .lines()
        .find(|l| l.starts_with("AnonHugePages:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    say(&format!("huge_kib={kib}"));
    std::thread::sleep(Duration::from_millis(300));
}

fn cow_and_zero() {
    let len = 8 * MIB;
    let p = mmap_anon(len);
    touch(p, len);
    // SAFETY: plain fork; the child only touches its own memory, prints and exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        touch(p, len);
        let zero = mmap_anon(len);
        let mut sum = 0u64;
        for off in (0..len).step_by(PAGE) {
            // SAFETY: inside the mapping, readable.
            sum += u64::from(unsafe { zero.add(off).read_volatile() });
        }
        say(&format!("child={} sum={sum}", std::process::id()));
        std::thread::sleep(Duration::from_millis(300));
        // SAFETY: exit the child without running the parent's atexit handlers twice.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waits for the child just forked.
    unsafe { libc::waitpid(pid, &mut status, 0) };
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    match arg(1) {
        "exact" => exact(),
        "threaded" => threaded(),
        "forker" => forker(),
        "family" => family(arg(2)),
        "sleeper" => sleeper(arg(2).parse().unwrap_or(5.0)),
        "storm" => storm(arg(2).parse().unwrap_or(2.0)),
        "storm-when" => {
            // Waits for the file TRIGGER to exist (a tracer is attached by then), then storms.
            while !std::path::Path::new(arg(2)).exists() {
                std::thread::sleep(Duration::from_millis(5));
            }
            storm(arg(3).parse().unwrap_or(2.0));
        }
        "cow-and-zero" => cow_and_zero(),
        "huge" => huge(arg(2).parse().unwrap_or(8)),
        "exit-soon" => std::thread::sleep(Duration::from_millis(arg(2).parse().unwrap_or(100))),
        "touch" => touch_kib(arg(2).parse().unwrap_or(128)),
        "churn" => churn(arg(2).parse().unwrap_or(1000)),
        "churn-when" => {
            while !std::path::Path::new(arg(2)).exists() {
                std::thread::sleep(Duration::from_millis(5));
            }
            churn(arg(3).parse().unwrap_or(1000));
        }
        "fork-stream" => fork_stream(
            arg(2).parse().unwrap_or(10),
            arg(3).parse().unwrap_or(100),
            arg(4).parse().unwrap_or(3000),
        ),
        other => {
            eprintln!("memchild: unknown mode {other:?}");
            std::process::exit(2);
        }
    }
}
