//! One recording: preflight, load, attach ([`start`]), then one loop that drains the ring
//! buffer, samples /proc, follows the access logs and feeds the correlator and the writer until a
//! stop condition ([`Session::run`]). Capture → correlation → recording, nothing further down the
//! flow: the commands put a page or a report on top.

use std::{
    collections::{HashMap, HashSet},
    ffi::OsString,
    io::IsTerminal as _,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

mod gc;
mod heap;
mod signals;

use memwatch_common::{
    mem::MemOp,
    stack::{AT_HEAP, AT_SYSCALL},
};
pub use signals::StopSignals;

use crate::{
    capture::{
        accesslog::Format,
        logtail::LogSource,
        probe::{
            Event, Probe, ProbeConfig, event::comm_str, format::Offsets, linger,
            loader::KernelCounters, preflight,
        },
        procfs,
        spawn::{self, HeldChild, SpawnOptions},
        stacks::{Stacks, Taken},
    },
    correlate::{
        Correlator, StateSizes,
        interval::IntervalAttributor,
        join::Joiner,
        mem::{MemAccounting, ResidentEffect},
        route::{self, Router},
    },
    error::{SetupError, UsageError},
    model::{CountersRow, ProcessOrigin, ProcessRow, Row, meta},
    recording::{
        Writer,
        create::{Reserve, check_output},
    },
    units::{self, NS_PER_SEC},
};

/// How often the ring buffer is drained when the kernel has not woken us.
const DRAIN_EVERY: Duration = Duration::from_millis(50);
/// Without the socket hooks (`--no-net`), nothing tells which process serves requests: a
/// new process (a fork, an exec, a descendant found at attach holding no socket) has its heap
/// followed once it has lived this long. With them, from its first request: attaching and detaching the heap
/// probes costs tens of milliseconds of kernel work per probe (and disturbs every process
/// that maps glibc), which a helper that serves nothing is not worth, and a target with a
/// hundred such children would take a minute to stop.
const HEAP_DEFER: Duration = Duration::from_millis(500);

/// How often per-thread fault totals and loss counters are written.
const COUNTERS_EVERY: Duration = Duration::from_secs(1);

/// The most address space, in pages, whose resident pages are read from a process's pagemap as
/// it becomes a target (16 GiB of 4 KiB pages: 32 MiB of pagemap read, a few tens of ms).
/// Reservations that can hold no page (`---p`) do not count.
const MAX_RESIDENT_SCAN_PAGES: u64 = 1 << 22;

/// CLOCK_MONOTONIC now, in ns: the clock of `bpf_ktime_get_ns`.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * NS_PER_SEC as u64 + ts.tv_nsec as u64
}

/// Now, in wall-clock nanoseconds since the Unix epoch.
pub(crate) fn wall_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

fn default_output() -> PathBuf {
    PathBuf::from(format!(
        "memwatch-{}.db",
        chrono::Local::now().format("%Y%m%d-%H%M%S")
    ))
}

/// Why recording stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Ctrl-C or SIGTERM.
    Signal,
    /// The command that runs the session asked (`memwatch ci`).
    Asked,
    Duration,
    TargetsExited,
    /// The recording could not be written (disk full, I/O error); [`Writer::finish`] says why.
    WriteFailed,
}

/// One recording under way: everything the loop mutates. Made by [`start`].
pub struct Session {
    /// `None` with `--no-ebpf`.
    probe: Option<Probe>,
    writer: Writer,
    correlator: Correlator,
    /// Wall ns = monotonic ns + offset.
    offset: i64,
    alive: HashSet<u32>,
    spawned: Option<u32>,
    /// Memory-syscall accounting (brk tracking, vm deltas).
    mem: MemAccounting,
    /// Page faults of threads that have exited, per process.
    exited_faults: HashMap<u32, u64>,
    events: u64,
    /// Decoded events waiting for `on_event` (reused between drains).
    pending: Vec<Event>,
    rows: Vec<Row>,
    counters: KernelCounters,
    /// Access logs being followed, and whether each one's format is in the recording yet.
    logs: Vec<(LogSource, bool)>,
    joiner: Joiner,
    /// `--no-ebpf`: growth per sampling interval shared among log lines.
    interval: Option<IntervalAttributor>,
    router: Router,
    redact_query: bool,
    /// The recording being written.
    output: PathBuf,
    /// Notified to stop recording (`memwatch ci`).
    stop: Option<Arc<tokio::sync::Notify>>,
    options: RecordOptions,
    /// The heaps followed (unless `--no-heap` or `--no-ebpf`), within their budget.
    heap: Option<heap::HeapFollow>,
    /// Processes whose heap is not followed yet (they have served no request), and since when
    /// (see [`HEAP_DEFER`]).
    heap_deferred: HashMap<u32, Instant>,
    /// `--stacks`: interns and names the kernel's stacks.
    stacks: Option<Stacks>,
    /// Stacks taken at a memory syscall's return, per thread, for the syscall's row that follows.
    syscall_stacks: HashMap<u32, u32>,
    /// Processes gone since the last drain, whose kernel-side connections are to be swept.
    gone: HashSet<u32>,
    /// Kernel-side connections swept because their process had gone.
    conns_swept: u64,
    /// The largest the correlator's state has been (read at each sample).
    peaks: StateSizes,
    /// Ctrl-C and SIGTERM, listened for since before the attach; the event loop takes them.
    signals: Option<StopSignals>,
    /// Every PID traced so far, and how many were given to a new process after their own
    /// exited: the recording keeps one process row per PID, so such a row covers both.
    seen: HashSet<u32>,
    pids_reused: u64,
    /// Resident bytes madvise gave back (`meta::MADVISE_RELEASED_BYTES`).
    madvise_released_bytes: u64,
    /// Collected runtimes' live-heap reports.
    gc: gc::GcFollow,
    /// The kernel's stamp of the last event handled (monotonic ns): what the followed heap
    /// reflects, which may lag the clock by what the ring buffer still holds.
    last_event_mono: u64,
}

impl Session {
    fn wall(&self, mono: u64) -> i64 {
        mono as i64 + self.offset
    }

