//! `memwatch report`: what a recording says. [`Report`] serialises as the report JSON
//! (documented in `docs/recording.md`, "Report JSON"); [`super::format`] renders it as text.

use std::collections::BTreeMap;

use rusqlite::params;
use serde::Serialize;

use crate::{error::RecordingError, model::meta, recording::Recording};

/// How many entries size and thread lists keep.
const TOP: usize = 20;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub memwatch_version: String,
    pub schema_version: i64,
    /// False when memwatch did not finish the recording (killed, crashed): the figures cover
    /// what was committed.
    pub complete: bool,
    pub started_ns: i64,
    pub ended_ns: i64,
    pub duration_s: f64,
    pub processes: Vec<ProcessReport>,
    /// Ring-buffer events the kernel side could not deliver. Non-zero means the counts below
    /// are lower bounds.
    pub dropped_events: u64,
    pub lost: Lost,
    /// Ring-buffer records read.
    pub events: u64,
    pub memory: Memory,
    pub per_process: Vec<ProcessMemory>,
    /// Threads with the most page faults.
    pub threads: Vec<ThreadReport>,
    /// Completed HTTP requests.
    pub requests: u64,
    /// Traffic that was not HTTP/1.x, by kind.
    pub non_http: BTreeMap<String, u64>,
    /// Requests whose memory could only be charged approximately (event-loop servers).
    pub approximate_requests: u64,
    /// Memory events on traced threads outside any request.
    pub unattributed: Unattributed,
    pub endpoints: Vec<Endpoint>,
    /// Present when the recording followed access logs.
    pub access_log: Option<AccessLog>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct AccessLog {
    pub sources: Vec<String>,
    /// The format of each source, in order (`unknown` if no line arrived to detect it).
    pub format: Vec<String>,
    /// `joined` (lines matched to captured requests) or `interval` (`--no-ebpf`: lines are the
    /// requests, charged their interval's growth).
    pub mode: String,
    pub lines: u64,
    pub parsed: u64,
    pub rejected: BTreeMap<String, u64>,
    /// Parsed lines whose request field is not a valid HTTP request (scanners' garbage).
    pub invalid_requests: u64,
    pub matched: u64,
    pub unmatched_lines: u64,
    pub unmatched_requests: u64,
    /// The first rejected lines, as text (at most 5, each at most 4 KiB).
    pub rejected_examples: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Lost {
    pub dropped_events: u64,
    pub unpaired_exits: u64,
    pub map_full: u64,
    pub undecodable: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProcessReport {
    pub pid: u32,
    pub ppid: Option<u32>,
    pub comm: String,
    pub cmdline: Option<String>,
    pub origin: String,
    pub started_ns: Option<i64>,
    pub exited_ns: Option<i64>,
    pub exit_code: Option<i32>,
}

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

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SizeBucket {
    pub op: String,
    pub bytes: i64,
    pub calls: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProcessMemory {
    pub pid: u32,
    pub comm: String,
    pub memory: Memory,
}

#[derive(Debug, Clone, Serialize)]
pub struct ThreadReport {
    pub tid: u32,
    pub pid: u32,
    pub page_faults: u64,
    pub mmap_calls: u64,
    pub munmap_calls: u64,
    pub brk_calls: u64,
    pub mprotect_calls: u64,
    pub vm_growth_bytes: i64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Unattributed {
    pub mem_calls: u64,
    pub vm_bytes: i64,
    /// Page faults of traced threads not charged to any request.
    pub page_faults: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    pub method: String,
    pub route: String,
    pub requests: u64,
    pub statuses: BTreeMap<String, u64>,
    pub vm_bytes: i64,
    pub rss_bytes: i64,
    pub page_faults: u64,
    pub mem_calls: u64,
    pub approximate: u64,
    pub vm_bytes_mean: i64,
    pub rss_bytes_mean: i64,
    pub vm_bytes_per_request_p50: i64,
    pub vm_bytes_per_request_p95: i64,
    pub rss_bytes_per_request_p50: i64,
    pub rss_bytes_per_request_p95: i64,
    pub duration_ms_p50: f64,
    pub duration_ms_p95: f64,
}

/// Nearest-rank percentile of a sorted slice.
pub fn percentile<T: Copy + Default>(sorted: &[T], p: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A time range in wall-clock ns; `None` ends are open.
#[derive(Debug, Clone, Copy, Default)]
pub struct Range {
    pub from_ns: Option<i64>,
    pub to_ns: Option<i64>,
}

impl Range {
    fn bounds(self) -> (i64, i64) {
        (
            self.from_ns.unwrap_or(i64::MIN),
            self.to_ns.unwrap_or(i64::MAX),
        )
    }
}

type Q<T> = Result<T, RecordingError>;

fn memory(rec: &Recording, pid: Option<u32>) -> Q<Memory> {
    let conn = rec.conn();
    let pid = pid.map(i64::from);
    let mut m = Memory::default();
    let mut stmt = conn
        .prepare(
            "SELECT op, COUNT(*), SUM(ok = 0),
                    SUM(CASE WHEN ok THEN len ELSE 0 END),
                    SUM(CASE WHEN ok AND (fd < 0 OR (flags & 32) != 0) THEN len ELSE 0 END),
                    SUM(CASE WHEN ok THEN vm_delta ELSE 0 END),
                    SUM(CASE WHEN ok AND (prot & 2) != 0 THEN len ELSE 0 END)
             FROM mem_events WHERE (?1 IS NULL OR pid = ?1) GROUP BY op",
        )
        .map_err(|e| rec.error(e))?;
    let rows = stmt
        .query_map(params![pid], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)? as u64,
                r.get::<_, i64>(2)? as u64,
                r.get::<_, i64>(3)? as u64,
                r.get::<_, i64>(4)? as u64,
                r.get::<_, i64>(5)?,
                r.get::<_, i64>(6)? as u64,
            ))
        })
        .map_err(|e| rec.error(e))?;
    for row in rows {
        let (op, calls, failed, len, anon, delta, rw) = row.map_err(|e| rec.error(e))?;
        m.failed_calls += failed;
        m.vm_growth_bytes += delta;
        match op.as_str() {
            "mmap" => {
                m.mmap_calls = calls;
                m.mmap_bytes = len;
                m.mmap_anon_bytes = anon;
            }
            "munmap" => {
                m.munmap_calls = calls;
                m.munmap_bytes = len;
            }
            "mremap" => {
                m.mremap_calls = calls;
                m.mremap_growth_bytes = delta;
            }
            "brk" => {
                m.brk_calls = calls;
                m.brk_growth_bytes = delta;
            }
            "mprotect" => {
                m.mprotect_calls = calls;
                m.mprotect_rw_bytes = rw;
            }
            other => tracing::warn!("unknown op {other:?} in recording"),
        }
    }
    let mut stmt = conn
        .prepare(
            "SELECT op, CASE WHEN op IN ('brk', 'mremap') THEN vm_delta ELSE len END AS size,
                    COUNT(*) AS n
             FROM mem_events WHERE ok AND (?1 IS NULL OR pid = ?1)
             GROUP BY op, size ORDER BY ABS(size) * n DESC, op LIMIT ?2",
        )
        .map_err(|e| rec.error(e))?;
    m.calls_by_size = stmt
        .query_map(params![pid, TOP as i64], |r| {
            Ok(SizeBucket {
                op: r.get(0)?,
                bytes: r.get(1)?,
                calls: r.get::<_, i64>(2)? as u64,
            })
        })
        .map_err(|e| rec.error(e))?
        .collect::<Result<_, _>>()
        .map_err(|e| rec.error(e))?;
    m.page_faults = conn
        .query_row(
            "SELECT COALESCE(SUM(faults), 0) FROM threads WHERE (?1 IS NULL OR pid = ?1)",
            params![pid],
            |r| r.get::<_, i64>(0),
        )
        .map_err(|e| rec.error(e))? as u64;
    // Whole-target series: one point per sampling tick, summed over processes.
    let mut stmt = conn
        .prepare(
            "SELECT SUM(rss_bytes), SUM(vm_bytes) FROM samples WHERE (?1 IS NULL OR pid = ?1)
             GROUP BY ts_ns ORDER BY ts_ns",
        )
        .map_err(|e| rec.error(e))?;
    let series = stmt
        .query_map(params![pid], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
        })
        .map_err(|e| rec.error(e))?;
    for (i, point) in series.enumerate() {
        let (rss, vm) = point.map_err(|e| rec.error(e))?;
        if i == 0 {
            m.rss_start_bytes = rss;
            m.vm_start_bytes = vm;
        }
        m.rss_samples += 1;
        m.rss_end_bytes = rss;
        m.vm_end_bytes = vm;
        m.rss_peak_bytes = m.rss_peak_bytes.max(rss);
        m.vm_peak_bytes = m.vm_peak_bytes.max(vm);
    }
    Ok(m)
}

