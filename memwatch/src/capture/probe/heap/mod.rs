//! Following the heap allocator of each traced process: the uprobes of
//! `memwatch_common::heap::HEAP_PROBES` on that process's own glibc, and those of `GO_PROBES` on
//! a Go program's runtime, attached for that process only, so no other process on the host pays
//! for them. On by default (`--no-heap` turns it off). Optional, bpftop style: a process whose
//! heap cannot be followed (no glibc and no Go runtime memwatch knows, an attach refused) is
//! recorded all the same, and why is said once and counted.
//!
//! - [`sites`]: each probe goes on an instruction the kernel emulates, found by decoding the
//!   function's first bytes; a hit then costs about half a microsecond here, not twenty.
//! - [`budget`]: what the probes cost, measured from their hits, stays within a share of one
//!   core: past it, memwatch attaches them only part of the time ([`HeapProbes::set_on`]).
//! - [`calibrate`]: what one hit costs on this machine, measured once at start.
//! - [`chunks`]: while the probes are off, whether a followed glibc block is still in use, read
//!   from its chunk header.

pub mod budget;
pub mod calibrate;
pub mod chunks;
pub mod sites;

use std::{
    collections::HashMap,
    num::NonZeroU32,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    sync::Arc,
};

use aya::{
    Ebpf,
    maps::{HashMap as BpfHashMap, MapData, PerCpuArray},
    programs::{
        ProgramError, UProbe,
        uprobe::{UProbeAttachLocation, UProbeLink, UProbeScope},
    },
};
use iced_x86::Register;
use memwatch_common::{
    config,
    heap::{GO_PROBES, HEAP_PROBES, HEAP_SITES, HeapKey, HeapSite},
};
use sites::{Kind, Needs, Site};

/// Why a process's heap is not followed. The process itself still is.
#[derive(Debug, thiserror::Error)]
pub enum HeapSkip {
    /// Neither glibc among its mappings nor a Go runtime memwatch knows: musl, another static
    /// binary, or a process that is gone.
    #[error(
        "process {pid} maps no glibc (libc.so.6) and is no Go program memwatch knows (Go 1.17 \
         or later): its heap reuse is not followed, and pages stay with the request that \
         faulted them in"
    )]
    NoAllocator { pid: u32 },
    /// The kernel refused a uprobe.
    #[error(
        "cannot attach the heap probe {program} to {function} in {path} for process {pid}: its \
         heap reuse is not followed (the process is recorded all the same); check that the \
         file is the process's own and readable, or record with --no-heap"
    )]
    Attach {
        pid: u32,
        program: &'static str,
        function: &'static str,
        path: PathBuf,
        #[source]
        source: Box<ProgramError>,
    },
    /// The program is missing from the object or is not a uprobe.
    #[error(
        "the heap probe {program} cannot be loaded, so no heap is followed (the processes are \
         recorded all the same); this kernel may lack uprobes (CONFIG_UPROBES): record with \
         --no-heap, or run with -vv for the verifier's log"
    )]
    Load {
        program: &'static str,
        #[source]
        source: Box<ProgramError>,
    },
}

/// One probe, placed: which program, in which file, at which file offset.
#[derive(Debug, Clone)]
pub struct Point {
    pub program: &'static str,
    pub function: &'static str,
    pub path: PathBuf,
    pub file_offset: u64,
    pub site: Site,
    /// Which counter of `HEAP_HITS` its program adds to.
    pub counted_as: HeapSite,
}

/// A binary's probes, placed once per file (by device and inode), whatever process maps it.
type Placed = Arc<Vec<Point>>;

