//! What memwatch's own work costs, by stage: the CPU time of reading the ring buffer (its
//! records copied out), of decoding and handing each event on (correlating), and of handing
//! rows to the writer, measured around each batch and drain with the thread's CPU clock; the
//! writer thread's own; and what the kernel side sent. Written when the recording closes, for
//! the report's own-cost lines and the bench.

use crate::{
    capture::{
        probe::{Probe, stats::StatsOn},
        procfs::{own_cpu_us, thread_cpu_ns},
    },
    model::{ProgramStats, Row, meta},
};

/// CPU time by stage (ns) and the ring buffer's drains.
#[derive(Debug, Default)]
pub(super) struct OwnCost {
    pub(super) decode_ns: u64,
    pub(super) correlate_ns: u64,
    pub(super) flush_ns: u64,
    /// Drains of the ring buffer, and how many the kernel side woke.
    pub(super) drains: u64,
    pub(super) wakeups: u64,
    /// BPF statistics, on for the recording with `--bpf-stats`.
    pub(super) stats: Option<StatsOn>,
}

/// A stage's start on the thread's CPU clock; [`Lap::lap`] adds what it cost since.
#[derive(Debug, Clone, Copy)]
pub(super) struct Lap(u64);

impl Lap {
    pub(super) fn start() -> Self {
        Self(thread_cpu_ns())
    }

    /// Adds the CPU time since the last lap to `total`, and starts the next.
    pub(super) fn lap(&mut self, total: &mut u64) {
        let now = thread_cpu_ns();
        *total += now.saturating_sub(self.0);
        self.0 = now;
    }
}

impl OwnCost {
    /// Turns BPF statistics on if asked; a kernel that refuses is said once, and the recording
    /// goes on without them.
    pub(super) fn new(bpf_stats: bool) -> Self {
        let stats = bpf_stats
            .then(|| {
                StatsOn::enable()
                    .inspect_err(|e| {
                        tracing::warn!(
                            "cannot turn BPF statistics on ({e}): the report will not say what \
                             each program cost; this needs Linux 5.8 or later"
                        );
                    })
                    .ok()
            })
            .flatten();
        Self {
            stats,
            ..Self::default()
        }
    }

    /// The rows that say what memwatch's work cost, written when the recording closes.
    pub(super) fn meta(&self, writer_cpu_ns: u64, probe: Option<&Probe>) -> Vec<Row> {
        let us = |ns: u64| ns / 1000;
        let mut pairs = vec![
            (meta::CPU_DECODE_US, us(self.decode_ns)),
            (meta::CPU_CORRELATE_US, us(self.correlate_ns)),
            (meta::CPU_FLUSH_US, us(self.flush_ns)),
            (meta::CPU_WRITE_US, us(writer_cpu_ns)),
            (meta::RING_DRAINS, self.drains),
            (meta::RING_WAKEUPS, self.wakeups),
        ];
        if let Some(probe) = probe {
            pairs.push((meta::RING_BYTES, probe.ring_bytes));
        }
        if let Some(total) = own_cpu_us() {
            pairs.push((meta::CPU_TOTAL_US, total));
        }
        let mut rows: Vec<Row> = pairs
            .into_iter()
            .map(|(key, value)| Row::Meta(key.into(), value.to_string()))
            .collect();
        if let (Some(_), Some(probe)) = (&self.stats, probe) {
            let programs: Vec<ProgramStats> = probe.program_stats();
            rows.push(Row::Meta(
                meta::BPF_PROGRAMS.into(),
                ProgramStats::encode(&programs),
            ));
        }
        rows
    }
}
