//! What each of memwatch's BPF programs cost the kernel: how many times it ran and for how
//! long, as `bpftool prog` shows them. The kernel keeps these figures only while BPF statistics
//! are on (`BPF_ENABLE_STATS`, as `kernel.bpf_stats_enabled` turns them on): they add a clock
//! read to every program run on the machine, so memwatch turns them on only when asked
//! (`--bpf-stats`), and off again when the recording ends.

use std::os::fd::OwnedFd;

use aya::sys::{Stats, enable_stats};

use super::Probe;
use crate::model::ProgramStats;

/// BPF statistics on for as long as this lives (they go off when the last holder closes it).
#[derive(Debug)]
pub struct StatsOn(#[expect(dead_code, reason = "held only to keep the statistics on")] OwnedFd);

impl StatsOn {
    /// Turns BPF run-time statistics on, or says why not (a kernel before 5.8).
    pub fn enable() -> Result<Self, aya::sys::SyscallError> {
        enable_stats(Stats::RunTime).map(StatsOn)
    }
}

impl Probe {
    /// Every loaded program's runs and run time, by name; programs the kernel gives no figures
    /// for are left out. All zero unless statistics were on.
    pub fn program_stats(&self) -> Vec<ProgramStats> {
        let mut out: Vec<ProgramStats> = self
            .ebpf
            .programs()
            .filter_map(|(name, program)| {
                let info = program.info().ok()?;
                Some(ProgramStats {
                    name: name.to_owned(),
                    runs: info.run_count(),
                    run_ns: u64::try_from(info.run_time().as_nanos()).unwrap_or(u64::MAX),
                })
            })
            .collect();
        out.sort_by(|a, b| b.run_ns.cmp(&a.run_ns).then_with(|| a.name.cmp(&b.name)));
        out
    }
}
