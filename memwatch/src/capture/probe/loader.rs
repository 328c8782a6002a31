//! Loading the eBPF object, attaching its tracepoints, and the user-space handles on its maps.
//! Dropping the [`Probe`] detaches everything (aya links are RAII).

use std::os::fd::AsRawFd;

use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap, Map, MapData, PerCpuArray, RingBuf, StackTraceMap},
    programs::Program,
};
use memwatch_common::{
    config::{self, COUNTER_SLOTS, Counter},
    heap::{HeapKey, HeapPending},
    mem::MemArgs,
    net::{ConnState, MAX_CAPTURE},
    proc::{RssSeen, ThreadFaults},
    stack::{TARGET_COPY_STACK, TARGET_TRACED},
    tracepoint,
};
use tokio::io::unix::AsyncFd;

use super::{
    error::LoadError,
    event::Records,
    format::{FieldRead, Offsets},
    heap::{HeapProbes, HeapSkip},
};
use crate::error::SetupError;

/// One program, the tracepoints (category, name) it attaches to, and the record fields it reads
/// on each of them.
struct Hook {
    program: &'static str,
    /// (category, name) pairs; a raw-tracepoint program attaches by name alone.
    tracepoints: &'static [(&'static str, &'static str)],
    /// Every field of the tracepoint's record that the program reads, which preflight checks
    /// against this kernel's format files. Raw tracepoints read the tracepoint's C arguments,
    /// not a record, and list none.
    reads: &'static [FieldRead],
}

const fn arg(name: &'static str, n: u32) -> FieldRead {
    FieldRead::syscall_arg(name, n)
}

/// `sys_exit_*` programs read `ret` alone.
const RET: &[FieldRead] = &[FieldRead::syscall_ret()];

const MEM_HOOKS: &[Hook] = &[
    Hook {
        program: "mmap_enter",
        tracepoints: &[("syscalls", "sys_enter_mmap")],
        reads: &[
            arg("addr", 0),
            arg("len", 1),
            arg("prot", 2),
            arg("flags", 3),
            arg("fd", 4),
        ],
    },
    Hook {
        program: "mmap_exit",
        tracepoints: &[("syscalls", "sys_exit_mmap")],
        reads: RET,
    },
    Hook {
        program: "munmap_enter",
        tracepoints: &[("syscalls", "sys_enter_munmap")],
        reads: &[arg("addr", 0), arg("len", 1)],
    },
    Hook {
        program: "munmap_exit",
        tracepoints: &[("syscalls", "sys_exit_munmap")],
        reads: RET,
    },
    Hook {
        program: "mremap_enter",
        tracepoints: &[("syscalls", "sys_enter_mremap")],
        reads: &[
            arg("addr", 0),
            arg("old_len", 1),
            arg("new_len", 2),
            arg("flags", 3),
        ],
    },
    Hook {
        program: "mremap_exit",
        tracepoints: &[("syscalls", "sys_exit_mremap")],
        reads: RET,
    },
    Hook {
        program: "brk_enter",
        tracepoints: &[("syscalls", "sys_enter_brk")],
        reads: &[arg("brk", 0)],
    },
    Hook {
        program: "brk_exit",
        tracepoints: &[("syscalls", "sys_exit_brk")],
        reads: RET,
    },
    Hook {
        program: "mprotect_enter",
        tracepoints: &[("syscalls", "sys_enter_mprotect")],
        reads: &[arg("start", 0), arg("len", 1), arg("prot", 2)],
    },
    Hook {
        program: "mprotect_exit",
        tracepoints: &[("syscalls", "sys_exit_mprotect")],
        reads: RET,
    },
    Hook {
        program: "madvise_enter",
        tracepoints: &[("syscalls", "sys_enter_madvise")],
        reads: &[arg("start", 0), arg("len_in", 1), arg("behavior", 2)],
    },
    Hook {
        program: "madvise_exit",
        tracepoints: &[("syscalls", "sys_exit_madvise")],
        reads: RET,
    },
    Hook {
        program: "page_fault_user",
        tracepoints: &[("exceptions", "page_fault_user")],
        reads: &[FieldRead::fixed(
            "address",
            tracepoint::PAGE_FAULT_ADDRESS_SIZE,
            tracepoint::PAGE_FAULT_ADDRESS,
        )],
    },
    Hook {
        program: "rss_stat",
        tracepoints: &[("kmem", "rss_stat")],
        reads: &[
            FieldRead::fixed("curr", 4, tracepoint::RSS_STAT_CURR),
            FieldRead::fixed("member", 4, tracepoint::RSS_STAT_MEMBER),
            FieldRead::fixed("size", 8, tracepoint::RSS_STAT_SIZE),
        ],
    },
    Hook {
        program: "task_newtask",
        tracepoints: &[("task", "task_newtask")],
        reads: &[
            FieldRead::global("pid", 4, config::GLOBAL_NEWTASK_PID_OFFSET),
            FieldRead::global("clone_flags", 8, config::GLOBAL_NEWTASK_CLONE_FLAGS_OFFSET),
        ],
    },
    Hook {
        program: "sched_process_exec",
        tracepoints: &[("sched", "sched_process_exec")],
        reads: &[],
    },
    Hook {
        program: "sched_process_exit",
        tracepoints: &[("sched", "sched_process_exit")],
        reads: &[FieldRead::global(
            "group_dead",
            1,
            config::GLOBAL_EXIT_GROUP_DEAD_OFFSET,
        )],
    },
];