/// The heap probes of every followed process: placed when the process is first followed,
/// attached while the budget has them on, detached when it has them off or the process goes.
#[derive(Debug, Default)]
pub struct HeapProbes {
    /// Each followed process's probes.
    points: HashMap<u32, Vec<Point>>,
    /// Attached links, per process, while on: owned here, so that detaching them (which waits
    /// out an RCU grace period in the kernel, about 100 ms each) happens off the event loop.
    links: HashMap<u32, Vec<UProbeLink>>,
    /// Binaries already looked at, by (device, inode) and what was looked for: their probes,
    /// or `None` when they hold none.
    placed: HashMap<(u64, u64, Kind), Option<Placed>>,
    loaded: bool,
    /// Whether the probes are attached now (the budget's decision); on until told otherwise.
    off: bool,
    /// The ranks of the links the last detach closed, in order.
    closing: Vec<usize>,
    /// How long the kernel took to remove one probe lately (ns), measured by the detaching
    /// thread: an RCU grace period, about 100 ms here.
    grace_ns: Arc<std::sync::atomic::AtomicU64>,
}

/// Where a probe comes in the detach order: glibc's in `HEAP_PROBES` order, then Go's.
fn site_rank(program: &str, function: &str) -> usize {
    HEAP_PROBES
        .iter()
        .chain(GO_PROBES)
        .position(|&(f, p)| f == function && p == program)
        .unwrap_or(usize::MAX)
}

/// The counter a rank's probe adds to.
fn site_of_rank(rank: usize) -> Option<HeapSite> {
    HEAP_PROBES
        .iter()
        .chain(GO_PROBES)
        .nth(rank)
        .map(|&(_, program)| counted_as(program))
}

/// What each program reads at its site: an entry probe reads the arguments, a return probe
/// needs the return address on top of the stack.
fn needs(program: &str) -> Needs<'static> {
    match program {
        "heap_alloc_ret" => Needs {
            registers: &[],
            returns: true,
        },
        "heap_free" => Needs {
            registers: &[Register::RDI],
            returns: false,
        },
        "heap_realloc" => Needs {
            registers: &[Register::RDI, Register::RSI],
            returns: false,
        },
        // Go's internal ABI: the span's base in RBX, its pages in RCX.
        _ => Needs {
            registers: &[Register::RBX, Register::RCX],
            returns: false,
        },
    }
}

fn counted_as(program: &str) -> HeapSite {
    match program {
        "heap_alloc_ret" => HeapSite::AllocReturn,
        "heap_free" => HeapSite::Free,
        "heap_realloc" => HeapSite::Realloc,
        "go_span_alloc" => HeapSite::GoSpanAlloc,
        _ => HeapSite::GoSpanFree,
    }
}

/// Places `probes` in the binary at `path`: `None` when it is not of `kind` or lacks any of the
/// functions (not a glibc, not a Go program memwatch knows).
fn place(path: &Path, probes: &[(&'static str, &'static str)], kind: Kind) -> Option<Vec<Point>> {
    let names: Vec<&str> = probes.iter().map(|&(function, _)| function).collect();
    let found = sites::functions(path, &names, kind)?;
    let mut points = Vec::with_capacity(probes.len());
    for (&(function, program), f) in probes.iter().zip(found) {
        let site = sites::place(&f.code, needs(program));
        match site.why {
            None => tracing::debug!(
                function,
                program,
                offset = site.offset,
                path = %path.display(),
                "heap probe on an emulated instruction"
            ),
            Some(why) => tracing::info!(
                function,
                program,
                path = %path.display(),
                "heap probe left at the function's entry, where the kernel single-steps it \
                 (about 20 µs a hit under a hypervisor): {why}"
            ),
        }
        points.push(Point {
            program,
            function,
            path: path.to_owned(),
            file_offset: f.file_offset + site.offset,
            site,
            counted_as: counted_as(program),
        });
    }
    Some(points)
}

impl HeapProbes {
    /// The processes followed.
    pub fn pids(&self) -> Vec<u32> {
        self.points.keys().copied().collect()
    }

    /// Every placed probe of the followed processes, once per binary and program.
    pub fn sites(&self) -> Vec<Point> {
        let mut seen = std::collections::HashSet::new();
        self.points
            .values()
            .flatten()
            .filter(|p| {
                seen.insert((
                    p.path.file_name().map(ToOwned::to_owned),
                    p.program,
                    p.function,
                ))
            })
            .cloned()
            .collect()
    }