    fn add_process(&mut self, pid: u32, origin: ProcessOrigin) {
        let info = procfs::info(pid);
        if let Some(end) = procfs::heap_end(pid) {
            self.mem.known_break(pid, end);
        }
        self.rows.push(Row::Process(ProcessRow {
            pid,
            ppid: info.as_ref().map(|i| i.ppid),
            comm: info.as_ref().map(|i| i.comm.clone()).unwrap_or_default(),
            cmdline: info.as_ref().and_then(|i| i.cmdline.clone()),
            started_ns: info.as_ref().and_then(|i| i.started_ns),
            origin,
        }));
        self.alive.insert(pid);
        self.seen.insert(pid);
        // The process named (or started) is followed at once, and so are its descendants that
        // hold a socket (a prefork server's workers); the others once they serve.
        if origin == ProcessOrigin::Descendant && !procfs::holds_socket(pid) {
            self.defer_heap(pid);
        } else {
            self.follow_heap(pid);
        }
        if let Some(probe) = self.probe.as_mut() {
            self.gc.follow(probe, pid);
        }
        // A command memwatch starts is traced from its exec on: it has nothing resident from
        // before (what the held child has now is a copy of memwatch, gone at the exec).
        if self.probe.is_some() && self.spawned != Some(pid) {
            self.read_resident_before(pid);
        }
    }

    /// Which pages of `pid` are resident as it becomes a target, so that a release of memory
    /// memwatch did not see made resident is told apart: resident before (of unknown origin)
    /// or never resident (see [`Correlator::resident_before`]). Without them, such releases of
    /// the process all count as of unknown origin, an upper bound; said in the log.
    fn read_resident_before(&mut self, pid: u32) {
        let started = Instant::now();
        let ranges = procfs::resident_ranges(pid, MAX_RESIDENT_SCAN_PAGES);
        tracing::debug!(
            pid,
            ranges = ranges.as_ref().map(Vec::len),
            bytes = ranges
                .as_ref()
                .map(|r| r.iter().map(|(a, b)| b - a).sum::<u64>()),
            elapsed = ?started.elapsed(),
            "pages resident as tracing began"
        );
        let known = ranges.is_some_and(|ranges| self.correlator.resident_before(pid, &ranges));
        if !known {
            tracing::info!(
                pid,
                "its resident pages could not be read as tracing began: its releases of pages \
                 memwatch did not see made resident all count as of unknown origin"
            );
        }
    }

    /// Attaches the allocator probes to `pid` (unless `--no-heap`). A process whose heap
    /// cannot be followed is still recorded; why is logged and it is counted.
    fn follow_heap(&mut self, pid: u32) {
        let (Some(heap), Some(probe)) = (self.heap.as_mut(), self.probe.as_mut()) else {
            return;
        };
        match probe.follow_heap(pid) {
            Ok(()) => heap.placed(probe),
            Err(e) => {
                heap.counts.not_followed += 1;
                tracing::warn!("{:#}", anyhow::Error::from(e));
            }
        }
    }

    /// `pid` is gone, or exec'd into a new image: its allocator probes and blocks go.
    fn forget_heap(&mut self, pid: u32) {
        if let (Some(heap), Some(probe)) = (self.heap.as_mut(), self.probe.as_mut()) {
            probe.forget_heap(pid);
            heap.forget(pid);
        }
    }

    /// A process whose heap is to be followed once it serves a request (or, without the
    /// socket hooks, once it has lived [`HEAP_DEFER`]).
    fn defer_heap(&mut self, pid: u32) {
        if self.heap.is_some() {
            self.heap_deferred.insert(pid, Instant::now());
        }
    }

    /// Without the socket hooks: follows the heaps of deferred processes that have lived long
    /// enough.
    fn follow_deferred_heaps(&mut self) {
        if self.options.net || self.heap_deferred.is_empty() {
            return;
        }
        let due: Vec<u32> = self
            .heap_deferred
            .iter()
            .filter(|(_, since)| since.elapsed() >= HEAP_DEFER)
            .map(|(&pid, _)| pid)
            .collect();
        for pid in due {
            self.heap_deferred.remove(&pid);
            if self.alive.contains(&pid) {
                self.follow_heap(pid);
            }
        }
    }

    /// The heap budget's look at the probes (at most every 50 ms).
    fn heap_look(&mut self) {
        if let (Some(heap), Some(probe)) = (self.heap.as_mut(), self.probe.as_mut()) {
            let mono = monotonic_ns();
            let wall = mono as i64 + self.offset;
            heap.look((mono, wall), probe, &mut self.correlator, &mut self.rows);
        }
    }

