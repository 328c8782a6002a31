//! What one hit on a heap probe costs on this machine, measured once as recording starts: the
//! budget ([`super::budget`]) turns hits into CPU time with it.
//!
//! The cost is mostly the kernel's, not the program's: a trap into the kernel and back, plus a
//! single-step when the probed instruction is not emulated. It differs twentyfold between bare
//! metal and a VM, so it is measured, not assumed: a helper process (memwatch itself, started
//! as `memwatch calibrate-heap`, never a target) calls `malloc(64)` and `free` in a loop, timed
//! with and without the probes attached to it at the sites memwatch would use. The programs
//! run and return at once for a process that is not traced, as they do for most calls of a
//! target.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    time::Instant,
};

use aya::Ebpf;
use memwatch_common::heap::{HEAP_SITES, HeapSite};

use super::{Point, attach_one, detach, sites::Handling};

/// What a hit costs, in ns, by how the kernel runs the probed instruction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Costs {
    /// An entry probe on an emulated instruction.
    pub entry_ns: f64,
    /// A return probe: its trap at the entry (emulated) and its trampoline's at the return.
    pub return_ns: f64,
    /// `free`'s probe at its site.
    pub free_ns: f64,
    /// A probe on a single-stepped instruction.
    pub step_ns: f64,
    /// Whether they were measured (false: the defaults, when measuring failed).
    pub measured: bool,
}

impl Default for Costs {
    /// Measured on the VMs this project is developed on (BENCHMARKS.md): used when the
    /// measurement fails, and on the high side for bare metal, so the budget holds either way.
    fn default() -> Self {
        Self {
            entry_ns: 600.0,
            return_ns: 900.0,
            free_ns: 600.0,
            step_ns: 20_000.0,
            measured: false,
        }
    }
}

impl Costs {
    /// The cost of a hit on each [`HeapSite`], given where the probes of the followed
    /// processes sit (the costliest placement of each site counts).
    pub fn per_site(&self, points: &[Point]) -> [f64; HEAP_SITES as usize] {
        let mut out = [0.0; HEAP_SITES as usize];
        for site in [
            HeapSite::Malloc,
            HeapSite::Calloc,
            HeapSite::Realloc,
            HeapSite::Free,
            HeapSite::AllocReturn,
            HeapSite::GoSpanAlloc,
            HeapSite::GoSpanFree,
        ] {
            let stepped = points
                .iter()
                .any(|p| p.counted_as == site && p.site.handling == Handling::SingleStepped);
            out[site as usize] = match site {
                HeapSite::AllocReturn if stepped => self.return_ns + self.step_ns,
                HeapSite::AllocReturn => self.return_ns,
                // realloc's entry program shares its return probe's trap: only the program's
                // run is its own.
                HeapSite::Realloc => REALLOC_ENTRY_NS,
                _ if stepped => self.step_ns,
                HeapSite::Free => self.free_ns,
                _ => self.entry_ns,
            };
        }
        out
    }
}

/// What realloc's entry program adds to the trap its return probe pays anyway (the program's
/// own run, measured with `kernel.bpf_stats_enabled` at a few tens of ns; rounded up).
const REALLOC_ENTRY_NS: f64 = 100.0;

/// Iterations per timed round, and for the single-stepped site (20 µs a hit on a VM): about a
/// millisecond each, shorter than a scheduler's time slice, so that some rounds run whole.
const N: u64 = 1_000;
const N_STEP: u64 = 100;
/// Timed rounds of each, of which the fastest counts: another process sharing the CPU only
/// ever adds time (preemption, caches), and on a busy machine (a CI runner, two recordings on
/// two cores) the median of three rounds of 10 ms read a hit at up to twice its cost, which
/// made the budget detach the probes from a server it could afford to follow.
const ROUNDS: usize = 21;

/// The helper: reads `N ROUNDS` per line from stdin, runs `ROUNDS` rounds of `N`
/// `malloc(64)`/`free` pairs, and answers with the ns the fastest round took. The rounds are
/// timed here, one answer for all of them: a round trip to memwatch per round would wait for
/// the CPU each time on a loaded machine, and stretch memwatch's start. Ends at end of input.
pub fn child_main() -> anyhow::Result<i32> {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let line = line?;
        let mut words = line.split_whitespace();
        let n: u64 = words.next().unwrap_or("0").parse()?;
        let rounds: u32 = words.next().unwrap_or("1").parse()?;
        let mut fastest = u128::MAX;
        for _ in 0..rounds.max(1) {
            let start = Instant::now();
            for _ in 0..n {
                // SAFETY: a plain allocation, freed at once.
                unsafe {
                    let p = libc::malloc(std::hint::black_box(64));
                    libc::free(std::hint::black_box(p));
                }
            }
            fastest = fastest.min(start.elapsed().as_nanos());
        }
        writeln!(out, "{fastest}")?;
        out.flush()?;
    }
    Ok(0)
}

