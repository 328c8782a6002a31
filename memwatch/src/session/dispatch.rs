//! Each decoded kernel event handed on: memory syscalls, forks, execs and exits, growth, heap
//! blocks, sockets, stacks and collections, to the correlator, the heap budget and the rows.

use memwatch_common::{
    mem::MemOp,
    stack::{AT_HEAP, AT_SYSCALL},
};

use super::Session;
use crate::{
    capture::{
        probe::{Event, event::comm_str},
        procfs,
        stacks::Taken,
    },
    correlate::mem::ResidentEffect,
    model::{ProcessOrigin, ProcessRow, Row},
};

impl Session {
    pub(super) fn on_event(&mut self, ev: Event<'_>) {
        self.events += 1;
        self.last_event_mono = ev.header().ts_ns;
        match ev {
            Event::Mem(m) => {
                let ts_ns = self.wall(m.header.ts_ns);
                // When the syscall began: its release took effect between then and `ts_ns`
                // (both on the kernel's one monotonic clock; `min` only guards the order).
                let began_ns = self.wall(m.args.began_ns).min(ts_ns);
                let pid = m.header.tgid;
                if let Some((mut row, effect, vm)) = self.mem.account(ts_ns, &m) {
                    row.stack = self.syscall_stacks.remove(&m.header.tid);
                    // Resident memory first: whether a released range was all mapped while
                    // recording is read from the address-space map, before an unmapping
                    // removes it there.
                    match effect {
                        ResidentEffect::None => {}
                        ResidentEffect::Release { start, len } => {
                            let released = self.correlator.release(
                                ts_ns,
                                began_ns,
                                pid,
                                start,
                                len,
                                &mut self.rows,
                            );
                            if row.op == MemOp::Madvise {
                                self.madvise_released_bytes =
                                    self.madvise_released_bytes.saturating_add(released);
                            }
                        }
                        ResidentEffect::Remap { old, new } => {
                            self.correlator
                                .remap(ts_ns, began_ns, pid, old, new, &mut self.rows);
                        }
                    }
                    self.correlator
                        .vm(ts_ns, began_ns, pid, m.header.tid, vm, &mut self.rows);
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
                    self.apply_folded_responses(Some(pid));
                    self.correlator.process_gone(ts_ns, pid, &mut self.rows);
                    self.gone.insert(pid);
                    self.correlator
                        .address_space_gone(ts_ns, pid, &mut self.rows);
                    self.forget_heap(pid);
                    self.heap_deferred.remove(&pid);
                    // Only live processes are sampled: the gone one's per-process state goes,
                    // so memwatch's memory does not grow with every process that ever exited.
                    self.exited_faults.remove(&pid);
                    self.mem.exit(pid);
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
                let heap = self.heap.as_mut().filter(|h| h.attached());
                self.gc
                    .event(ts_ns, &e, heap, &self.correlator, &mut self.rows);
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
}
