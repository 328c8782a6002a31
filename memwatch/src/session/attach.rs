//! Starting a recording: everything the user can get wrong checked before anything is loaded,
//! then the probes loaded and attached to the targets and their descendants, the recording
//! created with its head, and the session made.

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    time::Duration,
};

use super::{
    Hooks, RecordOptions, Session, StopSignals, check_access_logs, clock::monotonic_ns, gc, heap,
    meta::head_meta, own_cost, wall_ns,
};
use crate::{
    capture::{
        accesslog::Format,
        log_source::LogSource,
        probe::{
            Probe, ProbeConfig, event::Records, format::Offsets, loader::KernelCounters, preflight,
        },
        procfs,
        spawn::{self, HeldChild},
        stacks::Stacks,
    },
    correlate::{
        Correlator, StateSizes, interval::IntervalAttributor, join::Joiner, mem::MemAccounting,
        route::Router,
    },
    error::{SetupError, UsageError},
    model::{ProcessOrigin, Row, meta},
    recording::{
        Writer,
        create::{Reserve, check_output},
    },
};

fn default_output() -> PathBuf {
    PathBuf::from(format!(
        "memwatch-{}.db",
        chrono::Local::now().format("%Y%m%d-%H%M%S")
    ))
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
        fold_responses: args.access_logs.is_empty(),
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
    // BPF statistics go on before the probes are attached, so every run they make is counted.
    let own = own_cost::OwnCost::new(args.bpf_stats && probe.is_some());
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
    let offset = wall_ns() - monotonic_ns() as i64;
    let page_size = ::procfs::page_size();
    // The heap is said followed if it is to be; measuring what a hit costs comes after the
    // recording exists, so that memwatch's start (what a kill before it loses) is not
    // lengthened by it, and a failed measurement corrects the meta below.
    let heap_wanted = args.heap && probe.is_some();
    let meta = head_meta(&args, config, offset, page_size, heap_wanted);
    let reserve = std::mem::take(&mut out.reserve);
    let writer = Writer::create_reserved(&output, args.force, reserve, &meta)?;
    out.created = true;
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
    if heap_wanted && heap.is_none() {
        baseline.push(Row::Meta(meta::HEAP.into(), false.to_string()));
    }
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
        pending: Records::default(),
        undecodable: 0,
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
        own,
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
