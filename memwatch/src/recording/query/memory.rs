//! Memory: syscalls (`mem_events`), page faults (`threads`) and /proc samples (`samples`).

use rusqlite::params;
use serde::Serialize;

use super::Decoded;
use crate::{error::RecordingError, recording::Recording};

/// A process's latest sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSample {
    pub pid: i64,
    pub comm: String,
    pub rss_bytes: i64,
    pub vm_bytes: i64,
}

/// One syscall's totals (`mem_events` grouped by `op`). Call counts include failed calls; byte
/// counts only successful ones.
#[derive(Debug, Clone)]
pub struct OpTotals {
    /// `mmap`, `munmap`, `mremap`, `brk` or `mprotect`.
    pub op: String,
    pub calls: u64,
    pub failed: u64,
    /// Sum of `len`.
    pub bytes: u64,
    /// Sum of `len` of anonymous mappings (no fd, or `MAP_ANONYMOUS`).
    pub anon_bytes: u64,
    /// Sum of the signed change of mapped bytes.
    pub vm_delta: i64,
    /// Sum of `len` of calls that asked for write access (`PROT_WRITE`).
    pub writable_bytes: u64,
}

/// Successful calls of one syscall and size (for brk and mremap: the signed change). Serialised
/// as is in the report JSON (`calls_by_size`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SizeBucket {
    pub op: String,
    pub bytes: i64,
    pub calls: u64,
}

/// A thread's page faults and memory syscalls. Serialised as is in the report JSON (`threads`).
#[derive(Debug, Clone, Serialize)]
pub struct ThreadStats {
    pub tid: u32,
    pub pid: u32,
    pub page_faults: u64,
    pub mmap_calls: u64,
    pub munmap_calls: u64,
    pub brk_calls: u64,
    pub mprotect_calls: u64,
    pub vm_growth_bytes: i64,
}

/// One sampling tick, summed over the processes sampled at it.
#[derive(Debug, Clone, Copy)]
pub struct SampleTotals {
    pub rss_bytes: u64,
    pub vm_bytes: u64,
}

/// [`SampleTotals`] with its time, as the page's API reads them.
#[derive(Debug, Clone, Copy)]
pub struct SamplePoint {
    pub ts_ns: i64,
    pub rss_bytes: i64,
    pub vm_bytes: i64,
}

/// A successful memory syscall that changed the mapped size by at least 1 MiB.
#[derive(Debug, Clone)]
pub struct LargeMemEvent {
    pub ts_ns: i64,
    pub op: String,
    pub vm_delta: i64,
    pub pid: i64,
}

/// Memory syscalls of traced threads outside any request.
#[derive(Debug, Clone, Copy)]
pub struct UnattributedMem {
    /// Calls, failed ones included.
    pub mem_calls: u64,
    /// Net change of mapped bytes of the successful ones.
    pub vm_bytes: i64,
}

impl Recording {
    /// Totals per syscall, per process (`by_process`) or (key `None`) of all of them. Whole.
    /// One scan, however many processes.
    pub fn mem_op_totals(
        &self,
        by_process: bool,
    ) -> Result<Vec<(Option<u32>, OpTotals)>, RecordingError> {
        self.rows(
            "SELECT CASE WHEN ?1 THEN pid END AS p, op, COUNT(*), SUM(ok = 0),
                    SUM(CASE WHEN ok THEN len ELSE 0 END),
                    SUM(CASE WHEN ok AND (fd < 0 OR (flags & 32) != 0) THEN len ELSE 0 END),
                    SUM(CASE WHEN ok THEN vm_delta ELSE 0 END),
                    SUM(CASE WHEN ok AND (prot & 2) != 0 THEN len ELSE 0 END)
             FROM mem_events GROUP BY p, op",
            params![by_process],
            |r| {
                Ok((
                    r.get(0)?,
                    OpTotals {
                        op: r.get(1)?,
                        calls: r.get::<_, i64>(2)? as u64,
                        failed: r.get::<_, i64>(3)? as u64,
                        bytes: r.get::<_, i64>(4)? as u64,
                        anon_bytes: r.get::<_, i64>(5)? as u64,
                        vm_delta: r.get(6)?,
                        writable_bytes: r.get::<_, i64>(7)? as u64,
                    },
                ))
            },
        )
    }

