//! Collected runtimes' own reports of their live heap, per traced process: the probes of the
//! `gc_report` program (`memwatch_common::gc`). Neither page faults nor the heap probes see a
//! JVM's objects or a Go program's objects one by one: what the runtime says is live after each
//! collection is the retained signal the regression estimate fits routes against.
//!
//! - HotSpot: the `hotspot:mem__pool__gc__end` and `hotspot:gc__end` USDT probes of the
//!   `libjvm.so` a process maps, read from its `.note.stapsdt` notes ([`super::usdt`]; they need
//!   no semaphore in the builds checked). A USDT probe sits on a nop, which the kernel emulates.
//! - Go: `runtime.(*gcControllerState).resetLive`, probed on the emulated branch of its
//!   stack-bound check ([`super::heap::sites`]), and `runtime.gcMarkRootPrepare`, which each
//!   cycle calls once as its marking begins, the last sweep over: what the span probes
//!   followed from before one marking and still hold at the next is what that cycle kept,
//!   as for Ruby below. Where the runtime samples its allocations (a binary that links a
//!   memory profiler), its sampled allocations and their frees too ([`super::go_profile`]).
//! - Node.js: V8's `v8::internal::ArrayBufferSweeper::Finalize()` (exported, so in `.dynsym`
//!   even where `.symtab` is stripped), probed on its first `push`. It runs on the main thread
//!   once the array buffers a collection found dead have been freed: a `Buffer`'s bytes are
//!   one, allocated with glibc's `malloc`, so the heap the probes follow holds no collected
//!   garbage just then. It reports no figure; the session reads the followed heap there.
//! - Ruby: the `ruby:gc__mark__begin` USDT probe of the `libruby` a process maps. It sits
//!   behind a semaphore, which the kernel raises while it is attached ([`super::perf_link`]).
//!   Ruby sweeps lazily, a step at a time between allocations, while new garbage piles up, so
//!   no moment of the sweep sees the heap without garbage. But a sweep is over before the next
//!   marking begins, and it frees nothing allocated after its own marking began: so what the
//!   heap probes followed from before one marking and still hold at the next is what that
//!   collection found live (a string's bytes come from glibc's `malloc`). The session keeps
//!   each followed block's marking epoch (`session/heap.rs`).
//!
//! Collections are rare (a few a second at most), so these probes stay on throughout, at a
//! cost the heap budget does not need to count. Optional, bpftop style: a process without such
//! a runtime has no probe, and one whose probe cannot be attached says why once.

use std::{
    collections::HashMap,
    num::{NonZeroU32, NonZeroU64},
    os::fd::AsFd as _,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf,
    programs::{
        UProbe,
        uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeLink, UProbeScope},
    },
};
use iced_x86::Register;
use memwatch_common::gc::{Cookie, GcEvent, GcOp, Reg};

use super::{
    super::procfs::mapped_file,
    go_profile,
    heap::sites::{self, Kind, Needs},
    perf_link::{self, PerfLink},
    usdt,
};

/// The program every GC probe runs.
const PROGRAM: &str = "gc_report";
/// Go's function called with the bytes marked live at each mark termination.
const GO_RESET_LIVE: &str = "runtime.(*gcControllerState).resetLive";
/// Go's function called once per cycle as marking begins, with the world stopped and the last
/// cycle's sweep finished (`gcStart` calls it right after `setGCPhase(_GCmark)`).
const GO_MARK_START: &str = "runtime.gcMarkRootPrepare";
/// V8's function run once a collection's dead array buffers are freed:
/// `v8::internal::ArrayBufferSweeper::Finalize()`, mangled.
const V8_SWEPT: &str = "_ZN2v88internal18ArrayBufferSweeper8FinalizeEv";

/// Which runtime a process's GC probes report for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GcRuntime {
    /// HotSpot: each pool's used bytes after a collection.
    Jvm,
    /// Go: the bytes marked live at each mark termination.
    Go,
    /// Node.js: the moment V8 has freed a collection's dead array buffers (the figure is the
    /// followed heap's then).
    Node,
    /// Ruby: each marking's start (the figure is what the heap probes followed from before
    /// the last marking and still hold).
    Ruby,
}