    /// Loads the heap programs (once).
    pub fn load_programs(&mut self, ebpf: &mut Ebpf) -> Result<(), HeapSkip> {
        if self.loaded {
            return Ok(());
        }
        let programs = HEAP_PROBES.iter().chain(GO_PROBES).map(|&(_, p)| p);
        let mut seen: Vec<&str> = Vec::new();
        for program in programs {
            if seen.contains(&program) {
                continue;
            }
            seen.push(program);
            uprobe(ebpf, program)?
                .load()
                .map_err(|source| HeapSkip::Load {
                    program,
                    source: Box::new(source),
                })?;
        }
        self.loaded = true;
        Ok(())
    }

    /// The probes for the binary at `path`, placed once per file.
    fn placed(
        &mut self,
        path: &Path,
        probes: &[(&'static str, &'static str)],
        kind: Kind,
    ) -> Option<Placed> {
        let meta = std::fs::metadata(path).ok()?;
        let key = (meta.dev(), meta.ino(), kind);
        if let Some(p) = self.placed.get(&key) {
            // The same file under another process's root: same offsets, this path.
            return p.as_ref().map(|p| {
                Arc::new(
                    p.iter()
                        .map(|point| Point {
                            path: path.to_owned(),
                            ..point.clone()
                        })
                        .collect(),
                )
            });
        }
        let points = place(path, probes, kind).map(Arc::new);
        self.placed.insert(key, points.clone());
        points
    }

    /// Places the heap probes for `pid`'s glibc and, if it is a Go program, its Go runtime, and
    /// attaches them for `pid` alone unless the budget has them off. A Go program whose own
    /// sampled heap is followed (`go_sampled`: `super::go_profile`) gets no span probes: its
    /// samples are its figure, at a small part of the span probes' hits.
    pub fn follow(&mut self, ebpf: &mut Ebpf, pid: u32, go_sampled: bool) -> Result<(), HeapSkip> {
        if self.points.contains_key(&pid) {
            return Ok(());
        }
        self.load_programs(ebpf)?;
        let mut points = Vec::new();
        // A Go program (statically linked, or with cgo and glibc as well).
        let exe = PathBuf::from(format!("/proc/{pid}/exe"));
        let go = if go_sampled {
            None
        } else {
            self.placed(&exe, GO_PROBES, Kind::Go)
        };
        if let Some(go) = &go {
            points.extend(go.iter().cloned());
        }
        if let Some(libc) = glibc_of(pid)
            && let Some(glibc) = self.placed(&libc, HEAP_PROBES, Kind::Any)
        {
            points.extend(glibc.iter().cloned());
        }
        if points.is_empty() {
            if go_sampled {
                // A static Go program: its sampled heap is all there is to follow.
                return Ok(());
            }
            return Err(HeapSkip::NoAllocator { pid });
        }
        if !self.off {
            let links = attach_all(ebpf, pid, &points)?;
            self.links.insert(pid, links);
        }
        tracing::debug!(
            pid,
            probes = points.len(),
            go = go.is_some(),
            "heap probes placed"
        );
        self.points.insert(pid, points);
        Ok(())
    }

