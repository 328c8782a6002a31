//! Retained memory (schema 3): what requests made resident, what of it was released and when,
//! and memory made outside any request. Recordings older than schema 3 have none of it: every
//! query here answers empty for them (the views say the figures are missing).

use super::requests::rollup_seconds;
use crate::{error::RecordingError, recording::Recording};

/// One route's requests that ended in one second, with what they made resident and released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetainedSecond {
    /// `-` when unknown.
    pub method: String,
    /// `-` when unknown.
    pub route: String,
    /// The second the requests ended in (end_ns / 1e9).
    pub second: i64,
    pub requests: i64,
    /// Bytes made resident (each page once).
    pub grown: i64,
    /// Of those, released before each request ended.
    pub released_own: i64,
}

/// Releases credited to one route's requests that ended in one second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaterRelease {
    pub method: String,
    pub route: String,
    /// The second the requests ended in.
    pub req_second: i64,
    pub bytes: i64,
}

/// Memory made or released outside any request, and releases of memory of requests that ended
/// before a range, summed over the range.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutsideTotals {
    pub grown: i64,
    pub released: i64,
    /// Released in the range, made resident by requests that ended before it.
    pub released_from_before: i64,
}

/// Address space mapped by one route's requests that ended in a range, and of it, unmapped by
/// the end of the range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmRetained {
    pub method: String,
    pub route: String,
    pub grown: i64,
    pub released: i64,
}

/// The latest counters of what origin tracking could not attribute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OriginLoss {
    pub untracked_bytes: i64,
    pub unmatched_release_bytes: i64,
}

impl Recording {
    /// Address space mapped by requests that ended in the whole seconds of `[from_ns, to_ns]`
    /// and still mapped at their end, per route, with what of it was unmapped by `to_ns` (to the
    /// second). Empty before schema 4.
    pub fn vm_retained(&self, from_ns: i64, to_ns: i64) -> Result<Vec<VmRetained>, RecordingError> {
        if !self.has_vm_origin() {
            return Ok(Vec::new());
        }
        let (first_s, last_s) = rollup_seconds(from_ns, to_ns);
        self.rows(
            "SELECT method, route, SUM(grown), SUM(released) FROM vm_origin_rollup
             WHERE req_second BETWEEN ?1 AND ?2 AND second <= ?2
             GROUP BY 1, 2",
            [first_s, last_s],
            |r| {
                Ok(VmRetained {
                    method: r.get(0)?,
                    route: r.get(1)?,
                    grown: r.get(2)?,
                    released: r.get(3)?,
                })
            },
        )
    }

    /// Requests that ended in the whole seconds of `[from_ns, to_ns]`, per method, route and
    /// second, from the writer's rollup (for ranges too large to read request by request). Whole.
    pub fn retained_seconds(
        &self,
        from_ns: i64,
        to_ns: i64,
    ) -> Result<Vec<RetainedSecond>, RecordingError> {
        if !self.has_origin() {
            return Ok(Vec::new());
        }
        let (first_s, last_s) = rollup_seconds(from_ns, to_ns);
        self.rows(
            "SELECT method, route, second, SUM(n), SUM(grown), SUM(released)
             FROM request_rollup WHERE second BETWEEN ?1 AND ?2
             GROUP BY 1, 2, 3 ORDER BY 3",
            [first_s, last_s],
            |r| {
                Ok(RetainedSecond {
                    method: r.get(0)?,
                    route: r.get(1)?,
                    second: r.get(2)?,
                    requests: r.get(3)?,
                    grown: r.get(4)?,
                    released_own: r.get(5)?,
                })
            },
        )
    }