    fn on_event(&mut self, ev: Event) {
        self.events += 1;
        self.last_event_mono = ev.header().ts_ns;
        match ev {
            Event::Mem(m) => {
                let ts_ns = self.wall(m.header.ts_ns);
                let pid = m.header.tgid;
                if let Some((mut row, effect, vm)) = self.mem.account(ts_ns, &m) {
                    row.stack = self.syscall_stacks.remove(&m.header.tid);
                    // Resident memory first: whether a released range was all mapped while
                    // recording is read from the address-space map, before an unmapping
                    // removes it there.
                    match effect {
                        ResidentEffect::None => {}
                        ResidentEffect::Release { start, len } => {
                            let released =
                                self.correlator
                                    .release(ts_ns, pid, start, len, &mut self.rows);
                            if row.op == MemOp::Madvise {
                                self.madvise_released_bytes =
                                    self.madvise_released_bytes.saturating_add(released);
                            }
                        }
                        ResidentEffect::Remap { old, new } => {
                            self.correlator.remap(ts_ns, pid, old, new, &mut self.rows);
                        }
                    }
                    self.correlator
                        .vm(ts_ns, pid, m.header.tid, vm, &mut self.rows);
                    self.correlator.mem(row, &mut self.rows);
                }
            }
            Event::Fork(p) => {
                let child = p.child;
                self.mem.fork(p.header.tgid, child);
                self.correlator.forked(child);
                self.rows.push(Row::Process(ProcessRow {
                    pid: child,
                    ppid: Some(p.header.tgid),
                    comm: comm_str(&p.comm),
                    cmdline: None,
                    started_ns: Some(self.wall(p.header.ts_ns)),
                    origin: ProcessOrigin::Forked,
                }));
                self.alive.insert(child);
                if !self.seen.insert(child) {
                    self.pids_reused += 1;
                    tracing::info!(
                        pid = child,
                        "a PID traced before was given to a new process"
                    );
                }
                // Not at once: attaching the heap probes takes milliseconds of kernel work per
                // probe, and most children of a server (helpers, a shell) live for less.
                self.defer_heap(child);
            }
            Event::Exec(p) => {
                let pid = p.header.tgid;
                self.mem.exec(pid);
                // The old address space, and all it held, is gone.
                let ts_ns = self.wall(p.header.ts_ns);
                self.correlator
                    .address_space_gone(ts_ns, pid, &mut self.rows);
                self.forget_heap(pid);
                self.defer_heap(pid);
                if let Some(probe) = self.probe.as_mut() {
                    self.gc.forget(probe, pid);
                }
                self.stacks_for(pid);
                let info = procfs::info(pid);
                self.rows.push(Row::Process(ProcessRow {
                    pid,
                    ppid: info.as_ref().map(|i| i.ppid),
                    comm: comm_str(&p.comm),
                    cmdline: info.and_then(|i| i.cmdline),
                    started_ns: None,
                    origin: ProcessOrigin::Forked,
                }));
            }
            Event::Exit(p) => {
                let ts_ns = self.wall(p.header.ts_ns);
                let (pid, tid) = (p.header.tgid, p.header.tid);
                *self.exited_faults.entry(pid).or_default() += p.faults;
                self.rows.push(Row::Thread {
                    tid,
                    pid,
                    faults: p.faults,
                    exited_ns: Some(ts_ns),
                });
                self.correlator.thread_exit(tid);
                self.syscall_stacks.remove(&tid);
                if p.group_dead != 0 {
                    self.correlator.process_gone(ts_ns, pid, &mut self.rows);
                    self.gone.insert(pid);
                    self.correlator
                        .address_space_gone(ts_ns, pid, &mut self.rows);
                    self.forget_heap(pid);
                    self.heap_deferred.remove(&pid);
                    if let Some(probe) = self.probe.as_mut() {
                        self.gc.forget(probe, pid);
                    }
                    if let Some(stacks) = self.stacks.as_mut() {
                        stacks.forget(pid);
                    }
                    self.rows.push(Row::ProcessExit {
                        pid,
                        ts_ns,
                        exit_code: None,
                    });
                    self.alive.remove(&pid);
                }
            }
            Event::Growth(g) => {
                let ts_ns = self.wall(g.header.ts_ns);
                let first_ns = self.wall(g.first_ns);
                self.correlator.grow(
                    ts_ns,
                    g.header.tgid,
                    g.header.tid,
                    g.start,
                    g.len,
                    first_ns,
                    &mut self.rows,
                );
            }
            Event::Heap(h) => {
                let ts_ns = self.wall(h.header.ts_ns);
                if let (Some(heap), Some(probe)) = (self.heap.as_mut(), self.probe.as_mut()) {
                    heap.event(ts_ns, &h, probe, &mut self.correlator, &mut self.rows);
                }
            }
            Event::FilePages(f) => {
                let ts_ns = self.wall(f.header.ts_ns);
                self.correlator.file_pages(
                    ts_ns,
                    f.header.tgid,
                    f.header.tid,
                    f.delta,
                    &mut self.rows,
                );
            }
            Event::Net(n) => {
                // A process that serves requests is followed from its first one.
                if self.heap_deferred.remove(&n.meta.header.tgid).is_some() {
                    self.follow_heap(n.meta.header.tgid);
                }
                if let Some(probe) = self.probe.as_mut() {
                    self.gc.serving(probe, n.meta.header.tgid);
                }
                let offset = self.offset;
                self.correlator.net(&n, offset, &mut self.rows);
            }
            Event::Stack(e) => {
                let (pid, tid) = (e.header.tgid, e.header.tid);
                if let (Some(stacks), Some(probe)) = (self.stacks.as_mut(), self.probe.as_ref()) {
                    let taken = stacks.from_kernel(pid, e.stack_id, |k| probe.kernel_stack(k));
                    let fallbacks = stacks.take_fallbacks();
                    self.use_stack(tid, e.at, taken);
                    self.copy_stacks(&fallbacks);
                }
            }
            Event::StackCopy(c) => {
                let (pid, tid) = (c.header.tgid, c.header.tid);
                if let Some(stacks) = self.stacks.as_mut() {
                    let taken = stacks.from_copy(pid, c.ip, c.sp, c.bp, &c.data);
                    self.use_stack(tid, c.at, taken);
                }
            }
            Event::Gc(e) => {
                let ts_ns = self.wall(e.header.ts_ns);
                self.gc.event(ts_ns, &e, &mut self.rows);
            }
        }
    }

    /// A stack taken at a fault is the call site of the thread's growth from now on; one taken
    /// at a memory syscall, of that syscall. A skipped stack leaves the thread's latest one in
    /// place (the correlator clears it at each request boundary).
    fn use_stack(&mut self, tid: u32, at: u32, taken: Taken) {
        let id = match taken {
            Taken::Skipped => return,
            Taken::Lost => None,
            Taken::Stack(id) => Some(id),
        };
        if at == AT_SYSCALL {
            if let Some(id) = id {
                self.syscall_stacks.insert(tid, id);
            }
        } else if at == AT_HEAP {
            if let (Some(id), Some(heap)) = (id, self.heap.as_mut()) {
                heap.stack(tid, id);
            }
        } else {
            self.correlator.set_stack(tid, id);
        }
    }

    /// Switches processes to copied stacks (their frame-pointer stacks were cut short).
    fn copy_stacks(&mut self, pids: &[u32]) {
        if let Some(probe) = self.probe.as_mut() {
            for &pid in pids {
                if let Err(e) = probe.add_target(pid, true) {
                    tracing::warn!("{:#}", anyhow::Error::from(e));
                }
            }
        }
    }

    /// With `--stacks`, how `pid`'s stacks are taken is decided again (after exec, or when
    /// `pid` was added before its program was known).
    fn stacks_for(&mut self, pid: u32) {
        if let (Some(stacks), Some(probe)) = (self.stacks.as_mut(), self.probe.as_mut()) {
            stacks.forget(pid);
            let copy = stacks.wants_copy(pid);
            if let Err(e) = probe.add_target(pid, copy) {
                tracing::warn!("{:#}", anyhow::Error::from(e));
            }
        }
    }

    fn drain(&mut self) {
        // The probe and the handlers both need `self`: collect first, into a buffer whose
        // capacity is kept between drains.
        let Some(probe) = self.probe.as_mut() else {
            return;
        };
        let mut events = std::mem::take(&mut self.pending);
        probe.drain(|e| events.push(e));
        for e in events.drain(..) {
            self.on_event(e);
        }
        self.pending = events;
        self.sweep_conns();
        self.flush();
    }