pub(crate) fn processes(rec: &Recording) -> Q<Vec<ProcessReport>> {
    let mut stmt = rec
        .conn()
        .prepare(
            "SELECT pid, ppid, comm, cmdline, origin, started_ns, exited_ns, exit_code
             FROM processes ORDER BY COALESCE(started_ns, 0), pid",
        )
        .map_err(|e| rec.error(e))?;
    stmt.query_map([], |r| {
        Ok(ProcessReport {
            pid: r.get(0)?,
            ppid: r.get(1)?,
            comm: r.get(2)?,
            cmdline: r.get(3)?,
            origin: r.get(4)?,
            started_ns: r.get(5)?,
            exited_ns: r.get(6)?,
            exit_code: r.get(7)?,
        })
    })
    .map_err(|e| rec.error(e))?
    .collect::<Result<_, _>>()
    .map_err(|e| rec.error(e))
}

fn threads(rec: &Recording) -> Q<Vec<ThreadReport>> {
    let mut stmt = rec
        .conn()
        .prepare(
            "SELECT t.tid, t.pid, t.faults,
                    COALESCE(SUM(m.op = 'mmap'), 0), COALESCE(SUM(m.op = 'munmap'), 0),
                    COALESCE(SUM(m.op = 'brk'), 0), COALESCE(SUM(m.op = 'mprotect'), 0),
                    COALESCE(SUM(CASE WHEN m.ok THEN m.vm_delta ELSE 0 END), 0)
             FROM threads t LEFT JOIN mem_events m ON m.tid = t.tid
             GROUP BY t.tid ORDER BY t.faults DESC, t.tid LIMIT ?1",
        )
        .map_err(|e| rec.error(e))?;
    stmt.query_map([TOP as i64], |r| {
        Ok(ThreadReport {
            tid: r.get(0)?,
            pid: r.get(1)?,
            page_faults: r.get::<_, i64>(2)? as u64,
            mmap_calls: r.get::<_, i64>(3)? as u64,
            munmap_calls: r.get::<_, i64>(4)? as u64,
            brk_calls: r.get::<_, i64>(5)? as u64,
            mprotect_calls: r.get::<_, i64>(6)? as u64,
            vm_growth_bytes: r.get(7)?,
        })
    })
    .map_err(|e| rec.error(e))?
    .collect::<Result<_, _>>()
    .map_err(|e| rec.error(e))
}

