//! HTTP requests: the `requests` view and the writer's per-second `request_rollup`.

use rusqlite::params;

use super::Decoded;
use crate::{error::RecordingError, recording::Recording, units::NS_PER_SEC};

/// What one request was charged, for per-route figures.
#[derive(Debug, Clone)]
pub struct RequestFigures {
    /// `-` when unknown.
    pub method: String,
    /// `-` when unknown.
    pub route: String,
    pub status: Option<i64>,
    pub vm_bytes: i64,
    pub rss_bytes: i64,
    pub faults: i64,
    pub mem_calls: i64,
    pub exact: bool,
    pub duration_ns: i64,
    pub id: i64,
    pub end_ns: i64,
    /// Retained-memory figures (0 in recordings without them).
    pub grown: i64,
    pub released: i64,
    /// The heap probes did not follow it (schema 7; false before).
    pub sampled_out: bool,
}

/// Requests of one method, route and status summed over whole seconds of the rollup.
#[derive(Debug, Clone)]
pub struct RollupGroup {
    /// `-` when unknown.
    pub method: String,
    /// `-` when unknown.
    pub route: String,
    /// -1 when unknown.
    pub status: i64,
    pub requests: i64,
    pub approximate: i64,
    pub vm_bytes: i64,
    pub rss_bytes: i64,
    pub faults: i64,
    pub mem_calls: i64,
    /// Of `requests`, how many the heap probes did not follow (0 before schema 7).
    pub sampled_out: i64,
}

/// Where [`Recording::status_class_counts`] counts requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountFrom {
    /// Every request row: exact to the nanosecond.
    Rows,
    /// The per-second rollup: each second counts in the bucket where it starts. Fast for ranges
    /// with many requests.
    Rollup,
}

/// Requests ending in one time bucket with one status class.
#[derive(Debug, Clone, Copy)]
pub struct StatusClassCount {
    /// The bucket's index from the start of the range (may fall outside the range's buckets at
    /// its edges).
    pub bucket: i64,
    /// `status / 100`, 0 without a status.
    pub class: i64,
    pub requests: i64,
}

/// Which requests [`Recording::newest_requests`] lists.
#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    /// Requests that ended in `[from_ns, to_ns]`.
    pub from_ns: i64,
    pub to_ns: i64,
    /// Only this route, when given.
    pub route: Option<String>,
    /// Only this method, when given.
    pub method: Option<String>,
}

/// One request as the page lists it.
#[derive(Debug, Clone)]
pub struct RequestEntry {
    pub id: i64,
    pub start_ns: i64,
    pub end_ns: i64,
    pub pid: i64,
    pub tid: i64,
    pub method: Option<String>,
    pub target: Option<String>,
    pub route: Option<String>,
    pub host: Option<String>,
    pub status: Option<i64>,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub vm_bytes: i64,
    pub rss_bytes: i64,
    pub exact: bool,
    /// From the access-log line joined to the request, if any.
    pub user_agent: Option<String>,
    /// Bytes it made resident, each page once (`None` without retained figures, before
    /// schema 3).
    pub grown: Option<i64>,
    /// Of those, released by the end of the filter's range (to the second): before it ended,
    /// by itself, or later by any thread. `None` before schema 3.
    pub released: Option<i64>,
}

/// The requests a [`RequestFilter`] selects, `?1`..`?4` being its fields in order (a macro, so
/// that the queries using it are constants).
macro_rules! filter {
    () => {
        "end_ns BETWEEN ?1 AND ?2 AND (?3 IS NULL OR route = ?3) AND (?4 IS NULL OR method = ?4)"
    };
}

impl Recording {
    /// Every request.
    pub fn request_count(&self) -> Result<u64, RecordingError> {
        Ok(self.count("SELECT COUNT(*) FROM requests", [])? as u64)
    }

    /// Completed requests per process that served them. Whole.
    pub fn requests_by_process(
        &self,
    ) -> Result<std::collections::BTreeMap<u32, u64>, RecordingError> {
        Ok(self
            .counts_by(
                "SELECT CAST(pid AS TEXT), COUNT(*) FROM requests GROUP BY pid",
                [],
            )?
            .into_iter()
            .filter_map(|(pid, n)| Some((pid.parse().ok()?, n)))
            .collect())
    }