    /// Drops the kernel-side connections of processes that exited, once per drain rather than
    /// per exit (each sweep walks the map). A PID given again to a new target since is kept:
    /// its entries may be the new process's.
    fn sweep_conns(&mut self) {
        if self.gone.is_empty() {
            return;
        }
        let alive = &self.alive;
        self.gone.retain(|pid| !alive.contains(pid));
        if let Some(probe) = self.probe.as_mut() {
            self.conns_swept += probe.forget_conns(&self.gone);
        }
        self.gone.clear();
    }

    fn flush(&mut self) {
        if let Some(stacks) = self.stacks.as_mut() {
            self.rows.extend(stacks.take_rows());
        }
        if !self.rows.is_empty() {
            self.writer.send(std::mem::take(&mut self.rows));
        }
    }

    /// Page faults per live traced thread (none without eBPF).
    fn thread_faults(&self) -> Vec<(u32, u32, u64)> {
        self.probe
            .as_ref()
            .map_or_else(Vec::new, Probe::thread_faults)
    }

    /// Reads the access logs: each line is routed, then joined to a captured request (or, with
    /// `--no-ebpf`, queued for the interval's growth). `done` flushes everything held.
    fn read_logs(&mut self, done: bool) {
        let now = wall_ns();
        for i in 0..self.logs.len() {
            let lines = self.logs[i].0.poll(now);
            if !self.logs[i].1
                && let Some(name) = self.logs[i].0.format_name().map(str::to_owned)
            {
                self.logs[i].1 = true;
                self.rows.push(Row::Meta(meta::access_log_format(i), name));
            }
            for mut line in lines {
                if let Some(t) = line.target.as_mut() {
                    if self.redact_query {
                        *t = route::redact_query(t.as_str()).into_owned();
                    }
                    line.route = Some(self.router.route(t.as_str()));
                }
                match self.interval.as_mut() {
                    Some(interval) => interval.line(line, &mut self.rows),
                    None => {
                        let rows = self.joiner.line(line, now);
                        self.rows.extend(rows);
                    }
                }
            }
        }
        for c in self.correlator.take_candidates() {
            let rows = self.joiner.request(c, now);
            self.rows.extend(rows);
        }
        let rows = if done {
            self.joiner.finish()
        } else {
            self.joiner.tick(now)
        };
        self.rows.extend(rows);
    }

    /// One /proc sample of every live target; returns the total RSS.
    fn sample(&mut self, thread_faults: &[(u32, u32, u64)]) -> u64 {
        self.peaks = self.peaks.max(self.correlator.state_sizes());
        let ts_ns = wall_ns();
        let mut total_vm = 0;
        let mut live: HashMap<u32, u64> = HashMap::new();
        for &(_, tgid, faults) in thread_faults {
            *live.entry(tgid).or_default() += faults;
        }
        let mut total = 0;
        let pids: Vec<u32> = self.alive.iter().copied().collect();
        for pid in pids {
            if let Some(code) = self.spawned.filter(|&s| s == pid).and_then(spawn::try_reap) {
                self.rows.push(Row::ProcessExit {
                    pid,
                    ts_ns,
                    exit_code: Some(code),
                });
            }
            match procfs::memory(pid) {
                Some((rss, vm)) if rss > 0 || vm > 0 => {
                    total += rss;
                    total_vm += vm;
                    let faults = self.exited_faults.get(&pid).copied().unwrap_or(0)
                        + live.get(&pid).copied().unwrap_or(0);
                    self.rows.push(Row::Sample {
                        ts_ns,
                        pid,
                        rss_bytes: rss,
                        vm_bytes: vm,
                        faults,
                    });
                }
                _ => {
                    // Gone (or a zombie: no memory left) without an exit event reaching us: stop waiting for it.
                    tracing::debug!(pid, "process gone from /proc");
                    self.rows.push(Row::ProcessExit {
                        pid,
                        ts_ns,
                        exit_code: None,
                    });
                    self.alive.remove(&pid);
                }
            }
        }
        if let Some(interval) = self.interval.as_mut() {
            interval.sample(total, total_vm, &mut self.rows);
        }
        // The followed heap, a retained signal for the regression where a runtime reports no
        // collections of its own; only while the probes see every block change hands.
        // Stamped with the last event handled, not now: requests are timed by the kernel's
        // clock, and one that ended in events not yet read is not in the sum yet either.
        let heap_ts_ns = self.wall(self.last_event_mono);
        if let Some(heap) = self
            .heap
            .as_ref()
            .filter(|h| h.attached() && heap_ts_ns > 0)
        {
            for (pid, bytes) in heap.live_bytes() {
                if self.alive.contains(&pid) && self.gc.heap_is_signal(pid) {
                    self.rows.push(Row::LiveHeap {
                        ts_ns: heap_ts_ns,
                        pid,
                        bytes,
                        source: "heap",
                    });
                }
            }
        }
        total
    }

    /// Without eBPF nothing reports forks: new descendants are picked up from /proc.
    fn adopt_descendants(&mut self) {
        let alive: Vec<u32> = self.alive.iter().copied().collect();
        for pid in procfs::with_descendants(&alive) {
            if !self.alive.contains(&pid) && pid != std::process::id() {
                self.add_process(pid, ProcessOrigin::Descendant);
            }
        }
    }

    /// Requests seen so far, by whichever mode is recording them.
    fn requests(&self) -> u64 {
        self.interval
            .as_ref()
            .map_or_else(|| self.correlator.requests(), IntervalAttributor::requests)
    }

    fn write_counters(&mut self, thread_faults: &[(u32, u32, u64)]) {
        let origin = self.correlator.origin_counts();
        tracing::debug!(?origin, "origin map");
        for &(tid, pid, faults) in thread_faults {
            self.rows.push(Row::Thread {
                tid,
                pid,
                faults,
                exited_ns: None,
            });
        }
        self.counters = self
            .probe
            .as_ref()
            .map_or_else(KernelCounters::default, Probe::counters);
        let KernelCounters {
            dropped_events,
            unpaired_exits,
            map_full,
            // Written with the other stack counts when the recording closes.
            stacks_lost: _,
        } = self.counters;
        self.rows.push(Row::Counters(CountersRow {
            ts_ns: wall_ns(),
            events: self.events,
            dropped: dropped_events,
            unpaired_exits,
            map_full,
            undecodable: self.probe.as_ref().map_or(0, |p| p.undecodable),
            untracked_bytes: origin.untracked_bytes,
            unmatched_release_bytes: origin.unmatched_release_bytes,
            unseen_release_bytes: origin.unseen_release_bytes,
        }));
        // The heap budget's figures so far, for /metrics and the page while recording.
        if let Some(heap) = &self.heap {
            self.rows.extend(heap.progress());
        }
    }
}