/// Ranges with more requests than this are summed from the per-second rollup, and their
/// percentiles estimated from a sample of about this many requests.
pub const EXACT_LIMIT: i64 = 50_000;

#[derive(Default)]
struct Acc {
    statuses: BTreeMap<String, u64>,
    n: u64,
    vm_sum: i64,
    rss_sum: i64,
    faults: u64,
    calls: u64,
    approximate: u64,
    /// Per-request values for percentiles: all of them, or a sample.
    vm: Vec<i64>,
    rss: Vec<i64>,
    dur_ns: Vec<i64>,
}

fn status_key(status: Option<i64>) -> String {
    status
        .filter(|s| *s >= 0)
        .map_or_else(|| "-".to_owned(), |s| s.to_string())
}

/// Adds the requests that ended in `[from, to]` (every `every`-th by id) to `groups`: to the
/// totals when `totals`, to the percentile values always.
fn add_rows(
    rec: &Recording,
    groups: &mut BTreeMap<(String, String), Acc>,
    (from, to): (i64, i64),
    every: i64,
    totals: bool,
) -> Q<()> {
    let mut stmt = rec
        .conn()
        .prepare_cached(
            "SELECT COALESCE(method, '-'), COALESCE(route, '-'), status, vm_bytes, rss_bytes,
                    faults, mem_calls, exact, end_ns - start_ns
             FROM requests WHERE end_ns >= ?1 AND end_ns <= ?2 AND id % ?3 = 0",
        )
        .map_err(|e| rec.error(e))?;
    let rows = stmt
        .query_map(params![from, to, every.max(1)], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<i64>>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, bool>(7)?,
                r.get::<_, i64>(8)?,
            ))
        })
        .map_err(|e| rec.error(e))?;
    for row in rows {
        let (method, route, status, vm, rss, faults, calls, exact, dur) =
            row.map_err(|e| rec.error(e))?;
        let acc = groups.entry((method, route)).or_default();
        if totals {
            *acc.statuses.entry(status_key(status)).or_default() += 1;
            acc.n += 1;
            acc.vm_sum += vm;
            acc.rss_sum += rss;
            acc.faults += faults as u64;
            acc.calls += calls as u64;
            acc.approximate += u64::from(!exact);
        }
        acc.vm.push(vm);
        acc.rss.push(rss);
        acc.dur_ns.push(dur);
    }
    Ok(())
}