    /// Successful calls grouped by syscall and size, largest total first, at most `limit`, per
    /// process (`by_process`) or (key `None`) of all of them. Whole. One scan.
    pub fn calls_by_size(
        &self,
        by_process: bool,
        limit: usize,
    ) -> Result<Vec<(Option<u32>, SizeBucket)>, RecordingError> {
        self.rows(
            "SELECT p, op, size, n FROM (
               SELECT p, op, size, n,
                      ROW_NUMBER() OVER (PARTITION BY p ORDER BY ABS(size) * n DESC, op) AS rank
               FROM (SELECT CASE WHEN ?1 THEN pid END AS p, op,
                            CASE WHEN op IN ('brk', 'mremap') THEN vm_delta ELSE len END AS size,
                            COUNT(*) AS n
                     FROM mem_events WHERE ok GROUP BY p, op, size))
             WHERE rank <= ?2 ORDER BY p, rank",
            params![by_process, limit as i64],
            |r| {
                Ok((
                    r.get(0)?,
                    SizeBucket {
                        op: r.get(1)?,
                        bytes: r.get(2)?,
                        calls: r.get::<_, i64>(3)? as u64,
                    },
                ))
            },
        )
    }

    /// User page faults of the traced threads, per process (`by_process`) or (key `None`) of
    /// all of them.
    pub fn thread_faults(
        &self,
        by_process: bool,
    ) -> Result<Vec<(Option<u32>, u64)>, RecordingError> {
        self.rows(
            "SELECT CASE WHEN ?1 THEN pid END AS p, COALESCE(SUM(faults), 0)
             FROM threads GROUP BY p",
            params![by_process],
            |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)),
        )
    }

    /// User page faults of all the traced threads.
    pub fn total_faults(&self) -> Result<u64, RecordingError> {
        Ok(self.thread_faults(false)?.into_iter().map(|(_, n)| n).sum())
    }

    /// The `limit` threads with the most page faults, with their memory syscalls. Whole.
    pub fn threads_by_faults(&self, limit: usize) -> Result<Vec<ThreadStats>, RecordingError> {
        self.rows(
            "SELECT t.tid, t.pid, t.faults,
                    COALESCE(SUM(m.op = 'mmap'), 0), COALESCE(SUM(m.op = 'munmap'), 0),
                    COALESCE(SUM(m.op = 'brk'), 0), COALESCE(SUM(m.op = 'mprotect'), 0),
                    COALESCE(SUM(CASE WHEN m.ok THEN m.vm_delta ELSE 0 END), 0)
             FROM threads t LEFT JOIN mem_events m ON m.tid = t.tid
             GROUP BY t.tid ORDER BY t.faults DESC, t.tid LIMIT ?1",
            [limit as i64],
            |r| {
                Ok(ThreadStats {
                    tid: r.get(0)?,
                    pid: r.get(1)?,
                    page_faults: r.get::<_, i64>(2)? as u64,
                    mmap_calls: r.get::<_, i64>(3)? as u64,
                    munmap_calls: r.get::<_, i64>(4)? as u64,
                    brk_calls: r.get::<_, i64>(5)? as u64,
                    mprotect_calls: r.get::<_, i64>(6)? as u64,
                    vm_growth_bytes: r.get(7)?,
                })
            },
        )
    }

    /// The latest RSS and VmSize sample of each traced process that has not exited, with its
    /// name. Whole.
    pub fn latest_samples(&self) -> Result<Vec<ProcessSample>, RecordingError> {
        self.rows(
            "SELECT s.pid, COALESCE(p.comm, ''), s.rss_bytes, s.vm_bytes
             FROM samples s
             JOIN (SELECT pid, MAX(ts_ns) AS ts FROM samples GROUP BY pid) l
               ON s.pid = l.pid AND s.ts_ns = l.ts
             LEFT JOIN processes p ON p.pid = s.pid
             WHERE p.exited_ns IS NULL
             ORDER BY s.pid",
            [],
            |r| {
                Ok(ProcessSample {
                    pid: r.get(0)?,
                    comm: r.get(1)?,
                    rss_bytes: r.get(2)?,
                    vm_bytes: r.get(3)?,
                })
            },
        )
    }

    /// RSS and VmSize per sampling tick in time order, per process (`by_process`) or (key
    /// `None`) summed over all of them. Whole. One scan.
    pub fn sample_totals(
        &self,
        by_process: bool,
    ) -> Result<Vec<(Option<u32>, SampleTotals)>, RecordingError> {
        self.rows(
            "SELECT CASE WHEN ?1 THEN pid END AS p, SUM(rss_bytes), SUM(vm_bytes) FROM samples
             GROUP BY p, ts_ns ORDER BY p, ts_ns",
            params![by_process],
            |r| {
                Ok((
                    r.get(0)?,
                    SampleTotals {
                        rss_bytes: r.get::<_, i64>(1)? as u64,
                        vm_bytes: r.get::<_, i64>(2)? as u64,
                    },
                ))
            },
        )
    }

    /// RSS and VmSize summed over the processes per sampling tick in time order, every tick or
    /// those in `[from_ns, to_ns]`. [`Decoded`].
    pub fn sample_series(
        &self,
        range: Option<(i64, i64)>,
    ) -> Result<Decoded<SamplePoint>, RecordingError> {
        let map = |r: &rusqlite::Row<'_>| {
            Ok(SamplePoint {
                ts_ns: r.get(0)?,
                rss_bytes: r.get(1)?,
                vm_bytes: r.get(2)?,
            })
        };
        match range {
            None => self.decoded(
                "samples",
                "SELECT ts_ns, SUM(rss_bytes), SUM(vm_bytes) FROM samples GROUP BY ts_ns
                 ORDER BY ts_ns",
                [],
                map,
            ),
            Some((from, to)) => self.decoded(
                "samples",
                "SELECT ts_ns, SUM(rss_bytes), SUM(vm_bytes) FROM samples
                 WHERE ts_ns BETWEEN ?1 AND ?2 GROUP BY ts_ns ORDER BY ts_ns",
                [from, to],
                map,
            ),
        }
    }

    /// The `limit` successful calls in `[from_ns, to_ns]` that changed the mapped size most, by
    /// at least 1 MiB, largest first. [`Decoded`].
    pub fn largest_mem_events(
        &self,
        from_ns: i64,
        to_ns: i64,
        limit: usize,
    ) -> Result<Decoded<LargeMemEvent>, RecordingError> {
        self.decoded(
            "mem_events",
            "SELECT ts_ns, op, vm_delta, pid FROM mem_events
             WHERE ok AND ABS(vm_delta) >= 1048576 AND ts_ns BETWEEN ?1 AND ?2
             ORDER BY ABS(vm_delta) DESC LIMIT ?3",
            params![from_ns, to_ns, limit as i64],
            |r| {
                Ok(LargeMemEvent {
                    ts_ns: r.get(0)?,
                    op: r.get(1)?,
                    vm_delta: r.get(2)?,
                    pid: r.get(3)?,
                })
            },
        )
    }

    /// Memory syscalls outside any request.
    pub fn unattributed_mem(&self) -> Result<UnattributedMem, RecordingError> {
        Ok(UnattributedMem {
            mem_calls: self.count(
                "SELECT COUNT(*) FROM mem_events WHERE request_id IS NULL",
                [],
            )? as u64,
            vm_bytes: self.count(
                "SELECT SUM(vm_delta) FROM mem_events WHERE ok AND request_id IS NULL",
                [],
            )?,
        })
    }
}
