//! The session's handling of forks, execs and exits, and its dispatch of memory and socket
//! events to the correlator, run against events made here instead of a ring buffer: no probe, no
//! root. The session reads /proc for some PIDs; the fake ones here are above the kernel's
//! `PID_MAX_LIMIT` (2^22), so /proc never holds them and finds nothing for them, and where a
//! test needs what /proc says, it uses its own process.

use std::{
    collections::{HashMap, HashSet},
    path::Path,
    time::Duration,
};

use memwatch_common::{
    EventHeader, EventKind,
    mem::{MemArgs, MemEvent, MemOp},
    net::{NetMeta, NetOp},
    proc::{GrowthEvent, ProcEvent},
};

use super::{RecordOptions, Session, gc};
use crate::{
    capture::probe::{
        Event,
        event::{NetRecord, Records},
        loader::KernelCounters,
    },
    correlate::{Correlator, StateSizes, join::Joiner, mem::MemAccounting, route::Router},
    model::{ProcessOrigin, Row, meta},
    recording::Writer,
};

const PAGE: u64 = 4096;
/// Wall ns = monotonic ns + this.
const OFFSET: i64 = 1_000_000_000;
/// A traced process, and one it forks: PIDs no process can have.
const SERVER: u32 = 5_000_000;
const CHILD: u32 = 5_000_001;
/// A second thread of the server.
const WORKER: u32 = 5_000_002;

impl Session {
    /// A session as `start` makes it with eBPF on (no interval attributor), but with no probe:
    /// events are handed to [`Session::on_event`] by the test. Writes to a new recording in
    /// `dir`; traces nothing until the test adds a process.
    fn for_test(dir: &Path) -> Self {
        let output = dir.join("test.db");
        let router = Router::new(Vec::<String>::new()).unwrap();
        Self {
            probe: None,
            writer: Writer::create(&output, &[]).unwrap(),
            correlator: Correlator::new(router.clone(), false, PAGE),
            offset: OFFSET,
            alive: HashSet::new(),
            spawned: None,
            mem: MemAccounting::new(PAGE),
            exited_faults: HashMap::new(),
            events: 0,
            pending: Records::default(),
            undecodable: 0,
            rows: Vec::new(),
            counters: KernelCounters::default(),
            logs: Vec::new(),
            joiner: Joiner::default(),
            interval: None,
            router,
            redact_query: false,
            output,
            stop: None,
            options: options(),
            heap: None,
            heap_deferred: HashMap::new(),
            stacks: None,
            syscall_stacks: HashMap::new(),
            gone: HashSet::new(),
            conns_swept: 0,
            peaks: StateSizes::default(),
            signals: None,
            seen: HashSet::new(),
            pids_reused: 0,
            madvise_released_bytes: 0,
            gc: gc::GcFollow::default(),
            last_event_mono: 0,
            own: super::own_cost::OwnCost::default(),
        }
    }

    /// The rows made so far, taken.
    fn take_rows(&mut self) -> Vec<Row> {
        std::mem::take(&mut self.rows)
    }
}

fn options() -> RecordOptions {
    RecordOptions {
        pids: vec![SERVER],
        command: Vec::new(),
        output: None,
        force: false,
        duration: None,
        follow_forks: true,
        sample_interval: Duration::from_millis(100),
        net: true,
        capture_bytes: 256,
        ring_mib: 8,
        routes: Vec::new(),
        redact_query: false,
        access_logs: Vec::new(),
        log_format: None,
        log_from_start: false,
        ebpf: true,
        heap: false,
        heap_budget: 0.02,
        stack_every: None,
        stack_rate: 0,
        bpf_stats: false,
    }
}

fn header(kind: EventKind, pid: u32, tid: u32, ts_ns: u64) -> EventHeader {
    EventHeader {
        kind: kind as u32,
        tgid: pid,
        tid,
        _pad: 0,
        ts_ns,
    }
}

fn comm(name: &str) -> [u8; 16] {
    let mut comm = [0; 16];
    comm[..name.len()].copy_from_slice(name.as_bytes());
    comm
}

fn fork(parent: u32, child: u32, ts_ns: u64, name: &str) -> Event<'static> {
    Event::Fork(ProcEvent {
        header: header(EventKind::Fork, parent, parent, ts_ns),
        child,
        comm: comm(name),
        ..ProcEvent::default()
    })
}