/// Per-route figures for requests that ended in `range`, sorted by resident bytes.
///
/// Totals (requests, statuses, bytes, faults) are always exact. Up to [`EXACT_LIMIT`] requests,
/// percentiles are exact too; above it, whole seconds come from the per-second rollup, the
/// partial seconds at the edges from the rows, and percentiles from a sample of about
/// [`EXACT_LIMIT`] requests (every k-th by id).
pub fn endpoints(rec: &Recording, range: Range) -> Q<Vec<Endpoint>> {
    const S: i64 = 1_000_000_000;
    let (from, to) = range.bounds();
    let (first_s, last_s) = (from.div_euclid(S), to.div_euclid(S));
    let estimate: i64 = rec
        .conn()
        .query_row(
            "SELECT COALESCE(SUM(n), 0) FROM request_rollup WHERE second BETWEEN ?1 AND ?2",
            params![first_s, last_s],
            |r| r.get(0),
        )
        .map_err(|e| rec.error(e))?;
    let mut groups: BTreeMap<(String, String), Acc> = BTreeMap::new();
    if estimate <= EXACT_LIMIT {
        add_rows(rec, &mut groups, (from, to), 1, true)?;
    } else {
        // Whole seconds inside the range from the rollup...
        let inner = (first_s + 1, last_s - 1);
        let mut stmt = rec
            .conn()
            .prepare_cached(
                "SELECT method, route, status, SUM(n), SUM(approx), SUM(vm_sum), SUM(rss_sum),
                        SUM(faults), SUM(mem_calls)
                 FROM request_rollup WHERE second BETWEEN ?1 AND ?2
                 GROUP BY method, route, status",
            )
            .map_err(|e| rec.error(e))?;
        let rows = stmt
            .query_map(params![inner.0, inner.1], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    [
                        r.get::<_, i64>(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                    ],
                ))
            })
            .map_err(|e| rec.error(e))?;
        for row in rows {
            let (method, route, status, [n, approx, vm, rss, faults, calls]) =
                row.map_err(|e| rec.error(e))?;
            let acc = groups.entry((method, route)).or_default();
            *acc.statuses.entry(status_key(Some(status))).or_default() += n as u64;
            acc.n += n as u64;
            acc.approximate += approx as u64;
            acc.vm_sum += vm;
            acc.rss_sum += rss;
            acc.faults += faults as u64;
            acc.calls += calls as u64;
        }
        // ...the partial seconds at both edges from the rows...
        let mut edges = BTreeMap::new();
        add_rows(rec, &mut edges, (from, (inner.0 * S - 1).min(to)), 1, true)?;
        let tail_from = ((inner.1 + 1) * S).max(from).max(inner.0 * S);
        add_rows(rec, &mut edges, (tail_from, to), 1, true)?;
        for (key, e) in edges {
            let acc = groups.entry(key).or_default();
            for (status, n) in e.statuses {
                *acc.statuses.entry(status).or_default() += n;
            }
            acc.n += e.n;
            acc.approximate += e.approximate;
            acc.vm_sum += e.vm_sum;
            acc.rss_sum += e.rss_sum;
            acc.faults += e.faults;
            acc.calls += e.calls;
        }
        // ...and percentiles from a sample.
        add_rows(
            rec,
            &mut groups,
            (from, to),
            estimate / EXACT_LIMIT + 1,
            false,
        )?;
    }
    let mut out: Vec<Endpoint> = groups
        .into_iter()
        .filter(|(_, a)| a.n > 0)
        .map(|((method, route), mut a)| {
            let (vm_bytes, rss_bytes) = (a.vm_sum, a.rss_sum);
            a.vm.sort_unstable();
            a.rss.sort_unstable();
            a.dur_ns.sort_unstable();
            Endpoint {
                method,
                route,
                requests: a.n,
                statuses: a.statuses,
                vm_bytes,
                rss_bytes,
                page_faults: a.faults,
                mem_calls: a.calls,
                approximate: a.approximate,
                vm_bytes_mean: vm_bytes / (a.n.max(1) as i64),
                rss_bytes_mean: rss_bytes / (a.n.max(1) as i64),
                vm_bytes_per_request_p50: percentile(&a.vm, 50.0),
                vm_bytes_per_request_p95: percentile(&a.vm, 95.0),
                rss_bytes_per_request_p50: percentile(&a.rss, 50.0),
                rss_bytes_per_request_p95: percentile(&a.rss, 95.0),
                duration_ms_p50: percentile(&a.dur_ns, 50.0) as f64 / 1e6,
                duration_ms_p95: percentile(&a.dur_ns, 95.0) as f64 / 1e6,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.rss_bytes
            .cmp(&a.rss_bytes)
            .then(b.requests.cmp(&a.requests))
            .then(a.route.cmp(&b.route))
    });
    Ok(out)
}