const NET_HOOKS: &[Hook] = &[
    Hook {
        program: "accept_exit_tp",
        tracepoints: &[
            ("syscalls", "sys_exit_accept"),
            ("syscalls", "sys_exit_accept4"),
        ],
        reads: RET,
    },
    Hook {
        program: "sock_recv",
        tracepoints: &[("sock", "sock_recv_length")],
        reads: &[],
    },
    Hook {
        program: "sock_send",
        tracepoints: &[("sock", "sock_send_length")],
        reads: &[],
    },
    Hook {
        program: "close_enter",
        tracepoints: &[("syscalls", "sys_enter_close")],
        reads: &[arg("fd", 0)],
    },
];

/// What to load, decided by the command line.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    /// New processes forked by a target become targets.
    pub follow_forks: bool,
    /// Attach the socket hooks (HTTP capture).
    pub net: bool,
    /// Bytes of socket payload captured per boundary event.
    pub capture_len: u32,
    /// Ring-buffer size in bytes (a power of two, multiple of the page size).
    pub ring_bytes: u32,
    /// Bytes of growth per thread between two stacks (`--stacks`); 0 takes none.
    pub stack_every: u64,
    /// Stacks each CPU may take per second (`--stack-rate`).
    pub stack_rate: u64,
    /// A response's start may wait for its connection's next event when it tells user space
    /// nothing but its time and status (`ConnState::response_ns`). Off when an access log is
    /// joined: the join matches a line to a request once its response starts.
    pub fold_responses: bool,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            follow_forks: true,
            net: true,
            capture_len: memwatch_common::net::DEFAULT_CAPTURE,
            ring_bytes: 8 * 1024 * 1024,
            stack_every: 0,
            stack_rate: memwatch_common::stack::DEFAULT_STACK_RATE,
            fold_responses: true,
        }
    }
}

impl ProbeConfig {
    /// Every tracepoint this configuration attaches, for the preflight check.
    pub fn tracepoints(&self) -> Vec<(&'static str, &'static str)> {
        self.hooks()
            .flat_map(|h| h.tracepoints.iter().copied())
            .collect()
    }

    /// Every tracepoint this configuration attaches whose record a program reads, with the
    /// fields it reads, for the preflight format check.
    pub fn field_reads(
        &self,
    ) -> impl Iterator<Item = (&'static str, &'static str, &'static [FieldRead])> {
        self.hooks()
            .filter(|h| !h.reads.is_empty())
            .flat_map(|h| h.tracepoints.iter().map(|&(c, n)| (c, n, h.reads)))
    }