impl GcRuntime {
    /// The name recorded with each live-heap figure (`live_heap.source`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Jvm => "jvm",
            Self::Go => "go",
            Self::Node => "node",
            Self::Ruby => "ruby",
        }
    }
}

/// A process's collected runtime, as found: which, and for Go, the rate its runtime samples
/// allocations at (`None` where it samples none, or is no Go).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub runtime: GcRuntime,
    pub sample_rate: Option<NonZeroU64>,
}

impl Found {
    fn of(runtime: GcRuntime) -> Self {
        Self {
            runtime,
            sample_rate: None,
        }
    }
}

/// Why a process's runtime reports are not followed. The process itself still is.
#[derive(Debug, thiserror::Error)]
pub enum GcSkip {
    #[error(
        "cannot load the garbage-collection probe program: collected runtimes' live heap is not \
         followed, and each route's regression estimate rests on the resident set; this kernel \
         may lack uprobes (CONFIG_UPROBES): run with -vv for the verifier's log"
    )]
    Load(#[source] Box<aya::programs::ProgramError>),
    #[error(
        "cannot attach the garbage-collection probe at {path}+{offset:#x} for process {pid}: its \
         live heap is not followed (the process is recorded all the same); check that the file \
         is the process's own libjvm.so or Go binary and readable, or run with -vv for the \
         kernel's reason"
    )]
    Attach {
        pid: u32,
        path: PathBuf,
        offset: u64,
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    #[error(
        "cannot attach the garbage-collection probe at {path}+{offset:#x} for process {pid}, \
         with its USDT semaphore at {semaphore:#x}: its live heap is not followed (the process \
         is recorded all the same); this needs uprobe reference counters (Linux 4.20 or later) \
         and BPF links on perf events (5.15 or later), and the file must be the process's own \
         and readable"
    )]
    AttachCounted {
        pid: u32,
        path: PathBuf,
        offset: u64,
        semaphore: u64,
        #[source]
        source: std::io::Error,
    },
}

/// An attached GC probe: through aya, or with its USDT semaphore counted by the kernel.
#[derive(Debug)]
enum Link {
    Aya(#[expect(dead_code, reason = "held to keep the probe attached")] UProbeLink),
    Counted(#[expect(dead_code, reason = "held to keep the probe attached")] PerfLink),
}

/// One probe to attach: where, and what it reports.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Point {
    path: PathBuf,
    file_offset: u64,
    /// The USDT semaphore's file offset, for the kernel to count; 0 when there is none.
    semaphore: u64,
    cookie: Cookie,
}

/// The GC probes of every traced process with a collected runtime memwatch knows.
#[derive(Debug, Default)]
pub struct GcProbes {
    links: HashMap<u32, Vec<Link>>,
    loaded: bool,
    /// Node.js binaries looked at, by (device, inode): where their probe goes, if anywhere.
    /// Each is about 100 MB, and every worker of a cluster maps the same one.
    node: HashMap<(u64, u64), Option<u64>>,
}

impl GcProbes {
    /// Attaches the probes of `pid`'s runtime, if it has one memwatch knows (`None` if not).
    pub fn follow(&mut self, ebpf: &mut Ebpf, pid: u32) -> Result<Option<Found>, GcSkip> {
        if self.links.contains_key(&pid) {
            return Ok(None);
        }
        let Some((found, points)) = find(pid, &mut self.node) else {
            return Ok(None);
        };
        let program: &mut UProbe = ebpf
            .program_mut(PROGRAM)
            .ok_or_else(|| {
                GcSkip::Load(Box::new(aya::programs::ProgramError::InvalidName {
                    name: PROGRAM.to_owned(),
                }))
            })?
            .try_into()
            .map_err(|e| GcSkip::Load(Box::new(e)))?;
        if !self.loaded {
            program.load().map_err(|e| GcSkip::Load(Box::new(e)))?;
            self.loaded = true;
        }
        let scope = UProbeScope::OneProcess(NonZeroU32::new(pid).unwrap_or(NonZeroU32::MIN));
        let mut links = Vec::with_capacity(points.len());
        for point in &points {
            if point.semaphore != 0 {
                let counted_error = |source| GcSkip::AttachCounted {
                    pid,
                    path: point.path.clone(),
                    offset: point.file_offset,
                    semaphore: point.semaphore,
                    source,
                };
                let fd = program.fd().map_err(|e| GcSkip::Load(Box::new(e)))?.as_fd();
                let link = perf_link::attach(
                    fd,
                    &point.path,
                    point.file_offset,
                    point.semaphore,
                    pid,
                    point.cookie.pack(),
                )
                .map_err(counted_error)?;
                links.push(Link::Counted(link));
                continue;
            }
            let attach_error = |source| GcSkip::Attach {
                pid,
                path: point.path.clone(),
                offset: point.file_offset,
                source: Box::new(source),
            };
            let id = program
                .attach(
                    UProbeAttachPoint {
                        location: UProbeAttachLocation::AbsoluteOffset(point.file_offset),
                        cookie: Some(point.cookie.pack()),
                    },
                    &point.path,
                    scope,
                )
                .map_err(attach_error)?;
            links.push(Link::Aya(program.take_link(id).map_err(attach_error)?));
        }
        tracing::debug!(
            pid,
            ?found,
            probes = links.len(),
            "garbage-collection probes attached"
        );
        self.links.insert(pid, links);
        Ok(Some(found))
    }