struct Helper {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Helper {
    fn start() -> std::io::Result<Self> {
        let mut child = Command::new("/proc/self/exe")
            .arg("calibrate-heap")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdin = child.stdin.take().ok_or(std::io::ErrorKind::BrokenPipe)?;
        let stdout = BufReader::new(child.stdout.take().ok_or(std::io::ErrorKind::BrokenPipe)?);
        Ok(Self {
            child,
            stdin,
            stdout,
        })
    }

    /// ns per iteration of `n`, in the fastest of `rounds` rounds.
    fn run(&mut self, n: u64, rounds: usize) -> std::io::Result<f64> {
        writeln!(self.stdin, "{n} {rounds}")?;
        self.stdin.flush()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        let ns: f64 = line
            .trim()
            .parse()
            .map_err(|_| std::io::Error::other(format!("bad answer {line:?}")))?;
        Ok(ns / n as f64)
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Measures what hits cost with the heap programs of `ebpf` (loaded) at the sites placed in
/// this machine's glibc. Falls back to [`Costs::default`], and says why, when it cannot.
pub fn measure(ebpf: &mut Ebpf) -> Costs {
    let started = Instant::now();
    match try_measure(ebpf) {
        Ok(c) => {
            tracing::info!(
                entry_ns = c.entry_ns.round(),
                return_ns = c.return_ns.round(),
                free_ns = c.free_ns.round(),
                step_ns = c.step_ns.round(),
                took = ?started.elapsed(),
                "what a heap probe's hit costs here"
            );
            c
        }
        Err(e) => {
            tracing::info!(
                "could not measure what a heap probe's hit costs here ({e:#}); the budget \
                 assumes the figures of BENCHMARKS.md"
            );
            Costs::default()
        }
    }
}

fn try_measure(ebpf: &mut Ebpf) -> anyhow::Result<Costs> {
    // Three helpers, each probed for itself (uprobes are attached per process): the timings
    // never wait for a probe to be detached, which takes an RCU grace period.
    let mut helpers = [Helper::start()?, Helper::start()?, Helper::start()?];
    for h in &mut helpers {
        // Once it has answered, its glibc is mapped.
        h.run(N, 1)?;
    }
    let pids = helpers.each_ref().map(|h| h.child.id());
    let libc =
        super::glibc_of(pids[0]).ok_or_else(|| anyhow::anyhow!("the helper maps no glibc"))?;
    let points = super::place(&libc, memwatch_common::heap::HEAP_PROBES, super::Kind::Any)
        .ok_or_else(|| anyhow::anyhow!("no allocator in {}", libc.display()))?;
    let find = |program: &str, function: &str| {
        points
            .iter()
            .find(|p| p.program == program && p.function == function)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no {program} at {function}"))
    };
    // An entry probe: realloc's program, placed at malloc's entry as it would be at realloc's
    // (both begin with a push), and returning at once for a process it does not trace.
    let entry = Point {
        program: "heap_realloc",
        ..find("heap_alloc_ret", "malloc")?
    };
    let ret = find("heap_alloc_ret", "malloc")?;
    let free = find("heap_free", "free")?;
    // A single-stepped site: malloc's first instruction that the kernel does not emulate (the
    // program reads garbage there, and returns at once for a process it does not trace).
    let step = stepped_site(&entry).ok_or_else(|| anyhow::anyhow!("no single-stepped site"))?;
    let timed = |helpers: &mut [Helper; 3], i: usize, n: u64| -> anyhow::Result<f64> {
        Ok(helpers[i].run(n, ROUNDS)?)
    };
    let base = [
        timed(&mut helpers, 0, N)?,
        timed(&mut helpers, 1, N)?,
        timed(&mut helpers, 2, N_STEP)?,
    ];
    let mut links = vec![
        attach_one(ebpf, pids[0], &entry)?,
        attach_one(ebpf, pids[1], &free)?,
        attach_one(ebpf, pids[2], &step)?,
    ];
    let measured = (|| {
        let entry_ns = (timed(&mut helpers, 0, N)? - base[0]).max(1.0);
        let free_ns = (timed(&mut helpers, 1, N)? - base[1]).max(1.0);
        let step_ns = (timed(&mut helpers, 2, N_STEP)? - base[2]).max(1.0);
        // The return probe on the same function: its entry trap is shared with the entry
        // program's, so what it adds is the trampoline; a return probe alone costs both.
        links.push(attach_one(ebpf, pids[0], &ret)?);
        let return_ns = (timed(&mut helpers, 0, N)? - base[0]).max(1.0);
        anyhow::Ok(Costs {
            entry_ns,
            return_ns,
            free_ns,
            step_ns,
            measured: true,
        })
    })();
    detach(links);
    measured
}

/// `entry`'s function probed at its first instruction the kernel single-steps.
fn stepped_site(entry: &Point) -> Option<Point> {
    let f = super::sites::functions(&entry.path, &[entry.function], super::Kind::Any)?.pop()?;
    let at = super::sites::first_single_stepped(&f.code)?;
    Some(Point {
        file_offset: f.file_offset + at,
        ..entry.clone()
    })
}