    fn hooks(&self) -> impl Iterator<Item = &'static Hook> {
        let net: &'static [Hook] = if self.net { NET_HOOKS } else { &[] };
        MEM_HOOKS.iter().chain(net)
    }
}

/// Counters the kernel side keeps about what it could not do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct KernelCounters {
    /// Ring-buffer reservations that failed: events lost.
    pub dropped_events: u64,
    /// Syscall exits whose enter was not seen (attached in between, or a full map).
    pub unpaired_exits: u64,
    /// Insertions refused because a map was full.
    pub map_full: u64,
    /// Stacks (`--stacks`) the kernel could not keep: its stack map full, or a hash collision.
    pub stacks_lost: u64,
}

/// Entries held by each of the kernel side's hash maps: at rest they hold one entry per traced
/// process, thread or open connection, and nothing for what has gone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MapEntries {
    pub targets: u64,
    pub thread_faults: u64,
    pub pending_mem: u64,
    pub conns: u64,
    pub heap_pending: u64,
    pub heap_live: u64,
    pub rss_seen: u64,
}

impl MapEntries {
    /// `name=count` pairs, in a fixed order (the recording's `kernel_map_entries`).
    pub fn pairs(&self) -> [(&'static str, u64); 7] {
        let Self {
            targets,
            thread_faults,
            pending_mem,
            conns,
            heap_pending,
            heap_live,
            rss_seen,
        } = *self;
        [
            ("targets", targets),
            ("thread_faults", thread_faults),
            ("pending_mem", pending_mem),
            ("conns", conns),
            ("heap_pending", heap_pending),
            ("heap_live", heap_live),
            ("rss_seen", rss_seen),
        ]
    }
}

/// A run of adjacent pages a thread faulted in that the kernel side has not sent yet (it sends
/// a run when a fault breaks it, or before the thread's next event that could change whom the
/// memory is charged to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingRun {
    pub tid: u32,
    pub tgid: u32,
    /// The run is `[start, end)`.
    pub start: u64,
    pub end: u64,
    /// When its first page was faulted in (`bpf_ktime_get_ns`, CLOCK_MONOTONIC).
    pub first_ns: u64,
}

/// The loaded, attached kernel side.
pub struct Probe {
    pub(super) ebpf: Ebpf,
    ring: AsyncFd<RingBuf<MapData>>,
    /// Bytes of ring-buffer records read (memwatch's own cost: what the kernel side sent).
    pub ring_bytes: u64,
    /// The ring buffer's size in bytes.
    pub ring_capacity: u64,
    /// glibc's allocator and Go's spans, per process (unless `--no-heap`).
    heap: HeapProbes,
    /// Collected runtimes' live-heap reports, per process.
    gc: super::gc::GcProbes,
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probe")
            .field("ring_fd", &self.ring.get_ref().as_raw_fd())
            .field("ring_bytes", &self.ring_bytes)
            .finish_non_exhaustive()
    }
}

fn program<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut Program, LoadError> {
    ebpf.program_mut(name)
        .ok_or(LoadError::MissingProgram { program: name })
}

pub(super) fn map<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut Map, LoadError> {
    ebpf.map_mut(name)
        .ok_or(LoadError::MissingMap { map: name })
}