fn status_bar() -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    Some(bar)
}

/// What one recording does: the options of `memwatch record`, as plain values (the command line
/// in `cli.rs` turns arguments into these).
#[derive(Debug, Clone)]
pub struct RecordOptions {
    /// Processes to trace, with their current descendants.
    pub pids: Vec<u32>,
    /// Command to start and trace from its first instruction.
    pub command: Vec<OsString>,
    /// The recording; None picks `memwatch-<date>-<time>.db`.
    pub output: Option<PathBuf>,
    /// Overwrite an existing recording.
    pub force: bool,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Follow descendants and processes forked later.
    pub follow_forks: bool,
    /// How often RSS and VmSize are sampled from /proc.
    pub sample_interval: Duration,
    /// Hook sockets (HTTP requests).
    pub net: bool,
    /// Bytes of each request and response captured.
    pub capture_bytes: u32,
    /// Ring-buffer size in MiB.
    pub ring_mib: u32,
    /// Route patterns, first match wins.
    pub routes: Vec<String>,
    /// Drop query strings before anything is stored.
    pub redact_query: bool,
    /// Access logs to follow and join.
    pub access_logs: Vec<PathBuf>,
    /// Their format (detected when None).
    pub log_format: Option<String>,
    /// Read the logs from their beginning.
    pub log_from_start: bool,
    /// Load the eBPF programs (false: /proc sampling and access logs only).
    pub ebpf: bool,
    /// Follow glibc's malloc and free and Go's spans in each target (uprobes), so that heap
    /// memory reused by another request changes hands (on unless `--no-heap`).
    pub heap: bool,
    /// The share of one core the heap probes may cost (`--heap-budget`).
    pub heap_budget: f64,
    /// Take the call sites of growth, one stack per this many bytes per thread (`--stacks`).
    pub stack_every: Option<u64>,
    /// At most this many stacks per CPU per second (`--stack-rate`).
    pub stack_rate: u64,
}

/// What `memwatch ci` needs from a recording it drives.
#[derive(Debug, Default)]
pub struct Hooks {
    /// How the command is started.
    pub spawn: SpawnOptions,
    /// Receives the command's PID once it runs traced.
    pub started: Option<tokio::sync::oneshot::Sender<u32>>,
    /// Notified to stop recording.
    pub stop: Option<Arc<tokio::sync::Notify>>,
}

/// Everything the user can get wrong, checked before anything is loaded; then loads and attaches
/// the probes, creates the recording and returns the session, recording. A setup failure leaves
/// no recording behind.
pub async fn start(args: RecordOptions, hooks: Hooks) -> anyhow::Result<Session> {
    if args.pids.is_empty() && args.command.is_empty() {
        anyhow::bail!(UsageError(
            "nothing to trace: pass -p PID, or a command after `--` (memwatch record -- ./server)"
                .into()
        ));
    }
    if !args.pids.is_empty() && !args.command.is_empty() {
        anyhow::bail!(UsageError(
            "pass either -p PID or a command after `--`, not both".into()
        ));
    }
    let router = Router::new(&args.routes)?;
    for &pid in &args.pids {
        preflight::check_pid(pid, args.follow_forks, args.force)?;
    }
    if let Some(cmd) = args.command.first() {
        spawn::resolve(cmd)?;
    }
    let log_format = check_access_logs(args.log_format.as_deref(), &args.access_logs)?;
    let output = args.output.clone().unwrap_or_else(default_output);
    // Before the environment's checks (which may mount tracefs) and before anything is loaded:
    // a missing or read-only directory is the user's to fix, and is said first.
    let reserve = check_output(&output, args.force)?;
    // From here on, Ctrl-C stops the recording at its next turn of the event loop, even when it
    // comes during the attach, before the loop has started: the recording is then closed, not
    // cut short by the signal's default action.
    let signals = StopSignals::new()?;
    let config = ProbeConfig {
        follow_forks: args.follow_forks,
        net: args.net,
        capture_len: args.capture_bytes,
        ring_bytes: args.ring_mib * 1024 * 1024,
        stack_every: args.stack_every.filter(|_| args.ebpf).unwrap_or(0),
        stack_rate: args.stack_rate,
    };
    // Where this kernel's records hold the fields the kernel side reads.
    let offsets = if args.ebpf {
        preflight::check_privileges()?;
        preflight::ensure_tracefs()?;
        preflight::check_tracepoints(config.tracepoints())?;
        Some(preflight::check_formats(&config)?)
    } else {
        None
    };
    let mut out = Output {
        path: output.clone(),
        reserve,
        created: false,
    };
    let result = attach(
        args,
        &config,
        offsets.as_ref(),
        router,
        log_format,
        &mut out,
        hooks,
    )
    .await;
    if result.is_err() && out.created {
        // Setup failed before anything was recorded: leave no empty recording behind.
        crate::recording::remove(&output);
    }
    let mut session = result?;
    session.signals = Some(signals);
    Ok(session)
}

/// Where the recording goes: the path [`check_output`] accepted, the disk space it holds in
/// reserve, and whether the file exists yet (a failed setup removes only a file it created).
struct Output {
    path: PathBuf,
    reserve: Reserve,
    created: bool,
}

/// `--log-format` and `--access-log`, checked before anything is loaded: the format parses and
/// every log is readable (or its directory exists, to wait for it).
pub fn check_access_logs(
    log_format: Option<&str>,
    logs: &[PathBuf],
) -> anyhow::Result<Option<Format>> {
    let format = log_format
        .map(Format::from_name_or_log_format)
        .transpose()?;
    for log in logs {
        crate::capture::logtail::check(log)?;
    }
    Ok(format)
}