pub(crate) fn access_log(rec: &Recording) -> Q<Option<AccessLog>> {
    let sources: Vec<String> = rec
        .meta(meta::ACCESS_LOGS)?
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if sources.is_empty() {
        return Ok(None);
    }
    let mut format = Vec::new();
    for i in 0..sources.len() {
        format.push(
            rec.meta(&meta::access_log_format(i))?
                .unwrap_or_else(|| "unknown".into()),
        );
    }
    let ebpf = rec.meta(meta::EBPF)?.is_none_or(|v| v == "true");
    let rejected = counts_by(
        rec,
        "SELECT reason, COUNT(*) FROM log_lines WHERE NOT ok GROUP BY reason",
        [],
    )?;
    let mut stmt = rec
        .conn()
        .prepare("SELECT raw FROM log_lines WHERE NOT ok ORDER BY id LIMIT 5")
        .map_err(|e| rec.error(e))?;
    let rejected_examples = stmt
        .query_map([], |r| r.get::<_, Option<String>>(0))
        .map_err(|e| rec.error(e))?
        .filter_map(|r| r.ok().flatten())
        .collect();
    Ok(Some(AccessLog {
        sources,
        format,
        mode: if ebpf { "joined" } else { "interval" }.into(),
        lines: count(rec, "SELECT COUNT(*) FROM log_lines")? as u64,
        parsed: count(rec, "SELECT COUNT(*) FROM log_lines WHERE ok")? as u64,
        rejected,
        invalid_requests: count(
            rec,
            "SELECT COUNT(*) FROM log_lines WHERE ok AND method IS NULL",
        )? as u64,
        matched: count(
            rec,
            "SELECT COUNT(*) FROM log_lines WHERE request_id IS NOT NULL",
        )? as u64,
        unmatched_lines: count(
            rec,
            "SELECT COUNT(*) FROM log_lines WHERE ok AND method IS NOT NULL AND request_id IS NULL",
        )? as u64,
        unmatched_requests: if ebpf {
            count(
                rec,
                "SELECT COUNT(*) FROM requests r WHERE NOT EXISTS
                   (SELECT 1 FROM log_lines l WHERE l.request_id = r.id)",
            )? as u64
        } else {
            0
        },
        rejected_examples,
    }))
}