fn exec(pid: u32, ts_ns: u64, name: &str) -> Event<'static> {
    Event::Exec(ProcEvent {
        header: header(EventKind::Exec, pid, pid, ts_ns),
        comm: comm(name),
        ..ProcEvent::default()
    })
}

/// Thread `tid` of `pid` exits having taken `faults`; `last`: the last of its process.
fn exit(pid: u32, tid: u32, ts_ns: u64, faults: u64, last: bool) -> Event<'static> {
    Event::Exit(ProcEvent {
        header: header(EventKind::Exit, pid, tid, ts_ns),
        group_dead: u32::from(last),
        faults,
        ..ProcEvent::default()
    })
}

/// A memory syscall that returned at `ts_ns`, begun when `args` says (at its return when it
/// says nothing).
fn mem(pid: u32, tid: u32, ts_ns: u64, args: MemArgs, ret: i64) -> Event<'static> {
    let began_ns = if args.began_ns == 0 {
        ts_ns
    } else {
        args.began_ns
    };
    Event::Mem(MemEvent {
        header: header(EventKind::Mem, pid, tid, ts_ns),
        args: MemArgs { began_ns, ..args },
        ret,
    })
}

/// An anonymous private mmap of `len` bytes that returned `at`.
fn mmap(pid: u32, tid: u32, ts_ns: u64, len: u64, at: u64) -> Event<'static> {
    let args = MemArgs {
        op: MemOp::Mmap as u32,
        prot: 3,
        flags: 0x22,
        len,
        fd: -1,
        ..MemArgs::default()
    };
    mem(pid, tid, ts_ns, args, at as i64)
}

/// A brk that moved the break to `to`.
fn brk(pid: u32, ts_ns: u64, to: u64) -> Event<'static> {
    let args = MemArgs {
        op: MemOp::Brk as u32,
        addr: to,
        ..MemArgs::default()
    };
    mem(pid, pid, ts_ns, args, to as i64)
}

/// Pages `[start, start + len)` thread `tid` faulted in, the run sent at `ts_ns`.
fn growth(pid: u32, tid: u32, ts_ns: u64, start: u64, len: u64) -> Event<'static> {
    Event::Growth(GrowthEvent {
        header: header(EventKind::Growth, pid, tid, ts_ns),
        start,
        len,
        first_ns: ts_ns,
    })
}

/// A socket boundary on fd 7 of `pid`, on thread `tid`; `last_write_ns` (0: none) is when the
/// previous response's last write was, carried by a read or a close.
fn net(pid: u32, tid: u32, op: NetOp, ts_ns: u64, data: &[u8], last_write_ns: u64) -> Event<'_> {
    Event::Net(NetRecord {
        meta: NetMeta {
            header: header(EventKind::Net, pid, tid, ts_ns),
            op: op as u32,
            fd: 7,
            generation: 1,
            bytes: data.len() as u64,
            last_write_ns,
            last_bytes_out: if last_write_ns == 0 { 0 } else { 120 },
            last_write_tid: if last_write_ns == 0 { 0 } else { tid },
            captured: data.len() as u32,
            ..NetMeta::default()
        },
        op,
        data,
    })
}

/// What a test checks of a row, exactly, comparable.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Process {
        pid: u32,
        ppid: Option<u32>,
        comm: String,
        cmdline: Option<String>,
        started_ns: Option<i64>,
        origin: ProcessOrigin,
    },
    ProcessExit {
        pid: u32,
        ts_ns: i64,
        exit_code: Option<i32>,
    },
    Thread {
        tid: u32,
        pid: u32,
        faults: u64,
        exited_ns: Option<i64>,
    },
    Mem {
        ts_ns: i64,
        tid: u32,
        vm_delta: i64,
        request_id: Option<i64>,
    },
    Request {
        id: i64,
        tid: u32,
        target: Option<String>,
        route: Option<String>,
        status: Option<u16>,
        /// Start, first byte, end.
        times: (i64, Option<i64>, i64),
        vm_bytes: i64,
        mem_calls: u64,
        grown: u64,
    },
    Release {
        ts_ns: i64,
        request_id: i64,
        request_end_ns: i64,
        bytes: u64,
    },
    VmOrigin {
        ts_ns: i64,
        req_end_ns: i64,
        grown: u64,
        released: u64,
    },
    OutsideGrowth {
        ts_ns: i64,
        bytes: u64,
    },
    Other(String),
}