    /// Requests per second, method and route, from the rollup: (second, method, route, count).
    pub fn route_counts_per_second(
        &self,
        first_s: i64,
        last_s: i64,
    ) -> Result<Vec<(i64, String, String, i64)>, RecordingError> {
        self.rows(
            "SELECT second, method, route, SUM(n) FROM request_rollup
             WHERE second BETWEEN ?1 AND ?2 GROUP BY 1, 2, 3",
            [first_s, last_s],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
    }

    /// All requests, and those the heap probes did not follow (0 before schema 7), from the
    /// rollup.
    pub fn sampled_out_count(&self) -> Result<(u64, u64), RecordingError> {
        if self.schema_version() < crate::recording::schema::HAS_SAMPLED_OUT {
            return Ok((self.request_count()?, 0));
        }
        let n = self.count("SELECT SUM(n) FROM request_rollup", [])?;
        let out = self.count("SELECT SUM(sampled_out) FROM request_rollup", [])?;
        Ok((n.max(0) as u64, out.max(0) as u64))
    }

    /// Requests whose memory could only be charged approximately.
    pub fn approximate_request_count(&self) -> Result<u64, RecordingError> {
        Ok(self.count("SELECT COUNT(*) FROM requests WHERE NOT exact", [])? as u64)
    }

    /// Page faults charged to requests.
    pub fn request_faults(&self) -> Result<u64, RecordingError> {
        Ok(self.count("SELECT SUM(faults) FROM requests", [])? as u64)
    }

    /// Requests in the rollup's seconds `[first_s, last_s]`: cheap, and an upper bound on the
    /// requests that ended in any range within those seconds.
    pub fn rollup_request_count(&self, first_s: i64, last_s: i64) -> Result<i64, RecordingError> {
        self.count(
            "SELECT COALESCE(SUM(n), 0) FROM request_rollup WHERE second BETWEEN ?1 AND ?2",
            [first_s, last_s],
        )
    }

    /// The rollup's seconds `[first_s, last_s]` summed per method, route and status. Whole.
    pub fn rollup_groups(
        &self,
        first_s: i64,
        last_s: i64,
    ) -> Result<Vec<RollupGroup>, RecordingError> {
        let sql = if self.schema_version() >= crate::recording::schema::HAS_SAMPLED_OUT {
            "SELECT method, route, status, SUM(n), SUM(approx), SUM(vm_sum), SUM(rss_sum),
                    SUM(faults), SUM(mem_calls), SUM(sampled_out)
             FROM request_rollup WHERE second BETWEEN ?1 AND ?2
             GROUP BY method, route, status"
        } else {
            "SELECT method, route, status, SUM(n), SUM(approx), SUM(vm_sum), SUM(rss_sum),
                    SUM(faults), SUM(mem_calls), 0
             FROM request_rollup WHERE second BETWEEN ?1 AND ?2
             GROUP BY method, route, status"
        };
        self.rows(sql, [first_s, last_s], |r| {
            Ok(RollupGroup {
                method: r.get(0)?,
                route: r.get(1)?,
                status: r.get(2)?,
                requests: r.get(3)?,
                approximate: r.get(4)?,
                vm_bytes: r.get(5)?,
                rss_bytes: r.get(6)?,
                faults: r.get(7)?,
                mem_calls: r.get(8)?,
                sampled_out: r.get(9)?,
            })
        })
    }

    /// Hands `f` the figures of every `every`-th request (by id) that ended in
    /// `[from_ns, to_ns]`, without collecting them. Whole.
    pub fn each_request_figures(
        &self,
        from_ns: i64,
        to_ns: i64,
        every: i64,
        f: impl FnMut(RequestFigures),
    ) -> Result<(), RecordingError> {
        // Recordings before schema 3 have no `grown` and `released` columns, before 7 no
        // `sampled_out`.
        let version = self.schema_version();
        let sql = if version >= crate::recording::schema::HAS_SAMPLED_OUT {
            "SELECT COALESCE(method, '-'), COALESCE(route, '-'), status, vm_bytes, rss_bytes,
                    faults, mem_calls, exact, end_ns - start_ns, id, end_ns, grown, released,
                    sampled_out
             FROM requests WHERE end_ns >= ?1 AND end_ns <= ?2 AND id % ?3 = 0"
        } else if version >= crate::recording::schema::HAS_ORIGIN {
            "SELECT COALESCE(method, '-'), COALESCE(route, '-'), status, vm_bytes, rss_bytes,
                    faults, mem_calls, exact, end_ns - start_ns, id, end_ns, grown, released, 0
             FROM requests WHERE end_ns >= ?1 AND end_ns <= ?2 AND id % ?3 = 0"
        } else {
            "SELECT COALESCE(method, '-'), COALESCE(route, '-'), status, vm_bytes, rss_bytes,
                    faults, mem_calls, exact, end_ns - start_ns, id, end_ns, 0, 0, 0
             FROM requests WHERE end_ns >= ?1 AND end_ns <= ?2 AND id % ?3 = 0"
        };
        self.each(
            sql,
            params![from_ns, to_ns, every.max(1)],
            |r| {
                Ok(RequestFigures {
                    method: r.get(0)?,
                    route: r.get(1)?,
                    status: r.get(2)?,
                    vm_bytes: r.get(3)?,
                    rss_bytes: r.get(4)?,
                    faults: r.get(5)?,
                    mem_calls: r.get(6)?,
                    exact: r.get(7)?,
                    duration_ns: r.get(8)?,
                    id: r.get(9)?,
                    end_ns: r.get(10)?,
                    grown: r.get(11)?,
                    released: r.get(12)?,
                    sampled_out: r.get(13)?,
                })
            },
            f,
        )
    }

    /// Requests that ended in `[from_ns, to_ns]`, counted per bucket of `width_ns` from
    /// `from_ns` and per status class. [`Decoded`].
    pub fn status_class_counts(
        &self,
        from_ns: i64,
        to_ns: i64,
        width_ns: i64,
        source: CountFrom,
    ) -> Result<Decoded<StatusClassCount>, RecordingError> {
        let sql = match source {
            CountFrom::Rollup => {
                "SELECT (second * 1000000000 - ?1) / ?3, CASE WHEN status < 0 THEN 0
                        ELSE status / 100 END, SUM(n) FROM request_rollup
                 WHERE second BETWEEN ?1 / 1000000000 AND ?2 / 1000000000 GROUP BY 1, 2"
            }
            CountFrom::Rows => {
                "SELECT (end_ns - ?1) / ?3, COALESCE(status / 100, 0), COUNT(*) FROM requests
                 WHERE end_ns BETWEEN ?1 AND ?2 GROUP BY 1, 2"
            }
        };
        self.decoded("requests", sql, [from_ns, to_ns, width_ns], |r| {
            Ok(StatusClassCount {
                bucket: r.get(0)?,
                class: r.get(1)?,
                requests: r.get(2)?,
            })
        })
    }

    /// How many requests `filter` selects.
    pub fn matching_request_count(&self, filter: &RequestFilter) -> Result<i64, RecordingError> {
        let RequestFilter {
            from_ns,
            to_ns,
            route,
            method,
        } = filter;
        self.count(
            concat!("SELECT COUNT(*) FROM requests WHERE ", filter!()),
            params![from_ns, to_ns, route, method],
        )
    }

    /// The `limit` newest requests `filter` selects, newest first, with what each made resident
    /// and released by the end of the range. [`Decoded`].
    pub fn newest_requests(
        &self,
        filter: &RequestFilter,
        limit: i64,
    ) -> Result<Decoded<RequestEntry>, RecordingError> {
        let RequestFilter {
            from_ns,
            to_ns,
            route,
            method,
        } = filter;
        // Recordings before schema 3 have no `grown` and `released` columns.
        let origin = self.has_origin();
        // One statement but for its last two columns.
        macro_rules! listing {
            ($grown_released:literal) => {
                concat!(
                    "SELECT id, start_ns, end_ns, pid, tid, method, target, route, host, status,
                            bytes_in, bytes_out, vm_bytes, rss_bytes, exact,
                            (SELECT user_agent FROM log_lines WHERE request_id = requests.id LIMIT 1),
                            ",
                    $grown_released,
                    " FROM requests WHERE ",
                    filter!(),
                    " ORDER BY end_ns DESC, id DESC LIMIT ?5"
                )
            };
        }
        let sql = if origin {
            listing!("grown, released")
        } else {
            listing!("NULL, NULL")
        };
        let mut newest = self.decoded(
            "requests",
            sql,
            params![from_ns, to_ns, route, method, limit],
            |r| {
                Ok(RequestEntry {
                    id: r.get(0)?,
                    start_ns: r.get(1)?,
                    end_ns: r.get(2)?,
                    pid: r.get(3)?,
                    tid: r.get(4)?,
                    method: r.get(5)?,
                    target: r.get(6)?,
                    route: r.get(7)?,
                    host: r.get(8)?,
                    status: r.get(9)?,
                    bytes_in: r.get(10)?,
                    bytes_out: r.get(11)?,
                    vm_bytes: r.get(12)?,
                    rss_bytes: r.get(13)?,
                    exact: r.get(14)?,
                    user_agent: r.get(15)?,
                    grown: r.get(16)?,
                    released: r.get(17)?,
                })
            },
        )?;
        if origin && !newest.rows.is_empty() {
            // What was released after each request ended, by the end of the range: one pass
            // over the releases of requests that ended between the oldest and newest listed.
            let oldest = newest.rows.iter().map(|r| r.end_ns).min().unwrap_or(0);
            let latest = newest.rows.iter().map(|r| r.end_ns).max().unwrap_or(0);
            let later = self.later_releases_by_request(oldest, latest, *to_ns)?;
            for r in &mut newest.rows {
                if let (Some(released), Some(more)) = (r.released.as_mut(), later.get(&r.id)) {
                    *released = released.saturating_add(*more);
                }
            }
        }
        Ok(newest)
    }

    /// Captured requests that no access-log line was joined to.
    pub fn requests_without_log_line(&self) -> Result<u64, RecordingError> {
        Ok(self.count(
            "SELECT COUNT(*) FROM requests r WHERE NOT EXISTS
               (SELECT 1 FROM log_lines l WHERE l.request_id = r.id)",
            [],
        )? as u64)
    }
}

/// The rollup's seconds that hold `[from_ns, to_ns]`.
pub fn rollup_seconds(from_ns: i64, to_ns: i64) -> (i64, i64) {
    (from_ns.div_euclid(NS_PER_SEC), to_ns.div_euclid(NS_PER_SEC))
}