/// `SELECT key, COUNT(*) ... GROUP BY key` into a map.
pub(crate) fn counts_by(
    rec: &Recording,
    sql: &str,
    params: impl rusqlite::Params,
) -> Q<BTreeMap<String, u64>> {
    let mut stmt = rec.conn().prepare_cached(sql).map_err(|e| rec.error(e))?;
    let rows = stmt
        .query_map(params, |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })
        .map_err(|e| rec.error(e))?;
    rows.collect::<Result<_, _>>().map_err(|e| rec.error(e))
}

/// The latest loss counters and the events read: `(events, lost)`.
pub(crate) fn lost(rec: &Recording) -> Q<(u64, Lost)> {
    rec.conn()
        .query_row(
            "SELECT events, dropped, unpaired_exits, map_full, undecodable FROM counters
             ORDER BY ts_ns DESC LIMIT 1",
            [],
            |r| {
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    Lost {
                        dropped_events: r.get::<_, i64>(1)? as u64,
                        unpaired_exits: r.get::<_, i64>(2)? as u64,
                        map_full: r.get::<_, i64>(3)? as u64,
                        undecodable: r.get::<_, i64>(4)? as u64,
                    },
                ))
            },
        )
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok((0, Lost::default())),
            e => Err(e),
        })
        .map_err(|e| rec.error(e))
}

/// The time of the newest row of any kind: where a recording cut off mid-way ends.
pub(crate) fn latest_ns(rec: &Recording) -> Q<i64> {
    count(
        rec,
        "SELECT MAX(t) FROM (SELECT MAX(ts_ns) AS t FROM samples
           UNION ALL SELECT MAX(ts_ns) FROM mem_events
           UNION ALL SELECT MAX(ts_ns) FROM counters
           UNION ALL SELECT MAX(end_ns) FROM requests
           UNION ALL SELECT MAX(arrived_ns) FROM log_lines)",
    )
}

pub(crate) fn count(rec: &Recording, sql: &str) -> Q<i64> {
    rec.conn()
        .query_row(sql, [], |r| r.get::<_, Option<i64>>(0))
        .map(Option::unwrap_or_default)
        .map_err(|e| rec.error(e))
}