async fn attach(
    args: RecordOptions,
    config: &ProbeConfig,
    offsets: Option<&Offsets>,
    router: Router,
    log_format: Option<Format>,
    out: &mut Output,
    mut hooks: Hooks,
) -> anyhow::Result<Session> {
    let output = out.path.clone();
    let held = if args.command.is_empty() {
        None
    } else {
        Some(HeldChild::spawn_with(&args.command, &hooks.spawn)?)
    };
    // `offsets` is there exactly when eBPF is on and preflight passed.
    let mut probe = offsets
        .map(|offsets| Probe::load(config, offsets))
        .transpose()?;
    let (roots, origin) = match &held {
        Some(child) => (vec![child.pid], ProcessOrigin::Spawned),
        None => (args.pids.clone(), ProcessOrigin::Attached),
    };
    let self_pid = std::process::id();
    let generation = monotonic_ns();
    // The roots first, then the hooks: from then on the kernel side follows every fork of a
    // target, so descendants found by the scan below and children forked meanwhile are both
    // seen (the scan repeats until it finds nothing new; duplicates are harmless).
    let mut targets: Vec<u32> = Vec::new();
    // The first sample of each target, taken when it becomes one: the baseline every growth
    // event is reconciled against. (Following its heap and writing the recording's head take a
    // while; a target still starting up grows meanwhile, and those events are counted.)
    let mut baseline: Vec<Row> = Vec::new();
    let mut stacks = (config.stack_every != 0).then(Stacks::new);
    let mut add = |targets: &mut Vec<u32>,
                   pid: u32,
                   probe: &mut Option<Probe>,
                   conns: &mut procfs::ConnScan| {
        // memwatch may be a descendant of its target (`memwatch record -p $$` from a shell): it
        // is never one of its own targets, for the kernel side nor for the /proc sampler.
        if pid == self_pid || targets.contains(&pid) {
            return Ok::<(), anyhow::Error>(());
        }
        if let Some((rss_bytes, vm_bytes)) = procfs::memory(pid) {
            // One instant for the whole baseline: the views sum the processes' samples of one
            // instant.
            let ts_ns = match baseline.first() {
                Some(Row::Sample { ts_ns, .. }) => *ts_ns,
                _ => wall_ns(),
            };
            baseline.push(Row::Sample {
                ts_ns,
                pid,
                rss_bytes,
                vm_bytes,
                faults: 0,
            });
        }
        if let Some(probe) = probe.as_mut() {
            let copy = stacks.as_mut().is_some_and(|s| s.wants_copy(pid));
            probe.add_target(pid, copy)?;
            if config.net {
                probe.add_connections(pid, &conns.server_connections(pid), generation)?;
            }
        }
        targets.push(pid);
        Ok(())
    };
    // The roots' connections are read before the hooks are attached, the descendants' after:
    // one read of the TCP tables each (see `ConnScan`). A connection accepted after the hooks
    // are attached is seen by them.
    let mut conns = procfs::ConnScan::default();
    for &pid in &roots {
        add(&mut targets, pid, &mut probe, &mut conns)?;
    }
    // Test hook: widens the window between the checks and attaching, so the tests can make a
    // target exit inside it. Has no other effect.
    if let Some(ms) = std::env::var("MEMWATCH_DEBUG_ATTACH_DELAY_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        tokio::time::sleep(Duration::from_millis(ms.min(10_000))).await;
    }
    if let Some(probe) = probe.as_mut() {
        probe.attach(config)?;
    }
    if config.follow_forks && held.is_none() {
        let mut conns = procfs::ConnScan::default();
        loop {
            let before = targets.len();
            for pid in procfs::with_descendants(&roots) {
                add(&mut targets, pid, &mut probe, &mut conns)?;
            }
            if targets.len() == before {
                break;
            }
        }
    }
    // The heaps are followed within a budget, whose unit (what a hit costs here) is measured
    // once, before any target's heap probe is attached.
    let heap = match probe.as_mut() {
        Some(probe) if args.heap => match probe.calibrate_heap() {
            Some(costs) => Some(heap::HeapFollow::new(args.heap_budget, costs)),
            None => {
                tracing::warn!(
                    "the heap probes cannot be loaded on this kernel: heap reuse is not followed \
                     (run with -vv for why)"
                );
                None
            }
        },
        _ => None,
    };
    let offset = wall_ns() - monotonic_ns() as i64;
    let started_ns = wall_ns();
    let argv = redact_tokens(std::env::args());
    let page_size = ::procfs::page_size();
    let meta = [
        (meta::MEMWATCH_VERSION, env!("CARGO_PKG_VERSION").to_owned()),
        (meta::STARTED_NS, started_ns.to_string()),
        (meta::CLOCK_OFFSET_NS, offset.to_string()),
        (meta::COMMAND_LINE, argv.join(" ")),
        (meta::REDACT_QUERY, args.redact_query.to_string()),
        (
            meta::SAMPLE_INTERVAL_MS,
            args.sample_interval.as_millis().to_string(),
        ),
        (meta::CAPTURE_BYTES, config.capture_len.to_string()),
        (meta::FOLLOW_FORKS, config.follow_forks.to_string()),
        (meta::NET, config.net.to_string()),
        (meta::EBPF, args.ebpf.to_string()),
        (
            meta::ACCESS_LOGS,
            args.access_logs
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        (
            meta::KERNEL,
            procfs::kernel_release().unwrap_or_else(|| "unknown".into()),
        ),
        (meta::PAGE_SIZE, page_size.to_string()),
        (meta::HEAP, heap.is_some().to_string()),
        (meta::HEAP_BUDGET, args.heap_budget.to_string()),
    ]
    .into_iter()
    .chain((config.stack_every != 0).then(|| (meta::STACK_EVERY, config.stack_every.to_string())))
    .collect::<Vec<_>>();
    let reserve = std::mem::take(&mut out.reserve);
    let writer = Writer::create_reserved(&output, args.force, reserve, &meta)?;
    out.created = true;
    let mut session = Session {
        probe,
        writer,
        correlator: {
            let c = Correlator::new(router.clone(), args.redact_query, page_size)
                .joining(!args.access_logs.is_empty())
                .with_stacks(stacks.is_some());
            if heap.is_some() {
                c.following_heap()
            } else {
                c
            }
        },
        offset,
        alive: HashSet::new(),
        spawned: held.as_ref().map(|h| h.pid),
        mem: MemAccounting::new(page_size),
        exited_faults: HashMap::new(),
        events: 0,
        pending: Vec::new(),
        rows: Vec::new(),
        counters: KernelCounters::default(),
        logs: args
            .access_logs
            .iter()
            .map(|p| {
                let source = LogSource::new(p.clone(), log_format.clone(), args.log_from_start);
                (source, false)
            })
            .collect(),
        joiner: Joiner::default(),
        interval: (!args.ebpf)
            .then(|| IntervalAttributor::new(roots.first().copied().unwrap_or(0))),
        router,
        redact_query: args.redact_query,
        output,
        stop: hooks.stop.take(),
        options: args,
        heap,
        heap_deferred: HashMap::new(),
        stacks,
        syscall_stacks: HashMap::new(),
        gone: HashSet::new(),
        conns_swept: 0,
        peaks: StateSizes::default(),
        seen: HashSet::new(),
        pids_reused: 0,
        madvise_released_bytes: 0,
        gc: gc::GcFollow::default(),
        last_event_mono: 0,
        // `start` hands over the ones it made before the attach.
        signals: None,
    };
    for (i, &pid) in targets.iter().enumerate() {
        let origin = if i < roots.len() {
            origin
        } else {
            ProcessOrigin::Descendant
        };
        session.add_process(pid, origin);
    }
    if let Some(child) = held {
        let pid = child.pid;
        child.release().map_err(|source| SetupError::Spawn {
            what: "releasing the held command",
            source,
        })?;
        if let Some(started) = hooks.started.take() {
            let _ = started.send(pid);
        }
    } else {
        for &pid in &roots {
            if procfs::memory(pid).is_none_or(|(rss, vm)| rss == 0 && vm == 0) {
                return Err(SetupError::ExitedWhileAttaching { pid }.into());
            }
        }
    }
    session.rows.extend(baseline);
    session.flush();
    say!(
        "memwatch: recording {} process(es) to {}; Ctrl-C stops",
        targets.len(),
        session.output.display()
    );
    Ok(session)
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("output", &self.output)
            .field("ebpf", &self.probe.is_some())
            .field("alive", &self.alive)
            .field("spawned", &self.spawned)
            .field("events", &self.events)
            .field("counters", &self.counters)
            .field("pending_rows", &self.rows.len())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// The recording being written.
    pub fn output(&self) -> &Path {
        &self.output
    }

    /// What memwatch's own state came to: its peak resident set, the correlator's peak sizes,
    /// and what the kernel maps hold now that the targets' traffic is over.
    fn state_meta(&mut self) -> Vec<Row> {
        self.sweep_conns();
        let StateSizes {
            conns,
            threads,
            requests,
            retaining,
        } = self.peaks.max(self.correlator.state_sizes());
        let mut pairs = vec![
            (meta::PEAK_CONNS, conns),
            (meta::PEAK_THREADS, threads),
            (meta::PEAK_REQUESTS, requests),
            (meta::PEAK_RETAINING, retaining),
            (meta::CONNS_SWEPT, self.conns_swept),
            (meta::PIDS_REUSED, self.pids_reused),
            (meta::MADVISE_RELEASED_BYTES, self.madvise_released_bytes),
        ];
        if let Some(hwm) = procfs::own_peak_rss() {
            pairs.push((meta::PEAK_RSS_BYTES, hwm));
        }
        let mut rows: Vec<Row> = pairs
            .into_iter()
            .map(|(key, value)| Row::Meta(key.into(), value.to_string()))
            .collect();
        if let Some(probe) = self.probe.as_ref() {
            let entries = probe.map_entries();
            tracing::info!(?entries, "kernel maps at stop");
            let list = entries
                .pairs()
                .iter()
                .map(|(name, n)| format!("{name}={n}"))
                .collect::<Vec<_>>()
                .join(" ");
            rows.push(Row::Meta(meta::KERNEL_MAP_ENTRIES.into(), list));
        }
        rows
    }

    /// Records until a stop condition, then writes the last rows and closes the recording.
    pub async fn run(mut self) -> anyhow::Result<Stop> {
        let mut signals = match self.signals.take() {
            Some(signals) => signals,
            None => StopSignals::new()?,
        };
        let stop = event_loop(&mut self, &mut signals).await?;
        tracing::info!(?stop, "stopping");
        // Stopped by Ctrl-C: from here on a second one ends memwatch at once. (Stopped otherwise,
        // a page left up makes its own.)
        if stop == Stop::Signal {
            signals.escalate();
        }

        // Stop the command we started if it outlived the recording.
        if let Some(pid) = self.spawned
            && self.alive.contains(&pid)
            && stop != Stop::TargetsExited
        {
            // The figures are taken as of now: everything the command's exit frees after this
            // would otherwise read as every route giving its memory back.
            self.rows.push(Row::Meta(
                meta::COMMAND_STOPPED_NS.into(),
                wall_ns().to_string(),
            ));
            // SAFETY: plain syscall on a PID we forked and have not reaped.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
        self.drain();
        // A last sample, so the recording ends with the targets' final memory whatever stopped
        // it (the reconciliation compares the samples with the events up to here).
        if stop != Stop::TargetsExited {
            let faults = self.thread_faults();
            self.sample(&faults);
        }
        // Growth the kernel side has not sent yet (a thread idle since its last faults).
        let pending = self
            .probe
            .as_ref()
            .map_or_else(Vec::new, Probe::pending_runs);
        let now = wall_ns();
        for run in pending {
            let first_ns = self.wall(run.first_ns);
            self.correlator.grow(
                now,
                run.tgid,
                run.tid,
                run.start,
                run.end - run.start,
                first_ns,
                &mut self.rows,
            );
        }
        self.read_logs(true);
        let faults = self.thread_faults();
        self.write_counters(&faults);
        self.correlator.finish_all(&mut self.rows);
        let ended_ns = wall_ns();
        self.rows
            .push(Row::Meta(meta::ENDED_NS.into(), ended_ns.to_string()));
        self.rows.push(Row::Meta(
            meta::ORIGIN_SPANS.into(),
            self.correlator.origin_spans().to_string(),
        ));
        self.rows.push(Row::Meta(
            meta::VM_UNMATCHED_RELEASE_BYTES.into(),
            self.correlator.vm_unmatched_release_bytes().to_string(),
        ));
        let state = self.state_meta();
        self.rows.extend(state);
        if let Some(heap) = &self.heap {
            self.rows.extend(heap.meta(self.probe.as_ref()));
        }
        if let Some(stacks) = self.stacks.take() {
            let (rows, counts) = stacks.finish();
            self.rows.extend(rows);
            let kernel_lost = self.counters.stacks_lost;
            tracing::info!(?counts, kernel_lost, "stacks");
            for (key, value) in [
                (meta::STACK_SAMPLES, counts.samples),
                (meta::STACKS_LOST, counts.lost + kernel_lost),
                (meta::STACKS_SKIPPED, counts.skipped),
                (meta::STACK_FALLBACKS, counts.fallbacks),
                (meta::STACKS_CUT_AT_NO_CODE, counts.cut_at_no_code),
                (meta::FRAMES_UNSYMBOLIZED, counts.unsymbolized),
                (meta::STACK_RESOLVE_US, counts.resolve.as_micros() as u64),
                (meta::SYMBOLIZE_US, counts.symbolize.as_micros() as u64),
            ] {
                self.rows.push(Row::Meta(key.into(), value.to_string()));
            }
        }
        self.rows.push(Row::Meta(
            meta::STOP_REASON.into(),
            format!("{stop:?}").to_lowercase(),
        ));
        self.flush();
        if let Some(pid) = self.spawned {
            // Give a command we just signalled a moment to go, then record its exit code.
            for _ in 0..50 {
                if let Some(code) = spawn::try_reap(pid) {
                    self.writer.send(vec![Row::ProcessExit {
                        pid,
                        ts_ns: wall_ns(),
                        exit_code: Some(code),
                    }]);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let Self { writer, probe, .. } = self;
        // Detaching waits for the kernel's grace periods, one per probe and one after another
        // for uprobes: a child takes that wait over, so memwatch stops at once (`linger.rs`).
        let release = probe.as_ref().and_then(|_| linger::hand_off());
        // Without it, the recording is closed meanwhile, not after.
        let detach = move || {
            let started = Instant::now();
            if let Some(probe) = probe {
                probe.detach();
            }
            drop(release);
            tracing::debug!(took = ?started.elapsed(), "probes detached");
        };
        // Without a thread, the closure is dropped here and the probes with it.
        let detaching = std::thread::Builder::new()
            .name("memwatch-detach".into())
            .spawn(detach);
        let started = Instant::now();
        let finished = writer.finish();
        tracing::debug!(took = ?started.elapsed(), "recording closed");
        match detaching {
            Ok(thread) => {
                if thread.join().is_err() {
                    tracing::warn!("detaching the probes panicked");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not start a thread to detach the probes"),
        }
        finished?;
        Ok(stop)
    }
}

/// The command line with the values of the token options replaced: a token guards the page and
/// `/metrics`, and never goes into the recording.
fn redact_tokens(args: impl IntoIterator<Item = String>) -> Vec<String> {
    const SECRET: [&str; 2] = ["--token", "--metrics-token"];
    let mut out = Vec::new();
    let mut hide_next = false;
    for arg in args {
        if std::mem::take(&mut hide_next) {
            out.push("***".to_owned());
        } else if SECRET.contains(&arg.as_str()) {
            hide_next = true;
            out.push(arg);
        } else if let Some((flag, _)) = arg.split_once('=')
            && SECRET.contains(&flag)
        {
            out.push(format!("{flag}=***"));
        } else {
            out.push(arg);
        }
    }
    out
}

async fn event_loop(session: &mut Session, signals: &mut StopSignals) -> anyhow::Result<Stop> {
    let stop = session.stop.clone();
    let sample_interval = session.options.sample_interval;
    let duration = session.options.duration;
    let follow_forks = session.options.follow_forks;
    let mut drain_tick = tokio::time::interval(DRAIN_EVERY);
    // The heap budget looks at its probes this often while they are attached.
    let mut heap_tick = tokio::time::interval(Duration::from_nanos(heap::LOOK_ON_NS));
    heap_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sample_tick = tokio::time::interval(sample_interval);
    sample_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let start = Instant::now();
    let deadline = duration.map(|d| start + d);
    let bar = status_bar();
    let mut last_counters = Instant::now();
    let mut last_events = (Instant::now(), 0u64);
    let mut rate = 0.0;
    loop {
        // Checked at every wake-up, so at least every DRAIN_EVERY: a recording that cannot be
        // written stops at once.
        if session.writer.failed() {
            if let Some(bar) = &bar {
                bar.finish_and_clear();
            }
            return Ok(Stop::WriteFailed);
        }
        tokio::select! {
            () = signals.recv() => return Ok(Stop::Signal),
            () = async {
                match &stop {
                    Some(stop) => stop.notified().await,
                    None => std::future::pending().await,
                }
            } => {
                // Asked to stop while the targets still run: one last sample, so the
                // recording ends with their final memory.
                session.drain();
                let faults = session.thread_faults();
                session.sample(&faults);
                return Ok(Stop::Asked);
            }
            () = async {
                match &session.probe {
                    Some(probe) => probe.readable().await,
                    None => std::future::pending().await,
                }
            } => {
                session.drain();
                session.heap_look();
            }
            _ = drain_tick.tick() => {
                session.drain();
                session.heap_look();
            }
            // Only while the probes are attached: a wake-up every 10 ms is not free for the
            // targets sharing memwatch's CPUs, and off, the drain tick's 50 ms is enough.
            _ = heap_tick.tick(), if session.heap.as_ref().is_some_and(heap::HeapFollow::attached) => {
                session.heap_look();
            }
            _ = sample_tick.tick() => {
                session.drain();
                session.follow_deferred_heaps();
                session.read_logs(false);
                let faults = session.thread_faults();
                let rss = session.sample(&faults);
                if last_counters.elapsed() >= COUNTERS_EVERY {
                    last_counters = Instant::now();
                    if session.probe.is_none() && follow_forks {
                        session.adopt_descendants();
                    }
                    session.write_counters(&faults);
                    let dt = last_events.0.elapsed().as_secs_f64();
                    rate = (session.events - last_events.1) as f64 / dt.max(1e-3);
                    last_events = (Instant::now(), session.events);
                }
                session.flush();
                if let Some(bar) = &bar {
                    bar.set_message(format!(
                        "{:.0} events/s  RSS {}  requests {}  drops {}",
                        rate,
                        units::bytes(rss as i64),
                        session.requests(),
                        session.counters.dropped_events
                    ));
                    bar.tick();
                }
                if session.alive.is_empty() {
                    if let Some(bar) = &bar { bar.finish_and_clear(); }
                    return Ok(Stop::TargetsExited);
                }
            }
            () = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            } => {
                if let Some(bar) = &bar { bar.finish_and_clear(); }
                return Ok(Stop::Duration);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_never_reach_the_recorded_command_line() {
        let argv = [
            "memwatch",
            "serve",
            "--token",
            "s3cret",
            "--metrics-token=m3tric",
            "-p",
            "42",
            "--tokenizer",
        ]
        .map(String::from);
        assert_eq!(
            redact_tokens(argv).join(" "),
            "memwatch serve --token *** --metrics-token=*** -p 42 --tokenizer"
        );
    }
}
