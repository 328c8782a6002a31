//! Go's sampled heap (`heap_samples`, schema 9): what each route's requests kept of the
//! allocations the runtime sampled, judged only where the collector has had its say.

use std::collections::BTreeMap;

use rusqlite::params;

use crate::{error::RecordingError, recording::Recording, recording::schema::HAS_HEAP_SAMPLES};

/// One route's sampled allocations over the judged part of a range (whole: a row that does not
/// decode fails the query).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouteSamples {
    /// The route's requests that ended in the judged part of the range.
    pub requests: u64,
    /// Allocations sampled in those requests, and of those, still held at the range's end.
    pub samples: u64,
    pub kept_samples: u64,
    /// The bytes the kept samples stand for.
    pub kept_bytes: u64,
    /// The variance of `kept_bytes` as an estimate of the bytes really kept, in bytes²: each
    /// sample of `size` bytes weighed `w` adds `w (w - size)` (a Horvitz–Thompson estimate).
    pub kept_variance: f64,
}

/// The routes' sampled figures, by (method, route), with how much of the range was judged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SampledRange {
    pub routes: BTreeMap<(String, String), RouteSamples>,
    /// Processes whose samples fell in the range, and of those, ones with too few collections
    /// by its end to judge anything (fewer than three).
    pub processes: u64,
    pub processes_unjudged: u64,
    /// Samples taken outside any request in the judged part.
    pub outside: u64,
}

impl Recording {
    /// Go's sampled allocations in `[from_ns, to_ns]`, per route. A sample is judged kept when
    /// the sweeper had not freed it by `to_ns`, but only samples taken before the third-last
    /// collection the runtime reported by then (`live_heap`, source `go`) are judged: the
    /// sweep of the cycle after it has ended by the last one's marking, and any of those
    /// objects that was garbage by the cycle after has been freed. Requests are counted over
    /// the same judged part. Empty before schema 9.
    pub fn heap_samples(&self, from_ns: i64, to_ns: i64) -> Result<SampledRange, RecordingError> {
        let mut out = SampledRange::default();
        if self.schema_version() < HAS_HEAP_SAMPLES {
            return Ok(out);
        }
        let mut pids = Vec::new();
        self.each(
            "SELECT DISTINCT pid FROM heap_samples WHERE ts_ns >= ?1 AND ts_ns <= ?2",
            params![from_ns, to_ns],
            |r| r.get::<_, u32>(0),
            |p| pids.push(p),
        )?;
        for pid in pids {
            out.processes += 1;
            let mut cut = None;
            self.each(
                "SELECT ts_ns FROM live_heap WHERE pid = ?1 AND source = 'go' AND ts_ns <= ?2
                 ORDER BY ts_ns DESC LIMIT 1 OFFSET 2",
                params![pid, to_ns],
                |r| r.get::<_, i64>(0),
                |t| cut = Some(t),
            )?;
            let Some(cut) = cut.filter(|&c| c > from_ns) else {
                out.processes_unjudged += 1;
                continue;
            };
            self.each(
                "SELECT request_id IS NULL, COALESCE(method, '-'), COALESCE(route, '-'), size, weight,
                        freed_ns FROM heap_samples
                 WHERE pid = ?1 AND ts_ns >= ?2 AND ts_ns < ?3",
                params![pid, from_ns, cut],
                |r| {
                    Ok((
                        r.get::<_, bool>(0)?,
                        (r.get::<_, String>(1)?, r.get::<_, String>(2)?),
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, Option<i64>>(5)?,
                    ))
                },
                |(outside, (method, route), size, weight, freed)| {
                    if outside {
                        out.outside += 1;
                        return;
                    }
                    let r = out.routes.entry((method, route)).or_default();
                    r.samples += 1;
                    if freed.is_none_or(|f| f > to_ns) {
                        let (size, weight) = (size.max(0) as u64, weight.max(0) as u64);
                        r.kept_samples += 1;
                        r.kept_bytes += weight;
                        r.kept_variance += weight as f64 * weight.saturating_sub(size) as f64;
                    }
                },
            )?;
            self.each(
                "SELECT COALESCE(method, '-'), COALESCE(route, '-'), COUNT(*) FROM requests
                 WHERE pid = ?1 AND end_ns >= ?2 AND end_ns < ?3 GROUP BY 1, 2",
                params![pid, from_ns, cut],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                },
                |(method, route, n)| {
                    out.routes.entry((method, route)).or_default().requests += n.max(0) as u64;
                },
            )?;
        }
        Ok(out)
    }
}