impl Report {
    /// Builds the whole report from a recording.
    pub fn build(rec: &Recording) -> Q<Self> {
        let parse = |v: Option<String>| v.and_then(|s| s.parse::<i64>().ok());
        let started_ns = parse(rec.meta(meta::STARTED_NS)?).unwrap_or(0);
        let ended_meta = parse(rec.meta(meta::ENDED_NS)?);
        let complete = ended_meta.is_some();
        // A recording cut off mid-way ends at its last committed row.
        let ended_ns = match ended_meta {
            Some(e) => e,
            None => latest_ns(rec)?.max(started_ns),
        };
        let (events, lost) = lost(rec)?;
        let totals = memory(rec, None)?;
        let unattributed_faults = totals
            .page_faults
            .saturating_sub(count(rec, "SELECT SUM(faults) FROM requests")? as u64);
        let processes = processes(rec)?;
        let mut per_process = Vec::with_capacity(processes.len());
        for p in &processes {
            per_process.push(ProcessMemory {
                pid: p.pid,
                comm: p.comm.clone(),
                memory: memory(rec, Some(p.pid))?,
            });
        }
        let non_http = counts_by(rec, "SELECT kind, COUNT(*) FROM non_http GROUP BY kind", [])?;
        Ok(Self {
            memwatch_version: rec.meta(meta::MEMWATCH_VERSION)?.unwrap_or_default(),
            schema_version: rec.schema_version(),
            complete,
            started_ns,
            ended_ns,
            duration_s: (ended_ns - started_ns).max(0) as f64 / 1e9,
            processes,
            dropped_events: lost.dropped_events,
            lost,
            events,
            memory: totals,
            per_process,
            threads: threads(rec)?,
            requests: count(rec, "SELECT COUNT(*) FROM requests")? as u64,
            non_http,
            approximate_requests: count(rec, "SELECT COUNT(*) FROM requests WHERE NOT exact")?
                as u64,
            unattributed: Unattributed {
                mem_calls: count(
                    rec,
                    "SELECT COUNT(*) FROM mem_events WHERE request_id IS NULL",
                )? as u64,
                vm_bytes: count(
                    rec,
                    "SELECT SUM(vm_delta) FROM mem_events WHERE ok AND request_id IS NULL",
                )?,
                page_faults: unattributed_faults,
            },
            endpoints: endpoints(rec, Range::default())?,
            access_log: access_log(rec)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 95.0), 95);
        assert_eq!(percentile(&[7i64], 95.0), 7);
        assert_eq!(percentile::<i64>(&[], 50.0), 0);
    }

    /// Above EXACT_LIMIT, totals come from the rollup plus the edge rows: they must equal what
    /// reading every row gives, for ranges that cut seconds in the middle.
    #[test]
    fn rollup_totals_equal_exact_totals() {
        use crate::{
            model::{RequestRow, Row},
            recording::Writer,
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let writer = Writer::create(&path, &[]).unwrap();
        let n = EXACT_LIMIT + 20_000;
        let rows = (0..n)
            .map(|i| {
                Row::Request(Box::new(RequestRow {
                    id: i + 1,
                    conn: 1,
                    method: Some(if i % 3 == 0 { "POST" } else { "GET" }.into()),
                    route: Some(format!("/r{}", i % 5)),
                    status: (i % 7 != 0).then_some(200 + (i % 4) as u16 * 100),
                    start_ns: i * 1_000_000,
                    end_ns: i * 1_000_000 + 500,
                    vm_bytes: i % 1000,
                    rss_bytes: i % 333,
                    faults: (i % 9) as u64,
                    exact: i % 11 != 0,
                    ..RequestRow::default()
                }))
            })
            .collect();
        writer.send(rows);
        writer.finish().unwrap();
        let rec = Recording::open(&path).unwrap();
        let range = Range {
            from_ns: Some(1_234_567_891),
            to_ns: Some(68_765_432_109),
        };
        let fast = endpoints(&rec, range).unwrap();
        let mut exact = BTreeMap::new();
        add_rows(&rec, &mut exact, range.bounds(), 1, true).unwrap();
        assert_eq!(fast.len(), exact.len());
        let total: u64 = fast.iter().map(|e| e.requests).sum();
        assert!(total > EXACT_LIMIT as u64, "the rollup path ran");
        for e in &fast {
            let x = &exact[&(e.method.clone(), e.route.clone())];
            assert_eq!(e.requests, x.n, "{}", e.route);
            assert_eq!(e.statuses, x.statuses);
            assert_eq!((e.vm_bytes, e.rss_bytes), (x.vm_sum, x.rss_sum));
            assert_eq!((e.page_faults, e.approximate), (x.faults, x.approximate));
        }
    }
}