fn seen(rows: &[Row]) -> Vec<Seen> {
    rows.iter()
        .map(|r| match r {
            Row::Process(p) => Seen::Process {
                pid: p.pid,
                ppid: p.ppid,
                comm: p.comm.clone(),
                cmdline: p.cmdline.clone(),
                started_ns: p.started_ns,
                origin: p.origin,
            },
            &Row::ProcessExit {
                pid,
                ts_ns,
                exit_code,
            } => Seen::ProcessExit {
                pid,
                ts_ns,
                exit_code,
            },
            &Row::Thread {
                tid,
                pid,
                faults,
                exited_ns,
            } => Seen::Thread {
                tid,
                pid,
                faults,
                exited_ns,
            },
            Row::Mem(m) => Seen::Mem {
                ts_ns: m.ts_ns,
                tid: m.tid,
                vm_delta: m.vm_delta,
                request_id: m.request_id,
            },
            Row::Request(r) => Seen::Request {
                id: r.id,
                tid: r.tid,
                target: r.target.as_deref().map(str::to_owned),
                route: r.route.as_deref().map(str::to_owned),
                status: r.status,
                times: (r.start_ns, r.first_byte_ns, r.end_ns),
                vm_bytes: r.vm_bytes,
                mem_calls: r.mem_calls,
                grown: r.grown,
            },
            Row::Release(r) => Seen::Release {
                ts_ns: r.ts_ns,
                request_id: r.request_id,
                request_end_ns: r.request_end_ns,
                bytes: r.bytes,
            },
            Row::VmOrigin(v) => Seen::VmOrigin {
                ts_ns: v.ts_ns,
                req_end_ns: v.req_end_ns,
                grown: v.grown,
                released: v.released,
            },
            &Row::OutsideGrowth { ts_ns, bytes, .. } => Seen::OutsideGrowth { ts_ns, bytes },
            other => Seen::Other(format!("{other:?}")),
        })
        .collect()
}

/// Monotonic ns from the kernel on the session's wall clock.
fn wall(mono: u64) -> i64 {
    OFFSET + mono as i64
}

fn session() -> (tempfile::TempDir, Session) {
    let dir = tempfile::tempdir().unwrap();
    let session = Session::for_test(dir.path());
    (dir, session)
}

/// A session tracing SERVER, attached with `-p`.
fn serving() -> (tempfile::TempDir, Session) {
    let (dir, mut s) = session();
    s.add_process(SERVER, ProcessOrigin::Attached);
    // /proc knows nothing of the PID: the row has only what the session knows itself.
    assert_eq!(
        seen(&s.take_rows()),
        [Seen::Process {
            pid: SERVER,
            ppid: None,
            comm: String::new(),
            cmdline: None,
            started_ns: None,
            origin: ProcessOrigin::Attached,
        }]
    );
    (dir, s)
}

const GET: &[u8] = b"GET /items/42 HTTP/1.1\r\nHost: h\r\n\r\n";