impl Probe {
    /// Loads the programs with `config` and the field `offsets` that preflight took from this
    /// kernel's format files ([`super::preflight::check_formats`]) baked in as constants.
    /// Nothing is attached yet, so targets can be added before any event flows.
    pub fn load(config: &ProbeConfig, offsets: &Offsets) -> Result<Self, SetupError> {
        let self_tgid = std::process::id();
        let follow = u32::from(config.follow_forks);
        let fold = u32::from(config.fold_responses);
        let capture = config.capture_len.min(MAX_CAPTURE as u32);
        let wakeup = u64::from(config.ring_bytes / 8);
        let page_size = ::procfs::page_size();
        // A stack copy (16 KiB) is skipped once the ring buffer is a quarter full.
        let copy_room = u64::from(config.ring_bytes / 4);
        let mut loader = EbpfLoader::new();
        loader
            .override_global(config::GLOBAL_SELF_TGID, &self_tgid, true)
            .override_global(config::GLOBAL_FOLLOW_FORKS, &follow, true)
            .override_global(config::GLOBAL_CAPTURE_LEN, &capture, true)
            .override_global(config::GLOBAL_DEFER_RESPONSES, &fold, true)
            .override_global(config::GLOBAL_WAKEUP_BYTES, &wakeup, true)
            .override_global(config::GLOBAL_PAGE_SIZE, &page_size, true)
            .override_global(config::GLOBAL_STACK_EVERY, &config.stack_every, true)
            .override_global(config::GLOBAL_STACK_RATE, &config.stack_rate, true)
            .override_global(config::GLOBAL_STACK_COPY_ROOM, &copy_room, true)
            .map_max_entries(config::MAP_EVENTS, config.ring_bytes);
        for (global, offset) in offsets.iter() {
            tracing::debug!(global, offset, "tracepoint field offset");
            loader.override_global(global, offset, true);
        }
        let mut ebpf = loader.load(crate::EBPF_OBJECT).map_err(LoadError::Object)?;
        for hook in config.hooks() {
            let loaded = match program(&mut ebpf, hook.program)? {
                Program::TracePoint(p) => p.load(),
                Program::RawTracePoint(p) => p.load(),
                other => {
                    return Err(LoadError::NotATracepoint {
                        program: hook.program,
                        found: other.prog_type(),
                    }
                    .into());
                }
            };
            loaded.map_err(|source| LoadError::Program {
                program: hook.program,
                source,
            })?;
        }
        let events = ebpf
            .take_map(config::MAP_EVENTS)
            .ok_or(LoadError::MissingMap {
                map: config::MAP_EVENTS,
            })?;
        let ring = RingBuf::try_from(events).map_err(|source| LoadError::MapType {
            map: config::MAP_EVENTS,
            source,
        })?;
        // SAFETY: the RingBuf owns its map fd, which stays open and unchanged until the
        // AsyncFd (and with it the RingBuf) is dropped.
        let ring = unsafe { AsyncFd::register(ring) }
            .map_err(|e| LoadError::RingBuffer(e.into_parts().1))?;
        Ok(Self {
            ebpf,
            ring,
            ring_bytes: 0,
            ring_capacity: u64::from(config.ring_bytes),
            heap: HeapProbes::default(),
            gc: super::gc::GcProbes::default(),
        })
    }

    /// Attaches every loaded program. Call after the initial targets are in.
    pub fn attach(&mut self, config: &ProbeConfig) -> Result<(), SetupError> {
        for hook in config.hooks() {
            let program = program(&mut self.ebpf, hook.program)?;
            for (category, name) in hook.tracepoints {
                let attached = match &mut *program {
                    Program::RawTracePoint(p) => p.attach(name).map(drop),
                    Program::TracePoint(p) => p.attach(category, name).map(drop),
                    other => {
                        return Err(LoadError::NotATracepoint {
                            program: hook.program,
                            found: other.prog_type(),
                        }
                        .into());
                    }
                };
                attached.map_err(|source| LoadError::Attach {
                    program: hook.program,
                    tracepoint: format!("{category}:{name}"),
                    source,
                })?;
            }
        }
        Ok(())
    }

