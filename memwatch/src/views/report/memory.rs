//! The memory syscalls, page faults and resident-set samples of the whole target and of each
//! process.

use std::collections::HashMap;

use serde::Serialize;

use super::{Q, SizeBucket, TOP};
use crate::recording::{Recording, query::memory::OpTotals};

#[derive(Debug, Clone, Default, Serialize)]
pub struct Memory {
    pub mmap_calls: u64,
    pub mmap_bytes: u64,
    pub mmap_anon_bytes: u64,
    pub munmap_calls: u64,
    pub munmap_bytes: u64,
    pub mremap_calls: u64,
    pub mremap_growth_bytes: i64,
    pub brk_calls: u64,
    pub brk_growth_bytes: i64,
    pub mprotect_calls: u64,
    /// Bytes made writable by mprotect: how glibc grows thread arenas.
    pub mprotect_rw_bytes: u64,
    /// madvise calls (any advice) and the bytes they named: how Go's scavenger and many
    /// allocators give memory back.
    pub madvise_calls: u64,
    pub madvise_bytes: u64,
    /// Of the pages they named, those resident that madvise gave back (DONTNEED, FREE,
    /// REMOVE): what the calls did to the resident set. Whole recording, all processes only;
    /// `None` per process and in recordings made before memwatch counted it.
    pub madvise_released_bytes: Option<u64>,
    /// Calls that returned an error: reported, never counted as growth.
    pub failed_calls: u64,
    /// Net change of mapped bytes from all of the above.
    pub vm_growth_bytes: i64,
    pub page_faults: u64,
    pub rss_samples: u64,
    pub rss_start_bytes: u64,
    pub rss_end_bytes: u64,
    pub rss_peak_bytes: u64,
    pub vm_start_bytes: u64,
    pub vm_end_bytes: u64,
    pub vm_peak_bytes: u64,
    /// Successful calls grouped by syscall and size (for brk and mremap: the signed change),
    /// largest total first.
    pub calls_by_size: Vec<SizeBucket>,
}

impl Memory {
    /// The memory figures of each process (`by_process`), or (key `None`) of all of them: one
    /// scan of each table, however many processes (a fork storm records thousands).
    pub(super) fn read(rec: &Recording, by_process: bool) -> Q<HashMap<Option<u32>, Self>> {
        let mut all: HashMap<Option<u32>, Self> = HashMap::new();
        for (pid, totals) in rec.mem_op_totals(by_process)? {
            let m = all.entry(pid).or_default();
            let OpTotals {
                op,
                calls,
                failed,
                bytes,
                anon_bytes,
                vm_delta,
                writable_bytes,
            } = totals;
            m.failed_calls = m.failed_calls.saturating_add(failed);
            m.vm_growth_bytes = m.vm_growth_bytes.saturating_add(vm_delta);
            match op.as_str() {
                "mmap" => {
                    m.mmap_calls = calls;
                    m.mmap_bytes = bytes;
                    m.mmap_anon_bytes = anon_bytes;
                }
                "munmap" => {
                    m.munmap_calls = calls;
                    m.munmap_bytes = bytes;
                }
                "mremap" => {
                    m.mremap_calls = calls;
                    m.mremap_growth_bytes = vm_delta;
                }
                "brk" => {
                    m.brk_calls = calls;
                    m.brk_growth_bytes = vm_delta;
                }
                "mprotect" => {
                    m.mprotect_calls = calls;
                    m.mprotect_rw_bytes = writable_bytes;
                }
                "madvise" => {
                    m.madvise_calls = calls;
                    m.madvise_bytes = bytes;
                }
                other => tracing::warn!("unknown op {other:?} in recording"),
            }
        }
        for (pid, bucket) in rec.calls_by_size(by_process, TOP)? {
            all.entry(pid).or_default().calls_by_size.push(bucket);
        }
        for (pid, faults) in rec.thread_faults(by_process)? {
            all.entry(pid).or_default().page_faults = faults;
        }
        // Whole-target series: one point per sampling tick, summed over processes.
        for (pid, point) in rec.sample_totals(by_process)? {
            let m = all.entry(pid).or_default();
            let (rss, vm) = (point.rss_bytes, point.vm_bytes);
            if m.rss_samples == 0 {
                m.rss_start_bytes = rss;
                m.vm_start_bytes = vm;
            }
            m.rss_samples += 1;
            m.rss_end_bytes = rss;
            m.vm_end_bytes = vm;
            m.rss_peak_bytes = m.rss_peak_bytes.max(rss);
            m.vm_peak_bytes = m.vm_peak_bytes.max(vm);
        }
        Ok(all)
    }
}