    /// `pid` is gone or exec'd: its probes go.
    pub fn forget(&mut self, pid: u32) {
        self.links.remove(&pid);
    }
}

/// `pid`'s collected runtime and where its probes go: a `libjvm.so` among its mappings, a
/// Node.js binary (`node` itself, or a `libnode.so` it maps), or a Go executable with the
/// function memwatch knows. `node` caches the Node.js binaries looked at.
fn find(pid: u32, node: &mut HashMap<(u64, u64), Option<u64>>) -> Option<(Found, Vec<Point>)> {
    let maps = &std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    if let Some(path) = mapped_file(pid, maps, |n| n == "libjvm.so") {
        let points = jvm_points(&path);
        if points.is_none() {
            tracing::info!(
                pid,
                path = %path.display(),
                "this JVM's libjvm.so has no usable hotspot:mem__pool__gc__end USDT probe: its \
                 live heap is not followed"
            );
        }
        return points.map(|p| (Found::of(GcRuntime::Jvm), p));
    }
    if let Some(path) = ruby_library(pid, maps) {
        let points = ruby_points(&path);
        if points.is_none() {
            tracing::info!(
                pid,
                path = %path.display(),
                "this Ruby has no ruby:gc__mark__begin USDT probe (built \
                 without --enable-dtrace?): its collections are not seen, and its followed heap \
                 is no retained signal"
            );
        }
        return points.map(|p| (Found::of(GcRuntime::Ruby), p));
    }
    if let Some(path) = node_binary(pid, maps) {
        return node_point(&path, node).map(|file_offset| {
            (
                Found::of(GcRuntime::Node),
                vec![Point {
                    path,
                    file_offset,
                    semaphore: 0,
                    cookie: Cookie {
                        op: GcOp::NodeSwept,
                        bytes: Reg::Rax,
                        name: Reg::Rax,
                        name_len: Reg::Rax,
                    },
                }],
            )
        });
    }
    let exe = PathBuf::from(format!("/proc/{pid}/exe"));
    // Every function in one read of the binary's symbols; where the runtime lacks some, fewer
    // (one more read, for an older or newer Go only).
    let names = [
        GO_RESET_LIVE,
        GO_MARK_START,
        go_profile::MPROF_MALLOC,
        go_profile::FREE_SPECIAL,
    ];
    let found = sites::functions(&exe, &names, Kind::Go)
        .or_else(|| sites::functions(&exe, &names[..2], Kind::Go))
        .or_else(|| sites::functions(&exe, &names[..1], Kind::Go))?;
    let place = |f: &sites::Function, registers: &'static [Register], cookie: Cookie| Point {
        path: exe.clone(),
        file_offset: f.file_offset
            + sites::place(
                &f.code,
                Needs {
                    registers,
                    returns: false,
                },
            )
            .offset,
        semaphore: 0,
        cookie,
    };
    let cookie = |op, bytes, name| Cookie {
        op,
        bytes,
        name,
        name_len: Reg::Rax,
    };
    let mut points = vec![place(
        &found[0],
        &[Register::RBX],
        cookie(GcOp::GoLive, Reg::Rbx, Reg::Rax),
    )];
    if let Some(mark) = found.get(1) {
        points.push(place(mark, &[], cookie(GcOp::GoMark, Reg::Rax, Reg::Rax)));
    }
    let mut sample_rate = None;
    if let [_, _, malloc, free] = &found[..] {
        let version = go_profile::version(&exe);
        // The rate's symbol is data the runtime sets as it starts: one more read of the
        // symbols, for a Go program that has the sampling functions.
        let own = std::fs::read_link(&exe).ok();
        let rate = own
            .as_deref()
            .and_then(|own| go_profile::rate(pid, maps, own, go_profile::rate_symbol(&exe)?));
        match rate {
            _ if !go_profile::reads(version) => tracing::info!(
                pid,
                ?version,
                "this Go's runtime.mProf_Malloc takes arguments memwatch does not read (it reads \
                 Go 1.18 to 1.22): its heap is followed by its spans"
            ),
            Some(rate) if rate > 0 => {
                points.push(place(
                    malloc,
                    &[Register::RAX, Register::RBX],
                    cookie(GcOp::GoSample, Reg::Rbx, Reg::Rax),
                ));
                points.push(place(
                    free,
                    &[Register::RBX, Register::RCX],
                    cookie(GcOp::GoSampleFree, Reg::Rcx, Reg::Rbx),
                ));
                sample_rate = NonZeroU64::new(rate);
            }
            _ => tracing::info!(
                pid,
                ?rate,
                "this Go program samples no allocations (runtime.MemProfileRate is 0: it links \
                 no runtime/pprof or net/http/pprof): its heap is followed by its spans alone"
            ),
        }
    }
    Some((
        Found {
            runtime: GcRuntime::Go,
            sample_rate,
        },
        points,
    ))
}