    /// Makes `pid` a target, its stacks taken as copies when `copy_stack` (`--stacks`, for a
    /// binary without frame pointers), or sets that for a target. memwatch's own PID is refused
    /// earlier, and the kernel side ignores it regardless.
    pub fn add_target(&mut self, pid: u32, copy_stack: bool) -> Result<(), SetupError> {
        let name = config::MAP_TARGETS;
        let mut targets: HashMap<&mut MapData, u32, u32> =
            HashMap::try_from(map(&mut self.ebpf, name)?)
                .map_err(|source| LoadError::MapType { map: name, source })?;
        let flags = if copy_stack {
            TARGET_TRACED | TARGET_COPY_STACK
        } else {
            TARGET_TRACED
        };
        targets
            .insert(pid, flags, 0)
            .map_err(|source| LoadError::AddTarget { pid, source })?;
        Ok(())
    }

    /// The frames of a stack the kernel took along frame pointers (`--stacks`), innermost
    /// first; `None` when the id is not in the stack map.
    pub fn kernel_stack(&self, id: u32) -> Option<Vec<u64>> {
        let map = self.ebpf.map(config::MAP_STACKS)?;
        let stacks = StackTraceMap::<&MapData>::try_from(map).ok()?;
        let trace = stacks.get(&id, 0).ok()?;
        Some(trace.frames().iter().map(|f| f.ip).collect())
    }

    /// Follows `pid`'s heap allocator (unless `--no-heap`); see [`HeapProbes::follow`].
    pub fn follow_heap(&mut self, pid: u32, go_sampled: bool) -> Result<(), HeapSkip> {
        self.heap.follow(&mut self.ebpf, pid, go_sampled)
    }

    /// Follows the live heap that `pid`'s collected runtime reports, if it has one memwatch
    /// knows; see [`super::gc::GcProbes::follow`].
    pub fn follow_gc(&mut self, pid: u32) -> Result<Option<super::gc::Found>, super::gc::GcSkip> {
        self.gc.follow(&mut self.ebpf, pid)
    }

    /// `pid` is gone or exec'd: its GC probes go.
    pub fn forget_gc(&mut self, pid: u32) {
        self.gc.forget(pid);
    }

    /// `pid` is gone or exec'd: its heap probes and live blocks go.
    pub fn forget_heap(&mut self, pid: u32) {
        self.heap.forget(&mut self.ebpf, pid);
    }

    /// The processes whose heap is followed.
    pub fn heap_pids(&self) -> Vec<u32> {
        self.heap.pids()
    }

    /// Where the heap probes of the followed processes sit, once per binary and program.
    pub fn heap_sites(&self) -> Vec<super::heap::Point> {
        self.heap.sites()
    }

    /// Hits on each heap probe since load, by `memwatch_common::heap::HeapSite`.
    pub fn heap_hits(&self) -> [u64; memwatch_common::heap::HEAP_SITES as usize] {
        HeapProbes::hits(&self.ebpf)
    }

    /// Attaches or detaches the heap probes of every followed process (their budget); returns
    /// the processes whose probes could not be attached again, which are no longer followed,
    /// and whether every process has its probes: attaching stops at `until`, and a further call
    /// goes on (see [`HeapProbes::set_on`]).
    pub fn set_heap_on(
        &mut self,
        on: bool,
        until: std::time::Instant,
    ) -> (Vec<(u32, HeapSkip)>, bool) {
        self.heap.set_on(&mut self.ebpf, on, until)
    }

    /// The sites of the heap probes the last detach closed, in order, and how long the kernel
    /// lately took to remove one (see [`HeapProbes::lingering`]).
    pub fn heap_lingering(&self) -> (Vec<memwatch_common::heap::HeapSite>, u64) {
        self.heap.lingering()
    }

    /// A followed block was found given back while the heap probes were off.
    pub fn forget_heap_block(&mut self, pid: u32, addr: u64) {
        HeapProbes::forget_block(&mut self.ebpf, pid, addr);
    }

    /// What a heap probe's hit costs on this machine (loads the heap programs first). `None`
    /// when they cannot be loaded (the heap is then not followed, and each process says why).
    pub fn calibrate_heap(&mut self) -> Option<super::heap::calibrate::Costs> {
        self.heap.load_programs(&mut self.ebpf).ok()?;
        Some(super::heap::calibrate::measure(&mut self.ebpf))
    }