/// A request read on one thread: the memory that thread maps and faults in until the request's
/// last write is the request's, and what another thread maps meanwhile is not.
#[test]
fn memory_and_socket_events_reach_the_correlator() {
    let (_dir, mut s) = serving();
    s.on_event(net(SERVER, WORKER, NetOp::Accept, 10, b"", 0));
    s.on_event(net(SERVER, WORKER, NetOp::ReadStart, 100, GET, 0));
    s.on_event(mmap(SERVER, WORKER, 150, 8192, 0x7000_0000));
    s.on_event(growth(SERVER, WORKER, 160, 0x7000_0000, 4096));
    s.on_event(mmap(SERVER, SERVER, 170, 4096, 0x7100_0000));
    s.on_event(net(
        SERVER,
        WORKER,
        NetOp::WriteStart,
        200,
        b"HTTP/1.1 200 OK\r\n",
        0,
    ));
    // The response's last write was at 250, which the close carries.
    s.on_event(net(SERVER, WORKER, NetOp::Close, 400, b"", 250));
    // The thread serves nothing now.
    s.on_event(mmap(SERVER, WORKER, 450, 4096, 0x7200_0000));
    assert_eq!(
        seen(&s.take_rows()),
        [
            // Another thread's call, written at once.
            Seen::Mem {
                ts_ns: wall(170),
                tid: SERVER,
                vm_delta: 4096,
                request_id: None,
            },
            // The request's calls wait for its end.
            Seen::Mem {
                ts_ns: wall(150),
                tid: WORKER,
                vm_delta: 8192,
                request_id: Some(1),
            },
            Seen::VmOrigin {
                ts_ns: wall(250),
                req_end_ns: wall(250),
                grown: 8192,
                released: 0,
            },
            Seen::Request {
                id: 1,
                tid: WORKER,
                target: Some("/items/42".into()),
                route: Some("/items/{id}".into()),
                status: Some(200),
                times: (wall(100), Some(wall(200)), wall(250)),
                vm_bytes: 8192,
                mem_calls: 1,
                grown: 4096,
            },
            Seen::Mem {
                ts_ns: wall(450),
                tid: WORKER,
                vm_delta: 4096,
                request_id: None,
            },
        ]
    );
    assert_eq!((s.events, s.last_event_mono), (8, 450));
    assert_eq!(s.correlator.requests(), 1);
    assert_eq!(s.correlator.state_sizes().conns, 0);
}

/// Two threads churning blocks of one size: the request's thread maps the block another thread
/// is unmapping, and faults it in before that munmap has returned. Its pages are the request's:
/// the release counts from when its syscall began, not from its return.
#[test]
fn pages_faulted_in_where_an_unmap_under_way_left_off_are_the_request_s() {
    const BLOCK: u64 = 0x7000_0000;
    let (_dir, mut s) = serving();
    s.on_event(mmap(SERVER, SERVER, 50, 8192, BLOCK));
    s.on_event(growth(SERVER, SERVER, 60, BLOCK, 8192));
    s.on_event(net(SERVER, WORKER, NetOp::Accept, 70, b"", 0));
    s.on_event(net(SERVER, WORKER, NetOp::ReadStart, 100, GET, 0));
    // The request's mmap returns the block at 160, while the munmap that freed it (begun at
    // 150) has yet to return, at 300; the request's first fault there is at 200.
    s.on_event(mmap(SERVER, WORKER, 160, 8192, BLOCK));
    let unmap = MemArgs {
        op: MemOp::Munmap as u32,
        addr: BLOCK,
        len: 8192,
        began_ns: 150,
        ..MemArgs::default()
    };
    s.on_event(mem(SERVER, SERVER, 300, unmap, 0));
    s.on_event(Event::Growth(GrowthEvent {
        header: header(EventKind::Growth, SERVER, WORKER, 350),
        start: BLOCK,
        len: 8192,
        first_ns: 200,
    }));
    s.on_event(net(
        SERVER,
        WORKER,
        NetOp::WriteStart,
        400,
        b"HTTP/1.1 200 OK\r\n",
        0,
    ));
    s.on_event(net(SERVER, WORKER, NetOp::Close, 500, b"", 450));
    let grown: Vec<u64> = seen(&s.take_rows())
        .into_iter()
        .filter_map(|row| match row {
            Seen::Request { grown, .. } => Some(grown),
            _ => None,
        })
        .collect();
    assert_eq!(grown, [8192]);
    let counts = s.correlator.origin_counts();
    assert_eq!(
        (counts.unmatched_release_bytes, counts.unseen_release_bytes),
        (0, 0)
    );
}

/// A fork of a traced process: the child is traced from then on, a forked process with the
/// parent's break, named by the kernel's comm.
#[test]
fn a_fork_makes_the_child_a_target() {
    let (_dir, mut s) = serving();
    s.mem.known_break(SERVER, 0x60_0000);
    s.on_event(fork(SERVER, CHILD, 1_000, "worker"));
    assert_eq!(
        seen(&s.take_rows()),
        [Seen::Process {
            pid: CHILD,
            ppid: Some(SERVER),
            comm: "worker".into(),
            cmdline: None,
            started_ns: Some(wall(1_000)),
            origin: ProcessOrigin::Forked,
        }]
    );
    assert_eq!(s.alive, HashSet::from([SERVER, CHILD]));
    assert_eq!(s.seen, HashSet::from([SERVER, CHILD]));
    assert_eq!(s.pids_reused, 0);
    // Its first brk grows from the break it inherited.
    s.on_event(brk(CHILD, 1_100, 0x60_2000));
    assert_eq!(
        seen(&s.take_rows()),
        [Seen::Mem {
            ts_ns: wall(1_100),
            tid: CHILD,
            vm_delta: 8192,
            request_id: None,
        }]
    );
}