    /// Bytes released up to `to_ns` (to the second) per request, of requests that ended in
    /// `[from_ns, to_ns]`. Whole.
    pub fn later_releases_by_request(
        &self,
        from_ns: i64,
        to_ns: i64,
    ) -> Result<std::collections::HashMap<i64, i64>, RecordingError> {
        if !self.has_origin() {
            return Ok(std::collections::HashMap::new());
        }
        let (_, last_s) = rollup_seconds(from_ns, to_ns);
        let rows = self.rows(
            "SELECT request_id, SUM(bytes) FROM releases
             WHERE request_id != 0 AND req_end_ns BETWEEN ?1 AND ?2 AND second <= ?3
             GROUP BY request_id",
            [from_ns, to_ns, last_s],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
        )?;
        Ok(rows.into_iter().collect())
    }

    /// Releases up to `to_ns` of memory made by requests that ended in `[from_ns, to_ns]`, per
    /// method, route and second of the requests' end (to the second). Whole.
    pub fn later_releases(
        &self,
        from_ns: i64,
        to_ns: i64,
    ) -> Result<Vec<LaterRelease>, RecordingError> {
        if !self.has_origin() {
            return Ok(Vec::new());
        }
        let (first_s, last_s) = rollup_seconds(from_ns, to_ns);
        self.rows(
            "SELECT method, route, req_second, SUM(bytes) FROM release_rollup
             WHERE route != '' AND req_second BETWEEN ?1 AND ?2 AND second <= ?3
             GROUP BY 1, 2, 3",
            [first_s, last_s, last_s],
            |r| {
                Ok(LaterRelease {
                    method: r.get(0)?,
                    route: r.get(1)?,
                    req_second: r.get(2)?,
                    bytes: r.get(3)?,
                })
            },
        )
    }

    /// Outside-request growth and releases in `[from_ns, to_ns]` (to the second), and releases
    /// in it of memory made by requests that ended before it.
    pub fn outside_totals(
        &self,
        from_ns: i64,
        to_ns: i64,
    ) -> Result<OutsideTotals, RecordingError> {
        if !self.has_origin() {
            return Ok(OutsideTotals::default());
        }
        let (first_s, last_s) = rollup_seconds(from_ns, to_ns);
        Ok(OutsideTotals {
            grown: self.count(
                "SELECT SUM(bytes) FROM outside_growth WHERE second BETWEEN ?1 AND ?2",
                [first_s, last_s],
            )?,
            released: self.count(
                "SELECT SUM(bytes) FROM release_rollup
                 WHERE route = '' AND second BETWEEN ?1 AND ?2",
                [first_s, last_s],
            )?,
            released_from_before: self.count(
                "SELECT SUM(bytes) FROM release_rollup
                 WHERE route != '' AND second BETWEEN ?1 AND ?2 AND req_second < ?1",
                [first_s, last_s],
            )?,
        })
    }

    /// The change of the summed resident set between the first and the last sample in
    /// `[from_ns, to_ns]` (0 with fewer than two samples).
    pub fn rss_change(&self, from_ns: i64, to_ns: i64) -> Result<i64, RecordingError> {
        self.count(
            "SELECT (SELECT SUM(rss_bytes) FROM samples WHERE ts_ns =
                      (SELECT MAX(ts_ns) FROM samples WHERE ts_ns BETWEEN ?1 AND ?2))
                  - (SELECT SUM(rss_bytes) FROM samples WHERE ts_ns =
                      (SELECT MIN(ts_ns) FROM samples WHERE ts_ns BETWEEN ?1 AND ?2))",
            [from_ns, to_ns],
        )
    }

    /// The latest counters of what origin tracking could not attribute.
    pub fn origin_loss(&self) -> Result<OriginLoss, RecordingError> {
        if !self.has_origin() {
            return Ok(OriginLoss::default());
        }
        Ok(self
            .optional_row(
                "SELECT untracked_bytes, unmatched_release_bytes FROM counters
                 ORDER BY ts_ns DESC LIMIT 1",
                [],
                |r| {
                    Ok(OriginLoss {
                        untracked_bytes: r.get(0)?,
                        unmatched_release_bytes: r.get(1)?,
                    })
                },
            )?
            .unwrap_or_default())
    }
}