    /// Runs of pages faulted in but not yet sent, one per live traced thread that has one. Read
    /// at the end of a recording, so that the last growth of idle threads is not lost.
    pub fn pending_runs(&self) -> Vec<PendingRun> {
        let Some(map) = self.ebpf.map(config::MAP_THREAD_FAULTS) else {
            return Vec::new();
        };
        let Ok(map) = HashMap::<&MapData, u32, ThreadFaults>::try_from(map) else {
            return Vec::new();
        };
        map.iter()
            .filter_map(Result::ok)
            .filter(|(_, v)| v.run_end > v.run_start)
            .map(|(tid, v)| PendingRun {
                tid,
                tgid: v.tgid,
                start: v.run_start,
                end: v.run_end,
                first_ns: v.run_ns,
            })
            .collect()
    }

    /// Page faults per live traced thread: `(tid, tgid, faults)`.
    pub fn thread_faults(&self) -> Vec<(u32, u32, u64)> {
        let Some(map) = self.ebpf.map(config::MAP_THREAD_FAULTS) else {
            return Vec::new();
        };
        let Ok(map) = HashMap::<&MapData, u32, ThreadFaults>::try_from(map) else {
            return Vec::new();
        };
        map.iter()
            .filter_map(Result::ok)
            .map(|(tid, v)| (tid, v.tgid, v.faults))
            .collect()
    }

    /// Counts the entries of the kernel side's hash maps (a walk of each: call it rarely).
    pub fn map_entries(&self) -> MapEntries {
        fn count<K: aya::Pod, V: aya::Pod>(ebpf: &Ebpf, name: &str) -> u64 {
            ebpf.map(name)
                .and_then(|map| HashMap::<&MapData, K, V>::try_from(map).ok())
                .map_or(0, |map| map.keys().filter(Result::is_ok).count() as u64)
        }
        let ebpf = &self.ebpf;
        MapEntries {
            targets: count::<u32, u32>(ebpf, config::MAP_TARGETS),
            thread_faults: count::<u32, ThreadFaults>(ebpf, config::MAP_THREAD_FAULTS),
            pending_mem: count::<u32, MemArgs>(ebpf, config::MAP_PENDING_MEM),
            conns: count::<u64, ConnState>(ebpf, config::MAP_CONNS),
            heap_pending: count::<u32, HeapPending>(ebpf, config::MAP_HEAP_PENDING),
            heap_live: count::<HeapKey, u64>(ebpf, config::MAP_HEAP_LIVE),
            rss_seen: count::<u32, RssSeen>(ebpf, config::MAP_RSS_SEEN),
        }
    }

    /// Detaches every program, each on its own thread, then frees the maps. Detaching a
    /// tracepoint waits for a kernel grace period; one after another, ~30 of them took 1.5 s
    /// (and up to 15 s on a busy host). Waiting side by side, they share grace periods.
    pub fn detach(mut self) {
        let started = std::time::Instant::now();
        let programs: Vec<&mut Program> = self.ebpf.programs_mut().map(|(_, p)| p).collect();
        std::thread::scope(|scope| {
            for program in programs {
                let spawned = std::thread::Builder::new()
                    .name("memwatch-detach".into())
                    .spawn_scoped(scope, move || {
                        // The hooks memwatch attaches; the heap uprobes go with the object.
                        let unloaded = match program {
                            Program::TracePoint(p) => p.unload(),
                            Program::RawTracePoint(p) => p.unload(),
                            _ => Ok(()),
                        };
                        if let Err(e) = unloaded {
                            tracing::debug!(error = %e, "detaching a program");
                        }
                    });
                if let Err(e) = spawned {
                    // The program is detached when the object is dropped below instead.
                    tracing::debug!(error = %e, "no thread to detach a program on");
                }
            }
        });
        tracing::debug!(took = ?started.elapsed(), "programs detached");
    }