    /// Attaches (`on`) or detaches every followed process's probes. A process whose probes
    /// cannot be attached again is no longer followed: returned, with why. Attaching stops at
    /// `until` (the kernel may make each attach wait behind a detach's grace period, and the
    /// caller's event loop waits meanwhile); whether every process has its probes is returned,
    /// and a further call goes on where this one stopped.
    pub fn set_on(
        &mut self,
        ebpf: &mut Ebpf,
        on: bool,
        until: std::time::Instant,
    ) -> (Vec<(u32, HeapSkip)>, bool) {
        self.off = !on;
        let mut failed = Vec::new();
        let mut complete = true;
        if on {
            let pids: Vec<u32> = self.points.keys().copied().collect();
            for pid in pids {
                if self.links.contains_key(&pid) {
                    continue;
                }
                if std::time::Instant::now() >= until {
                    complete = false;
                    break;
                }
                match attach_all(ebpf, pid, &self.points[&pid]) {
                    Ok(links) => {
                        self.links.insert(pid, links);
                    }
                    Err(e) => {
                        self.points.remove(&pid);
                        failed.push((pid, e));
                    }
                }
            }
        } else {
            // Every process's probe of the same site together, in the order of HEAP_PROBES and
            // GO_PROBES (the most called first): the kernel removes one breakpoint per grace
            // period, so the ones closed first stop costing first.
            let mut all: Vec<(usize, UProbeLink)> = Vec::new();
            for (pid, links) in self.links.drain() {
                let order = self.points.get(&pid).map(|points| {
                    points
                        .iter()
                        .map(|p| site_rank(p.program, p.function))
                        .collect::<Vec<_>>()
                });
                for (i, link) in links.into_iter().enumerate() {
                    let rank = order
                        .as_ref()
                        .and_then(|o| o.get(i).copied())
                        .unwrap_or(usize::MAX);
                    all.push((rank, link));
                }
            }
            all.sort_by_key(|(rank, _)| *rank);
            self.closing = all.iter().map(|(rank, _)| *rank).collect();
            detach_in_order(
                all.into_iter().map(|(_, link)| link).collect(),
                &self.grace_ns,
            );
        }
        (failed, complete)
    }

    /// The sites of the links the last detach closed, in the order the kernel removes them (by
    /// rank in [`site_rank`]), and how long one removal took lately (ns): what the probes cost
    /// while their breakpoints lingered, unseen by their counters.
    pub fn lingering(&self) -> (Vec<HeapSite>, u64) {
        let sites = self
            .closing
            .iter()
            .filter_map(|&rank| site_of_rank(rank))
            .collect();
        (
            sites,
            self.grace_ns.load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// Whether the probes are attached now.
    pub fn on(&self) -> bool {
        !self.off
    }

    /// `pid` is gone (or exec'd into a new image): its probes are detached and its live blocks
    /// dropped from the kernel's map, which returns to its idle size.
    pub fn forget(&mut self, ebpf: &mut Ebpf, pid: u32) {
        self.points.remove(&pid);
        if let Some(links) = self.links.remove(&pid) {
            detach(links);
        }
        let Some(mut live) = live_blocks(ebpf) else {
            return;
        };
        let gone: Vec<HeapKey> = live
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.tgid == pid)
            .collect();
        for k in gone {
            let _ = live.remove(&k);
        }
    }

    /// A followed block found given back while the probes were off: dropped from the kernel's
    /// map of live blocks, so that a later `free` at its address is not taken for it.
    pub fn forget_block(ebpf: &mut Ebpf, pid: u32, addr: u64) {
        if let Some(mut live) = live_blocks(ebpf) {
            let _ = live.remove(&HeapKey {
                tgid: pid,
                _pad: 0,
                addr,
            });
        }
    }

    /// Hits on each heap probe since load, summed over CPUs, by [`HeapSite`].
    pub fn hits(ebpf: &Ebpf) -> [u64; HEAP_SITES as usize] {
        let mut out = [0; HEAP_SITES as usize];
        let Some(map) = ebpf.map(config::MAP_HEAP_HITS) else {
            return out;
        };
        let Ok(array) = PerCpuArray::<&MapData, u64>::try_from(map) else {
            return out;
        };
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = array
                .get(&(i as u32), 0)
                .map(|values| values.iter().sum())
                .unwrap_or(0);
        }
        out
    }
}

fn live_blocks(ebpf: &mut Ebpf) -> Option<BpfHashMap<&mut MapData, HeapKey, u64>> {
    let map = ebpf.map_mut(config::MAP_HEAP_LIVE)?;
    BpfHashMap::<&mut MapData, HeapKey, u64>::try_from(map).ok()
}

/// The glibc a process maps, as a path this process can open whatever its mount namespace:
/// through `/proc/PID/root`.
fn glibc_of(pid: u32) -> Option<PathBuf> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    crate::capture::procfs::mapped_file(pid, &maps, |n| {
        n == "libc.so.6" || (n.starts_with("libc-") && n.ends_with(".so"))
    })
}

