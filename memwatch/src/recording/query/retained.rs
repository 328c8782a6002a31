//! Retained memory (schema 3): what requests made resident, what of it was released and when,
//! and memory made outside any request. Recordings older than schema 3 have none of it: every
//! query here answers empty for them (the views say the figures are missing).

use std::collections::BTreeMap;

use rusqlite::params;

use super::requests::rollup_seconds;
use crate::{error::RecordingError, recording::Recording, units::NS_PER_SEC};

/// One route's requests that ended in one second, with what they made resident and released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetainedSecond {
    /// `-` when unknown.
    pub method: String,
    /// `-` when unknown.
    pub route: String,
    /// The second the requests ended in (end_ns / 1e9).
    pub second: i64,
    /// Requests the heap probes followed (all of them in recordings before schema 7): the
    /// sampled-out ones hold no memory of their own, so per-request figures leave them out.
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
    /// `None` before schema 6, where `unmatched_release_bytes` holds these bytes too.
    pub unseen_release_bytes: Option<i64>,
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
        let sql = if self.schema_version() >= crate::recording::schema::HAS_SAMPLED_OUT {
            "SELECT method, route, second, SUM(n - sampled_out), SUM(grown), SUM(released)
             FROM request_rollup WHERE second BETWEEN ?1 AND ?2
             GROUP BY 1, 2, 3 ORDER BY 3"
        } else {
            "SELECT method, route, second, SUM(n), SUM(grown), SUM(released)
             FROM request_rollup WHERE second BETWEEN ?1 AND ?2
             GROUP BY 1, 2, 3 ORDER BY 3"
        };
        self.rows(sql, [first_s, last_s], |r| {
            Ok(RetainedSecond {
                method: r.get(0)?,
                route: r.get(1)?,
                second: r.get(2)?,
                requests: r.get(3)?,
                grown: r.get(4)?,
                released_own: r.get(5)?,
            })
        })
    }

    /// Bytes released after they ended and up to `until_ns` (to the second) per request, of
    /// requests that ended in `[from_ns, to_ns]`. Whole.
    pub fn later_releases_by_request(
        &self,
        from_ns: i64,
        to_ns: i64,
        until_ns: i64,
    ) -> Result<std::collections::HashMap<i64, i64>, RecordingError> {
        if !self.has_origin() {
            return Ok(std::collections::HashMap::new());
        }
        let (_, last_s) = rollup_seconds(from_ns, until_ns);
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
        let unseen = self.schema_version() >= crate::recording::schema::HAS_UNSEEN;
        let sql = if unseen {
            "SELECT untracked_bytes, unmatched_release_bytes, unseen_release_bytes FROM counters
             ORDER BY ts_ns DESC LIMIT 1"
        } else {
            "SELECT untracked_bytes, unmatched_release_bytes, NULL FROM counters
             ORDER BY ts_ns DESC LIMIT 1"
        };
        Ok(self
            .optional_row(sql, [], |r| {
                Ok(OriginLoss {
                    untracked_bytes: r.get(0)?,
                    unmatched_release_bytes: r.get(1)?,
                    unseen_release_bytes: r.get(2)?,
                })
            })?
            .unwrap_or(OriginLoss {
                unseen_release_bytes: unseen.then_some(0),
                ..OriginLoss::default()
            }))
    }
}

/// One route's retained memory over time (see [`RetainedOverTime`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSeries {
    /// `-` when unknown.
    pub method: String,
    /// `-` when unknown.
    pub route: String,
    /// Retained bytes at the end of each step.
    pub retained: Vec<i64>,
}

/// Retained memory over time, in steps: at the end of each step, what the requests that ended
/// by then made resident, less what they released by then (themselves or later, by any
/// thread), per route; and the same for memory made outside any request. Each value counts
/// everything since the recording started, not only the range's steps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetainedOverTime {
    /// Where each step ends (ns, its last nanosecond, the last step's clamped to the range's
    /// end): its values are those at that time. The first step also holds everything before it.
    pub ends: Vec<i64>,
    /// The routes that retain most at the end of the last step (and retain anything), most
    /// first.
    pub routes: Vec<RouteSeries>,
    /// Every other route, summed.
    pub other: Vec<i64>,
    /// Memory made resident outside any request, less its releases.
    pub outside: Vec<i64>,
}

/// Above this many requests in a range's seconds, retained memory over time is read from the
/// per-second rollups (steps of whole seconds) rather than from each request's end.
pub const FINE_RETAINED_LIMIT: i64 = 200_000;

const NS_PER_MS: i64 = 1_000_000;

