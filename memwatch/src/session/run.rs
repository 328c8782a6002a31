//! The event loop: drains the ring buffer, ticks the heap budget, samples, writes counters
//! and flushes rows to the writer until a stop condition; then the stop: the last events,
//! sample and rows, the recording closed and the probes handed off to be detached.

use std::{
    io::IsTerminal as _,
    time::{Duration, Instant},
};

use super::{Session, StopSignals, clock::monotonic_ns, heap, own_cost::Lap, wall_ns};
use crate::{
    capture::{
        probe::{Event, Probe, event::DRAIN_BATCH, linger},
        spawn,
    },
    model::{Row, meta},
    units,
};

/// How often the ring buffer is drained when the kernel has not woken us.
const DRAIN_EVERY: Duration = Duration::from_millis(50);

/// How often per-thread fault totals and loss counters are written.
const COUNTERS_EVERY: Duration = Duration::from_secs(1);

/// Why recording stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Ctrl-C or SIGTERM.
    Signal,
    /// The command that runs the session asked (`memwatch ci`).
    Asked,
    Duration,
    TargetsExited,
    /// The recording could not be written (disk full, I/O error); [`Writer::finish`](crate::recording::Writer::finish) says why.
    WriteFailed,
}

impl Session {
    /// The heap budget's look at the probes (at most every 50 ms).
    fn heap_look(&mut self) {
        if let (Some(heap), Some(probe)) = (self.heap.as_mut(), self.probe.as_mut()) {
            let mono = monotonic_ns();
            let wall = mono as i64 + self.offset;
            heap.look((mono, wall), probe, &mut self.correlator, &mut self.rows);
        }
    }

    fn drain(&mut self) {
        // The probe and the handlers both need `self`: records are copied out a batch at a
        // time (`DRAIN_BATCH`), into a buffer whose capacity is kept between drains, then each
        // is decoded as it is handled.
        let mut lap = Lap::start();
        let mut records = std::mem::take(&mut self.pending);
        let mut read_from = None;
        while let Some(probe) = self.probe.as_mut() {
            // At most a ring's worth a drain, as when a drain read what was there when it
            // began: a target that fills the ring as fast as it is read must not keep the
            // event loop from its timers and signals.
            let start = *read_from.get_or_insert(probe.ring_bytes);
            if probe.ring_bytes - start >= probe.ring_capacity {
                break;
            }
            records.clear();
            let n = probe.drain(&mut records, DRAIN_BATCH);
            lap.lap(&mut self.own.decode_ns);
            for record in records.iter() {
                match Event::decode(record) {
                    Ok(e) => self.on_event(e),
                    Err(e) => {
                        self.undecodable += 1;
                        tracing::debug!("undecodable ring-buffer record: {e}");
                    }
                }
            }
            lap.lap(&mut self.own.correlate_ns);
            if n < DRAIN_BATCH {
                break;
            }
            // A drain at full speed is 50 ms of events, 1 to 2 ms of CPU: between batches the
            // CPU goes to whatever waits for it, often a target's thread that this drain
            // preempted (see `writer::PACE_ROWS`). The yield's own CPU is counted as reading.
            std::thread::yield_now();
        }
        self.pending = records;
        self.sweep_conns();
        lap.lap(&mut self.own.correlate_ns);
        self.flush();
        lap.lap(&mut self.own.flush_ns);
        self.own.drains += 1;
    }

    /// Drops the kernel-side connections of processes that exited, once per drain rather than
    /// per exit (each sweep walks the map). A PID given again to a new target since is kept:
    /// its entries may be the new process's.
    pub(super) fn sweep_conns(&mut self) {
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

    /// Responses whose start the kernel side still holds, of `pid` or of every process: read
    /// before the requests still open are ended, since no later event will carry them. Only
    /// the connections with a request awaiting its response are looked up.
    pub(super) fn apply_folded_responses(&mut self, pid: Option<u32>) {
        let Some(probe) = self.probe.as_ref() else {
            return;
        };
        let folded = probe.folded_responses(&self.correlator.awaiting_conns(pid));
        self.correlator
            .folded_responses(&folded, self.offset, &mut self.rows);
    }

    pub(super) fn flush(&mut self) {
        if let Some(stacks) = self.stacks.as_mut() {
            self.rows.extend(stacks.take_rows());
        }
        if !self.rows.is_empty() {
            let rows = std::mem::replace(&mut self.rows, self.writer.spare());
            self.writer.send(rows);
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

impl Session {
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

        // Everything up to now, and a last sample, so the recording ends with the targets' final
        // memory whatever stopped it (the reconciliation compares the samples with the events up
        // to here).
        self.drain();
        if stop != Stop::TargetsExited {
            let faults = self.thread_faults();
            self.sample(&faults);
        }

        // Stop the command we started, and what it started, if they outlived the recording: a
        // server started through a shim (a shell, pyenv's) is the shim's child, and stopping the
        // shim alone would leave it running after memwatch is gone, as `timeout` would not.
        if let Some(pid) = self.spawned
            && !self.alive.is_empty()
            && stop != Stop::TargetsExited
        {
            // The figures are taken as of now: everything the command's exit frees after this
            // would otherwise read as every route giving its memory back. Now on the events'
            // clock (the kernel's, offset as they are): the wall clock may have been slewed
            // since the offset was taken, by more than the exit takes to follow the signal.
            self.rows.push(Row::Meta(
                meta::COMMAND_STOPPED_NS.into(),
                self.wall(monotonic_ns()).to_string(),
            ));
            // The command first, then its descendants (every other traced process: with
            // `-- CMD` only the command's tree is traced). A descendant is signalled only while
            // it is still in the command's process group (memwatch's own, or the command's
            // when it has one of its own, as under `memwatch ci`): had its exit been missed and
            // its PID gone to another process, that process would be in neither.
            // SAFETY: getpgid on this process, no preconditions.
            let groups = [unsafe { libc::getpgid(0) }, pid as i32];
            // `memwatch ci` (`Stop::Asked`) stops the server's group itself once the recording
            // is closed, gracefully and with its own timeout: there only the command is told.
            let descendants = stop != Stop::Asked;
            let mut targets: Vec<u32> = self
                .alive
                .iter()
                .copied()
                .filter(|&p| {
                    // SAFETY: plain syscall; -1 (gone) is in neither group.
                    descendants && p != pid && groups.contains(&unsafe { libc::getpgid(p as i32) })
                })
                .collect();
            targets.sort_unstable();
            if self.alive.contains(&pid) {
                targets.insert(0, pid);
            }
            tracing::info!(
                ?targets,
                "stopping the command memwatch started, and its descendants"
            );
            for target in targets {
                // SAFETY: plain syscall on the command (forked by memwatch, not reaped) or a
                // descendant in its group.
                unsafe { libc::kill(target as i32, libc::SIGTERM) };
            }
            // Nothing is drained after this: what the exits free is no route's release, and
            // the routes' figures, kept per second, could not tell it from what came before
            // within the same second. (Only the command's exit code is recorded, below.)
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
        self.read_last_logs().await;
        let faults = self.thread_faults();
        self.write_counters(&faults);
        self.apply_folded_responses(None);
        self.correlator.finish_all(&mut self.rows);
        self.close_rows(stop);
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
                session.own.wakeups += 1;
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