    /// Sums of the per-CPU counters.
    pub fn counters(&self) -> KernelCounters {
        let Some(map) = self.ebpf.map(config::MAP_COUNTERS) else {
            return KernelCounters::default();
        };
        let Ok(array) = PerCpuArray::<&MapData, u64>::try_from(map) else {
            return KernelCounters::default();
        };
        let sum = |c: Counter| -> u64 {
            debug_assert!((c as u32) < COUNTER_SLOTS);
            array
                .get(&(c as u32), 0)
                .map(|values| values.iter().sum())
                .unwrap_or(0)
        };
        KernelCounters {
            dropped_events: sum(Counter::RingbufDrops),
            unpaired_exits: sum(Counter::UnpairedExits),
            map_full: sum(Counter::MapFull),
            stacks_lost: sum(Counter::StacksLost),
        }
    }

    /// Waits until the ring buffer signals data (the kernel wakes it only past a fill
    /// threshold; callers also drain on a timer).
    pub async fn readable(&self) {
        if let Ok(mut guard) = self.ring.readable().await {
            guard.clear_ready();
        }
    }

    /// Copies up to `most` waiting records into `out`; returns how many were read.
    pub fn drain(&mut self, out: &mut Records, most: usize) -> usize {
        let mut n = 0;
        let mut bytes = 0;
        let ring = self.ring.get_mut();
        while n < most {
            let Some(item) = ring.next() else {
                break;
            };
            n += 1;
            bytes += item.len() as u64;
            out.push(&item);
        }
        self.ring_bytes += bytes;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::probe::format::At;

    /// The load-time globals of every [`At::Global`] read, each from the hook that reads it.
    fn globals() -> Vec<(&'static str, &'static Hook)> {
        let all = MEM_HOOKS.iter().chain(NET_HOOKS);
        all.flat_map(|h| {
            h.reads.iter().filter_map(move |r| match r.at {
                At::Global(global) => Some((global, h)),
                At::Fixed(_) => None,
            })
        })
        .collect()
    }

    #[test]
    fn each_offset_global_is_read_once_on_one_tracepoint() {
        let globals = globals();
        let mut names: Vec<&str> = globals.iter().map(|(g, _)| *g).collect();
        names.sort_unstable();
        let mut expected = [
            config::GLOBAL_EXIT_GROUP_DEAD_OFFSET,
            config::GLOBAL_NEWTASK_CLONE_FLAGS_OFFSET,
            config::GLOBAL_NEWTASK_PID_OFFSET,
        ];
        expected.sort_unstable();
        assert_eq!(names, expected, "every offset global is set, once");
        for (global, hook) in globals {
            // One global holds one offset: its program cannot attach to two tracepoints whose
            // layouts might differ.
            assert_eq!(hook.tracepoints.len(), 1, "{global} in {}", hook.program);
        }
    }

    #[test]
    fn field_reads_follow_the_configuration() {
        let with_net: Vec<String> = ProbeConfig::default()
            .field_reads()
            .map(|(c, n, _)| format!("{c}:{n}"))
            .collect();
        assert!(with_net.contains(&"task:task_newtask".to_owned()));
        assert!(with_net.contains(&"syscalls:sys_exit_accept4".to_owned()));
        assert!(with_net.contains(&"syscalls:sys_enter_close".to_owned()));
        // page_fault_user reads the faulting address.
        assert!(with_net.contains(&"exceptions:page_fault_user".to_owned()));
        // Tracepoints whose programs read no record field are not checked.
        assert!(!with_net.contains(&"sched:sched_process_exec".to_owned()));
        assert!(!with_net.contains(&"sock:sock_recv_length".to_owned()));

        let no_net = ProbeConfig {
            net: false,
            ..ProbeConfig::default()
        };
        assert!(
            no_net
                .field_reads()
                .all(|(_, n, _)| !n.contains("accept") && !n.contains("close"))
        );
    }
}