/// The file holding `pid`'s Ruby, if it runs one: a `libruby` among its mappings (`maps`), as
/// a path this process can open whatever its mount namespace.
fn ruby_library(pid: u32, maps: &str) -> Option<PathBuf> {
    mapped_file(pid, maps, |n| n.starts_with("libruby") && n.contains(".so"))
}

/// Ruby's mark-begin probe in the file at `path`, with its semaphore.
fn ruby_points(path: &Path) -> Option<Vec<Point>> {
    let notes = usdt::notes_in(path)?;
    let point = |name: &str, op: GcOp| {
        notes
            .iter()
            .find(|n| n.provider == "ruby" && n.name == name)
            .map(|n| Point {
                path: path.to_owned(),
                file_offset: n.file_offset,
                semaphore: n.semaphore,
                cookie: Cookie {
                    op,
                    bytes: Reg::Rax,
                    name: Reg::Rax,
                    name_len: Reg::Rax,
                },
            })
    };
    Some(vec![point("gc__mark__begin", GcOp::RubyMark)?])
}

/// The file holding `pid`'s V8, if it is a Node.js process: a `libnode.so` among its mappings
/// (`maps`), or its executable when that is named `node` or `nodejs`. As a path this process
/// can open whatever its mount namespace.
fn node_binary(pid: u32, maps: &str) -> Option<PathBuf> {
    if let Some(lib) = mapped_file(pid, maps, |n| n.starts_with("libnode.so")) {
        return Some(lib);
    }
    let exe = PathBuf::from(format!("/proc/{pid}/exe"));
    let target = std::fs::read_link(&exe).ok()?;
    let name = target.file_name()?.to_str()?;
    matches!(name, "node" | "nodejs").then_some(exe)
}