/// A PID traced before and given to a new process is counted: both share one process row.
#[test]
fn a_pid_given_again_is_counted() {
    let (_dir, mut s) = serving();
    s.on_event(fork(SERVER, CHILD, 1_000, "sh"));
    s.on_event(exit(CHILD, CHILD, 2_000, 0, true));
    assert_eq!(s.alive, HashSet::from([SERVER]));
    s.on_event(fork(SERVER, CHILD, 3_000, "sh"));
    assert_eq!(s.alive, HashSet::from([SERVER, CHILD]));
    assert_eq!(s.pids_reused, 1);
}

/// An exec: the old image's memory is released, the break forgotten, and the process row
/// written again with its new name and what /proc says of it (this test's own process).
#[test]
fn an_exec_releases_the_old_image() {
    let (_dir, mut s) = session();
    let me = std::process::id();
    s.add_process(me, ProcessOrigin::Attached);
    s.take_rows();
    s.on_event(growth(me, me, 100, 0x1000_0000, 8192));
    s.on_event(exec(me, 200, "nginx"));
    let cmdline = std::env::args().collect::<Vec<_>>().join(" ");
    assert_eq!(
        seen(&s.take_rows()),
        [
            Seen::OutsideGrowth {
                ts_ns: wall(100),
                bytes: 8192,
            },
            Seen::Release {
                ts_ns: wall(200),
                request_id: 0,
                request_end_ns: 0,
                bytes: 8192,
            },
            Seen::Process {
                pid: me,
                ppid: Some(std::os::unix::process::parent_id()),
                comm: "nginx".into(),
                cmdline: Some(crate::units::cut(&cmdline, 512).to_owned()),
                started_ns: None,
                origin: ProcessOrigin::Forked,
            },
        ]
    );
    assert_eq!(s.alive, HashSet::from([me]));
    // The new image's first brk has no break to grow from.
    s.on_event(brk(me, 300, 0x80_0000));
    assert_eq!(
        seen(&s.take_rows()),
        [Seen::Mem {
            ts_ns: wall(300),
            tid: me,
            vm_delta: 0,
            request_id: None,
        }]
    );
}

/// A thread that exits: its faults are kept for the process's samples and its state goes; the
/// process and its requests stay.
#[test]
fn a_thread_exit_forgets_the_thread_only() {
    let (_dir, mut s) = serving();
    s.on_event(net(SERVER, WORKER, NetOp::ReadStart, 100, GET, 0));
    s.syscall_stacks.insert(WORKER, 9);
    assert_eq!(s.correlator.state_sizes().threads, 1);
    s.on_event(exit(SERVER, WORKER, 500, 3, false));
    assert_eq!(
        seen(&s.take_rows()),
        [Seen::Thread {
            tid: WORKER,
            pid: SERVER,
            faults: 3,
            exited_ns: Some(wall(500)),
        }]
    );
    assert_eq!(s.alive, HashSet::from([SERVER]));
    assert_eq!(s.exited_faults, HashMap::from([(SERVER, 3)]));
    assert!(s.syscall_stacks.is_empty());
    assert!(s.gone.is_empty());
    assert_eq!(
        s.correlator.state_sizes(),
        StateSizes {
            conns: 1,
            threads: 0,
            requests: 1,
            retaining: 0,
        }
    );
}