impl Recording {
    /// Retained memory per route at the end of each of at most `max_steps` steps over
    /// `[from_ns, to_ns]`. Requests count from the moment they ended, so that the series
    /// step with the resident set: where a step would be shorter than a second, the steps
    /// are whole milliseconds from the millisecond of `from_ns`, each request counted in the step of its end
    /// (unless the range's seconds hold more than [`FINE_RETAINED_LIMIT`] requests). Releases
    /// of requests' memory after they ended, and memory made and released outside requests,
    /// are stored per second: they count at the end of their second (in the last step when
    /// that is after `to_ns`). Otherwise the steps are whole seconds from the second of
    /// `from_ns`, one per second or as few seconds each as keep them within `max_steps` (the
    /// last may be shorter), each holding its last second whole (as the series are
    /// cumulative, a step's value is its last second's). The `top` routes that retain most at
    /// the end have series of their own; the others are summed. Whole; empty without retained
    /// figures.
    pub fn retained_over_time(
        &self,
        from_ns: i64,
        to_ns: i64,
        max_steps: usize,
        top: usize,
    ) -> Result<RetainedOverTime, RecordingError> {
        if !self.has_origin() || max_steps == 0 {
            return Ok(RetainedOverTime::default());
        }
        let to_ns = to_ns.max(from_ns);
        let (first_s, last_s) = rollup_seconds(from_ns, to_ns);
        // Short steps start at the range's first whole millisecond, so that their ends, in
        // ms, are distinct. The range's nanoseconds from there, both ends included:
        let start = from_ns.saturating_sub(from_ns.rem_euclid(NS_PER_MS));
        let span = (i128::from(to_ns) - i128::from(start) + 1) as u128;
        let step_ms = span.div_ceil(max_steps as u128).div_ceil(NS_PER_MS as u128);
        let fine =
            step_ms < 1000 && self.rollup_request_count(first_s, last_s)? <= FINE_RETAINED_LIMIT;
        // `n` steps of `width` units (of `unit` ns: ns when fine, else seconds) from `origin`
        // (in units); a time in ns counts in step (time / unit - origin) / width.
        let (unit, origin, width, n) = if fine {
            let width = (step_ms.max(1) as i64).saturating_mul(NS_PER_MS);
            let n = (span.div_ceil(width as u128) as usize).clamp(1, max_steps);
            (1, start, width, n)
        } else {
            let seconds = last_s.saturating_sub(first_s).saturating_add(1).max(1) as u64;
            let width = seconds.div_ceil(max_steps as u64);
            let n = (seconds.div_ceil(width) as usize).clamp(1, max_steps);
            (NS_PER_SEC, first_s, width as i64, n)
        };
        let mut out = RetainedOverTime {
            ends: (1..=n as i64)
                .map(|k| {
                    origin
                        .saturating_add(k.saturating_mul(width))
                        .saturating_mul(unit)
                        .saturating_sub(1)
                        .min(to_ns)
                })
                .collect(),
            other: vec![0; n],
            outside: vec![0; n],
            ..RetainedOverTime::default()
        };
        // Times before the range fall into the first step, after it into the last (SQLite
        // divides towards zero).
        let step = |k: i64| (k.max(0) as usize).min(n - 1);
        // Requests: per second from the rollup, whole, unless `fine` reads the range's seconds
        // request by request, each at its end.
        let (rollup_to_s, rows_from_ns, rows_to_ns) = if fine {
            (
                first_s.saturating_sub(1),
                first_s.saturating_mul(NS_PER_SEC),
                to_ns,
            )
        } else {
            (last_s, 1, 0)
        };
        // The top routes by their sum up to the end; everything else with NULLs.
        let mut routes: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
        self.each(
            // Per route and time: what the requests that ended then made resident and kept to
            // their end, less releases then of memory requests kept past their end.
            "WITH changes(method, route, ts, bytes) AS (
                 SELECT method, route, second * 1000000000 + 999999999, grown - released
                 FROM request_rollup WHERE second <= ?3
                 UNION ALL
                 SELECT COALESCE(method, '-'), COALESCE(route, '-'), end_ns, grown - released
                 FROM requests WHERE end_ns BETWEEN ?4 AND ?5
                 UNION ALL
                 SELECT method, route, second * 1000000000 + 999999999, -bytes FROM release_rollup
                 WHERE route != '' AND second <= ?2),
             top(method, route) AS (
                 SELECT method, route FROM changes GROUP BY method, route
                 HAVING SUM(bytes) > 0 ORDER BY SUM(bytes) DESC, method, route LIMIT ?7)
             SELECT t.method, t.route, MAX(0, (c.ts / ?8 - ?1) / ?6), SUM(c.bytes)
             FROM changes c LEFT JOIN top t ON t.method = c.method AND t.route = c.route
             GROUP BY 1, 2, 3",
            params![
                origin,
                last_s,
                rollup_to_s,
                rows_from_ns,
                rows_to_ns,
                width,
                top as i64,
                unit
            ],
            |r| {
                Ok((
                    r.get::<_, Option<String>>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            },
            |(method, route, k, bytes)| {
                let series = match (method, route) {
                    (Some(method), Some(route)) => {
                        routes.entry((method, route)).or_insert_with(|| vec![0; n])
                    }
                    _ => &mut out.other,
                };
                let slot = &mut series[step(k)];
                *slot = slot.saturating_add(bytes);
            },
        )?;
        self.each(
            "SELECT MAX(0, ((second * 1000000000 + 999999999) / ?4 - ?1) / ?3), SUM(bytes) FROM (
                 SELECT second, bytes FROM outside_growth WHERE second <= ?2
                 UNION ALL
                 SELECT second, -bytes FROM release_rollup WHERE route = '' AND second <= ?2)
             GROUP BY 1",
            params![origin, last_s, width, unit],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
            |(k, bytes)| {
                let slot = &mut out.outside[step(k)];
                *slot = slot.saturating_add(bytes);
            },
        )?;
        // Changes per step into values at the end of each step (saturating: the changes come
        // from the file).
        let cumulate = |v: &mut [i64]| {
            let mut sum = 0i64;
            for x in v.iter_mut() {
                sum = sum.saturating_add(*x);
                *x = sum;
            }
        };
        cumulate(&mut out.other);
        cumulate(&mut out.outside);
        out.routes = routes
            .into_iter()
            .map(|((method, route), mut retained)| {
                cumulate(&mut retained);
                RouteSeries {
                    method,
                    route,
                    retained,
                }
            })
            .collect();
        // The order `top` chose them in: most retained at the end, then by name.
        out.routes.sort_by(|a, b| {
            b.retained
                .last()
                .cmp(&a.retained.last())
                .then_with(|| a.method.cmp(&b.method))
                .then_with(|| a.route.cmp(&b.route))
        });
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::{
        model::{ReleaseRow, RequestRow, Row},
        recording::Writer,
    };

    use crate::units::NS_PER_SEC as S;
    const KIB: i64 = 1024;
    /// The first second of the range the tests ask about.
    const B: i64 = 1_800_000_000;

    /// A request of `route` that ended at `end_ns`, made `grown` resident and released
    /// `released` of it before it ended.
    fn request(id: i64, route: &str, end_ns: i64, grown: i64, released: i64) -> RequestRow {
        RequestRow {
            id,
            method: Some("GET".into()),
            target: Some(route.into()),
            route: Some(route.into()),
            status: Some(200),
            start_ns: end_ns - 1_000_000,
            end_ns,
            exact: true,
            grown: grown as u64,
            released: released as u64,
            ..RequestRow::default()
        }
    }

    /// A release at `ts_ns` of memory `request` kept past its end (None: made outside any).
    fn release(ts_ns: i64, request: Option<&RequestRow>, bytes: i64) -> Row {
        Row::Release(Box::new(ReleaseRow {
            ts_ns,
            pid: 1,
            request_id: request.map_or(0, |r| r.id),
            request_end_ns: request.map_or(0, |r| r.end_ns),
            method: request.map(|_| "GET".into()),
            route: request.and_then(|r| r.route.as_deref().map(Into::into)),
            bytes: bytes as u64,
        }))
    }

    /// Seconds B-10 to B+4: `/leak` keeps 64 KiB at B, B+2 and B+4 (and 4 KiB before the range),
    /// `/reuse` 100 KiB once at B, `/deferred` keeps 512 KiB from B+1 until another thread
    /// releases it at B+3, `/churn` releases all it grows itself; 40 KiB are made outside any
    /// request at B and 8 KiB of it released at B+2.
    fn write(path: &Path) {
        let writer = Writer::create(path, &[]).unwrap();
        let deferred = request(6, "/deferred", (B + 1) * S + 200_000_000, 512 * KIB, 0);
        let rows = vec![
            Row::Request(request(1, "/leak", (B - 10) * S, 4 * KIB, 0)),
            Row::Request(request(2, "/leak", B * S + 500_000_000, 64 * KIB, 0)),
            Row::Request(request(3, "/leak", (B + 2) * S + 1, 64 * KIB, 0)),
            Row::Request(request(4, "/leak", (B + 4) * S + 9, 64 * KIB, 0)),
            Row::Request(request(5, "/reuse", B * S + 900_000_000, 100 * KIB, 0)),
            release((B + 3) * S + 100_000_000, Some(&deferred), 512 * KIB),
            Row::Request(deferred),
            Row::Request(request(
                7,
                "/churn",
                (B + 1) * S + 700_000_000,
                2048 * KIB,
                2048 * KIB,
            )),
            Row::OutsideGrowth {
                ts_ns: B * S + 100_000_000,
                pid: 1,
                bytes: 40 * 1024,
            },
            release((B + 2) * S + 200_000_000, None, 8 * KIB),
        ];
        writer.send(rows);
        writer.finish().unwrap();
    }

    fn series(over: &RetainedOverTime) -> Vec<(&str, &[i64])> {
        over.routes
            .iter()
            .map(|r| (r.route.as_str(), r.retained.as_slice()))
            .collect()
    }

    /// Per second, retained memory is what each route's requests kept by then, less what was
    /// released of it by then; the top routes by what they retain at the end have their own
    /// series, in that order, and the rest is summed, as is memory made outside requests.
    #[test]
    fn retained_over_time_per_second_and_per_step() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        write(&path);
        let rec = Recording::open(&path).unwrap();
        let (from, to) = (B * S + 123, (B + 5) * S + 999_999_999);

        // Six steps for six seconds: one a second, each at its last nanosecond.
        let all = rec.retained_over_time(from, to, 6, 5).unwrap();
        assert_eq!(
            all.ends,
            (B + 1..=B + 6).map(|s| s * S - 1).collect::<Vec<_>>()
        );
        assert_eq!(
            series(&all),
            vec![
                ("/leak", &[68, 68, 132, 132, 196, 196].map(|k| k * KIB)[..]),
                ("/reuse", &[100; 6].map(|k| k * KIB)[..]),
            ]
        );
        // /deferred keeps nothing at the end and /churn nothing at all: summed.
        assert_eq!(all.other, [0, 512, 512, 0, 0, 0].map(|k| k * KIB));
        assert_eq!(all.outside, [40, 40, 32, 32, 32, 32].map(|k| k * KIB));

        let one = rec.retained_over_time(from, to, 6, 1).unwrap();
        assert_eq!(
            series(&one),
            vec![("/leak", &[68, 68, 132, 132, 196, 196].map(|k| k * KIB)[..])]
        );
        assert_eq!(one.other, [100, 612, 612, 100, 100, 100].map(|k| k * KIB));

        // Four steps at most for six seconds: two seconds each, each holding its last second.
        let steps = rec.retained_over_time(from, to, 4, 5).unwrap();
        assert_eq!(steps.ends, [B + 2, B + 4, B + 6].map(|s| s * S - 1));
        assert_eq!(steps.routes[0].retained, [68, 132, 196].map(|k| k * KIB));
        assert_eq!(steps.other, [512, 0, 0].map(|k| k * KIB));
        assert_eq!(steps.outside, [40, 32, 32].map(|k| k * KIB));

        // Three steps at most for five seconds: two seconds each, the last one shorter.
        let five = rec.retained_over_time(from, to - S, 3, 5).unwrap();
        assert_eq!(five.ends, [B + 2, B + 4, B + 5].map(|s| s * S - 1));
        assert_eq!(five.routes[0].retained, [68, 132, 196].map(|k| k * KIB));

        // A range that ends at B+3 sees neither later requests nor later releases, and starts
        // from what was retained before it. Its steps are shorter than a second: 667 ms from
        // its start, each request in the step of its end (/leak's at B+2 in the second), a
        // release at the end of its second (/deferred's at B+3.1 in the last).
        let early = rec
            .retained_over_time((B + 1) * S, (B + 3) * S + 5, 3, 5)
            .unwrap();
        let ms = 1_000_000;
        assert_eq!(
            early.ends,
            [
                (B + 1) * S + 667 * ms - 1,
                (B + 1) * S + 1334 * ms - 1,
                (B + 3) * S + 5
            ]
        );
        assert_eq!(
            series(&early),
            vec![
                ("/leak", &[68, 132, 132].map(|k| k * KIB)[..]),
                ("/reuse", &[100; 3].map(|k| k * KIB)[..]),
            ]
        );
        assert_eq!(early.other, [512, 512, 0].map(|k| k * KIB));

        assert_eq!(
            rec.retained_over_time(from, to, 6, 0).unwrap().routes,
            vec![]
        );
    }

    /// A recording before schema 3 has no retained figures: every series is empty.
    #[test]
    fn retained_over_time_is_empty_before_schema_3() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        write(&path);
        rusqlite::Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 2)
            .unwrap();
        let rec = Recording::open(&path).unwrap();
        assert_eq!(
            rec.retained_over_time(0, i64::MAX / 2, 1000, 5).unwrap(),
            RetainedOverTime::default()
        );
    }
}