/// Where the probe on V8's sweep goes in the Node.js binary at `path` (a file offset), found
/// once per file: `None` when the binary lacks the function (another V8 version) or cannot be
/// read.
fn node_point(path: &Path, cache: &mut HashMap<(u64, u64), Option<u64>>) -> Option<u64> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(path).ok()?;
    *cache.entry((meta.dev(), meta.ino())).or_insert_with(|| {
        let Some(f) = sites::functions(path, &[V8_SWEPT], Kind::Any) else {
            tracing::info!(
                path = %path.display(),
                "this Node.js has no v8::internal::ArrayBufferSweeper::Finalize: its collections \
                 are not seen, and its followed heap is no retained signal"
            );
            return None;
        };
        let f = f.first()?;
        let site = sites::place(
            &f.code,
            Needs {
                registers: &[],
                returns: false,
            },
        );
        Some(f.file_offset + site.offset)
    })
}

/// Whether `pid` runs a runtime whose garbage waits for a collector (V8 in Node.js, Ruby): the
/// blocks its heap probes follow stay live after their program has
/// dropped them, until a collection frees them, so the followed heap is no retained signal
/// there, except as a probe on the collector lets it be read ([`GcRuntime::Node`],
/// [`GcRuntime::Ruby`]). Read from its executable's name and its mappings.
pub fn collects_unseen(pid: u32) -> bool {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
    let name = exe
        .as_ref()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if matches!(name, "node" | "nodejs" | "ruby") || name.starts_with("ruby") {
        return true;
    }
    let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else {
        return false;
    };
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter_map(|p| Path::new(p).file_name().and_then(|n| n.to_str()))
        .any(|n| n.starts_with("libnode.so") || n.starts_with("libruby"))
}

/// HotSpot's two probes in the file at `path`, with their cookies.
fn jvm_points(path: &Path) -> Option<Vec<Point>> {
    let notes = usdt::notes_in(path)?;
    let probe = |name: &str| {
        notes
            .iter()
            .find(|n| n.provider == "hotspot" && n.name == name && n.semaphore == 0)
    };
    let pool = probe("mem__pool__gc__end")?;
    let end = probe("gc__end")?;
    // (manager, len, pool, len, init, used, committed, max)
    let reg_of = |i: usize| pool.args.get(i).and_then(|a| usdt::register(a));
    let cookie = Cookie {
        op: GcOp::JvmPool,
        bytes: reg_of(5)?,
        name: reg_of(2)?,
        name_len: reg_of(3)?,
    };
    Some(vec![
        Point {
            path: path.to_owned(),
            file_offset: pool.file_offset,
            semaphore: 0,
            cookie,
        },
        Point {
            path: path.to_owned(),
            file_offset: end.file_offset,
            semaphore: 0,
            cookie: Cookie {
                op: GcOp::JvmEnd,
                bytes: Reg::Rax,
                name: Reg::Rax,
                name_len: Reg::Rax,
            },
        },
    ])
}

/// A JVM's pool reports summed into its heap's used bytes at each collection's end.
#[derive(Debug, Default)]
pub struct JvmPools {
    /// The pools reported since the last collection's end, per process: name, used bytes.
    pending: HashMap<u32, Vec<(String, u64)>>,
}

impl JvmPools {
    /// Takes one report; at a collection's end, returns the heap's used bytes then (the sum
    /// over its heap pools: eden, survivor and old for G1; code caches and metaspace are not
    /// the heap).
    pub fn report(&mut self, pid: u32, e: &GcEvent) -> Option<u64> {
        match GcOp::from_u32(e.op)? {
            GcOp::JvmPool => {
                let len = (e.name_len as usize).min(e.name.len());
                let name = String::from_utf8_lossy(&e.name[..len]).into_owned();
                let pools = self.pending.entry(pid).or_default();
                // A pool reported twice in one collection (two managers) counts once.
                pools.retain(|(n, _)| *n != name);
                pools.push((name, e.bytes));
                None
            }
            GcOp::JvmEnd => {
                let pools = self.pending.remove(&pid)?;
                let heap: Vec<u64> = pools
                    .iter()
                    .filter(|(name, _)| is_heap_pool(name))
                    .map(|(_, used)| *used)
                    .collect();
                (!heap.is_empty()).then(|| heap.iter().sum())
            }
            GcOp::GoLive
            | GcOp::GoMark
            | GcOp::GoSample
            | GcOp::GoSampleFree
            | GcOp::NodeSwept
            | GcOp::RubyMark => None,
        }
    }