/// The last thread of a process exits with a request in flight: the request ends at the exit,
/// the memory it made resident is credited back to it, the process leaves the targets, its
/// kernel-side connections are listed to be swept, and nothing of it is left.
#[test]
fn a_process_exit_ends_its_requests_and_forgets_it() {
    let (_dir, mut s) = serving();
    s.on_event(net(SERVER, WORKER, NetOp::Accept, 10, b"", 0));
    s.on_event(net(SERVER, WORKER, NetOp::ReadStart, 100, GET, 0));
    s.on_event(growth(SERVER, WORKER, 150, 0x7000_0000, 4096));
    s.mem.known_break(SERVER, 0x5000_0000);
    s.on_event(exit(SERVER, WORKER, 550, 3, false));
    assert_eq!(s.exited_faults, HashMap::from([(SERVER, 3)]));
    s.on_event(exit(SERVER, SERVER, 600, 4, true));
    assert_eq!(
        seen(&s.take_rows()),
        [
            Seen::Thread {
                tid: WORKER,
                pid: SERVER,
                faults: 3,
                exited_ns: Some(wall(550)),
            },
            Seen::Thread {
                tid: SERVER,
                pid: SERVER,
                faults: 4,
                exited_ns: Some(wall(600)),
            },
            Seen::Request {
                id: 1,
                tid: WORKER,
                target: Some("/items/42".into()),
                route: Some("/items/{id}".into()),
                status: None,
                times: (wall(100), None, wall(600)),
                vm_bytes: 0,
                mem_calls: 0,
                grown: 4096,
            },
            Seen::Release {
                ts_ns: wall(600),
                request_id: 1,
                request_end_ns: wall(600),
                bytes: 4096,
            },
            Seen::ProcessExit {
                pid: SERVER,
                ts_ns: wall(600),
                exit_code: None,
            },
        ]
    );
    assert!(s.alive.is_empty());
    assert_eq!(s.gone, HashSet::from([SERVER]));
    // Nothing of the process stays: its exited threads' faults and its program break go.
    assert!(s.exited_faults.is_empty());
    assert_eq!(s.mem.known_breaks(), 0);
    assert_eq!(s.correlator.state_sizes(), StateSizes::default());
    // The next drain sweeps them (without a probe there is nothing to sweep).
    s.sweep_conns();
    assert!(s.gone.is_empty());
    assert_eq!(s.conns_swept, 0);
}

/// A sample of a live target counts its exited threads' faults with its live ones; a target
/// gone from /proc without an exit event reaching memwatch is ended there.
#[test]
fn a_sample_ends_a_target_gone_from_proc() {
    let (_dir, mut s) = serving();
    let me = std::process::id();
    s.alive.insert(me);
    s.exited_faults.insert(me, 7);
    let total = s.sample(&[(me, me, 5)]);
    let rows = s.take_rows();
    let sample = rows.iter().find_map(|r| match r {
        &Row::Sample {
            ts_ns,
            pid,
            rss_bytes,
            faults,
            ..
        } => Some((ts_ns, pid, rss_bytes, faults)),
        _ => None,
    });
    let Some((ts_ns, pid, rss_bytes, faults)) = sample else {
        panic!("no sample in {rows:#?}");
    };
    assert_eq!((pid, faults, rss_bytes), (me, 12, total));
    assert!(total > 0);
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert!(seen(&rows).contains(&Seen::ProcessExit {
        pid: SERVER,
        ts_ns,
        exit_code: None,
    }));
    assert_eq!(s.alive, HashSet::from([me]));
}

/// The rows that close the recording carry the session's own counts, and end with why it
/// stopped.
#[test]
fn the_closing_rows_count_reused_pids_and_say_why_it_stopped() {
    let (_dir, mut s) = serving();
    s.on_event(fork(SERVER, CHILD, 1_000, "sh"));
    s.on_event(exit(CHILD, CHILD, 2_000, 0, true));
    s.on_event(fork(SERVER, CHILD, 3_000, "sh"));
    s.take_rows();
    s.close_rows(super::Stop::TargetsExited);
    let meta: HashMap<String, String> = s
        .take_rows()
        .into_iter()
        .filter_map(|r| match r {
            Row::Meta(key, value) => Some((key, value)),
            _ => None,
        })
        .collect();
    let value = |key: &str| meta.get(key).map(String::as_str);
    assert_eq!(value(meta::PIDS_REUSED), Some("1"));
    assert_eq!(value(meta::CONNS_SWEPT), Some("0"));
    assert_eq!(value(meta::PEAK_CONNS), Some("0"));
    assert_eq!(value(meta::STOP_REASON), Some("targetsexited"));
    // No probe: nothing of the kernel's maps to report.
    assert_eq!(value(meta::KERNEL_MAP_ENTRIES), None);
}