fn uprobe<'a>(ebpf: &'a mut Ebpf, program: &'static str) -> Result<&'a mut UProbe, HeapSkip> {
    let p = ebpf.program_mut(program).ok_or_else(|| HeapSkip::Load {
        program,
        source: Box::new(ProgramError::InvalidName {
            name: program.to_owned(),
        }),
    })?;
    p.try_into().map_err(|source| HeapSkip::Load {
        program,
        source: Box::new(source),
    })
}

/// Attaches every point for `pid` alone; on a failure, what was attached is detached again.
fn attach_all(ebpf: &mut Ebpf, pid: u32, points: &[Point]) -> Result<Vec<UProbeLink>, HeapSkip> {
    let mut links = Vec::with_capacity(points.len());
    for point in points {
        match attach_one(ebpf, pid, point) {
            Ok(link) => links.push(link),
            Err(e) => {
                detach(links);
                return Err(e);
            }
        }
    }
    Ok(links)
}

/// Attaches `point` for `pid` alone, and takes the link: dropping it detaches the probe.
pub fn attach_one(ebpf: &mut Ebpf, pid: u32, point: &Point) -> Result<UProbeLink, HeapSkip> {
    let scope = NonZeroU32::new(pid).ok_or(HeapSkip::NoAllocator { pid })?;
    let attach_error = |source| HeapSkip::Attach {
        pid,
        program: point.program,
        function: point.function,
        path: point.path.clone(),
        source: Box::new(source),
    };
    let program = uprobe(ebpf, point.program)?;
    let id = program
        .attach(
            UProbeAttachLocation::AbsoluteOffset(point.file_offset),
            &point.path,
            UProbeScope::OneProcess(scope),
        )
        .map_err(attach_error)?;
    program.take_link(id).map_err(attach_error)
}

/// Detaches `links` one after another, in order, on a thread of its own, and keeps how long
/// each took in `grace_ns` (smoothed). The kernel holds a lock across each probe's grace period,
/// so closing them side by side gains nothing; in order, the first closed stop trapping first.
fn detach_in_order(links: Vec<UProbeLink>, grace_ns: &Arc<std::sync::atomic::AtomicU64>) {
    use std::sync::atomic::Ordering;
    if links.is_empty() {
        return;
    }
    let grace_ns = Arc::clone(grace_ns);
    let spawned = std::thread::Builder::new()
        .name("memwatch-detach".into())
        .spawn(move || {
            for link in links {
                let started = std::time::Instant::now();
                drop(link);
                let took = started.elapsed().as_nanos() as u64;
                let old = grace_ns.load(Ordering::Relaxed);
                let new = if old == 0 { took } else { (old * 3 + took) / 4 };
                grace_ns.store(new, Ordering::Relaxed);
            }
        });
    if let Err(e) = spawned {
        tracing::debug!(error = %e, "could not start a thread to detach heap probes");
    }
}

/// Detaches `links` on threads of their own. The kernel removes each breakpoint at once, then
/// waits for an RCU grace period before the close returns (about 100 ms here): closed one after
/// another on the event loop, a process's seven probes would stall it for most of a second.
/// Closed side by side, the waits overlap.
pub fn detach(links: Vec<UProbeLink>) {
    const THREADS: usize = 8;
    if links.is_empty() {
        return;
    }
    let per = links.len().div_ceil(THREADS);
    let mut links = links;
    while !links.is_empty() {
        let chunk: Vec<UProbeLink> = links.drain(..per.min(links.len())).collect();
        let spawned = std::thread::Builder::new()
            .name("memwatch-detach".into())
            .spawn(move || {
                for link in chunk {
                    drop(link);
                }
            });
        if let Err(e) = spawned {
            // The links were moved into the closure that failed to start: they were dropped
            // (detached) here, on this thread.
            tracing::debug!(error = %e, "could not start a thread to detach heap probes");
        }
    }
}