    pub fn forget(&mut self, pid: u32) {
        self.pending.remove(&pid);
    }
}

/// Whether a HotSpot memory pool is part of the Java heap: all are but the code caches and the
/// class metadata.
fn is_heap_pool(name: &str) -> bool {
    !(name.starts_with("CodeHeap")
        || name.starts_with("Code Cache")
        || name == "Metaspace"
        || name == "Compressed Class Space"
        || name.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(name: &str, used: u64) -> GcEvent {
        let mut e = GcEvent {
            op: GcOp::JvmPool as u32,
            bytes: used,
            ..GcEvent::default()
        };
        e.name[..name.len()].copy_from_slice(name.as_bytes());
        e.name_len = name.len() as u32;
        e
    }

    /// G1's young collection, as Debian's openjdk-17 reports it: the code caches, metaspace
    /// and the three heap pools, then the end. Only the heap pools count.
    #[test]
    fn a_jvm_collection_is_its_heap_pools_summed() {
        let mut p = JvmPools::default();
        for (name, used) in [
            ("CodeHeap 'non-nmethods'", 1_166_336),
            ("Metaspace", 2_209_224),
            ("Compressed Class Space", 210_584),
            ("G1 Eden Space", 0),
            ("G1 Survivor Space", 4_194_304),
            ("G1 Old Gen", 17_748_480),
        ] {
            assert_eq!(p.report(7, &pool(name, used)), None);
        }
        let end = GcEvent {
            op: GcOp::JvmEnd as u32,
            ..GcEvent::default()
        };
        assert_eq!(p.report(8, &end), None, "another process's collection");
        assert_eq!(p.report(7, &end), Some(4_194_304 + 17_748_480));
        assert_eq!(p.report(7, &end), None, "nothing reported since");
    }

    /// This machine's JVM, when there is one: its probes are found, with the registers its
    /// note names.
    #[test]
    fn this_machines_jvm_has_its_probes() {
        let Ok(java) = std::fs::canonicalize("/usr/bin/java") else {
            return;
        };
        let Some(jdk) = java.parent().and_then(Path::parent) else {
            return;
        };
        let libjvm = jdk.join("lib/server/libjvm.so");
        if !libjvm.is_file() {
            return;
        }
        let points = jvm_points(&libjvm).expect("hotspot's USDT probes");
        assert_eq!(points.len(), 2);
        assert_eq!(points[0].cookie.op, GcOp::JvmPool);
        assert_eq!(points[1].cookie.op, GcOp::JvmEnd);
        // A USDT probe sits on a nop, which the kernel emulates.
        let data = std::fs::read(&libjvm).unwrap();
        for p in &points {
            let at = usize::try_from(p.file_offset).unwrap();
            assert_eq!(data[at], 0x90, "{p:?}");
        }
    }

    /// This machine's Node.js, when there is one: the probe on V8's sweep is found (in
    /// `.dynsym`), once per file, on an instruction the kernel emulates.
    #[test]
    fn this_machines_node_has_its_sweep() {
        let Ok(node) = std::fs::canonicalize("/usr/bin/node") else {
            return;
        };
        let mut cache = HashMap::new();
        let offset = node_point(&node, &mut cache).expect("V8's ArrayBufferSweeper::Finalize");
        assert_eq!(cache.len(), 1);
        assert_eq!(node_point(&node, &mut cache), Some(offset));
        let f = sites::functions(&node, &[V8_SWEPT], Kind::Any).unwrap();
        let site = sites::place(
            &f[0].code,
            Needs {
                registers: &[],
                returns: false,
            },
        );
        assert_eq!(site.handling, sites::Handling::Emulated, "{site:?}");
        assert_eq!(offset, f[0].file_offset + site.offset);
    }
}
