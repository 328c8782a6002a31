//! Every question the views ask a recording, as SQL in one place with typed answers.
//!
//! Each query is a method on [`Recording`] that returns plain rows; the views build their models
//! (the report, the profile, the API's responses) from those rows and never see SQL. Queries are
//! grouped by what they read: the run itself here (meta, processes, counters, non-HTTP traffic),
//! [`live_heap`], [`heap_samples`],
//! [`memory`], [`requests`] and [`log_lines`].
//!
//! Every SQLite error becomes a [`RecordingError`] naming the file in one place (the private
//! helpers at the bottom of this file, which every query goes through), so that query methods and
//! their callers use plain `?`.
//!
//! A row that does not decode (a value of the wrong type, which memwatch never writes: a damaged
//! or hand-edited file) is handled in one of two ways, and each query that returns rows says
//! which:
//! - **whole**: the first such row fails the query. The report's figures are whole or absent.
//! - **[`Decoded`]**: such rows are skipped and counted, and the first one's error is logged.
//!   The page's lists keep showing what can be read, and say how much could not.
//!
//! Single values (counts, sums, `meta`) always fail on a value that does not decode.

pub mod heap_samples;
pub mod live_heap;
pub mod log_lines;
pub mod memory;
pub mod requests;
pub mod retained;
pub mod stacks;

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension as _, Params, Row};
use serde::Serialize;

use super::Recording;
use crate::{
    error::RecordingError,
    model::{ProcessOrigin, meta},
};

/// A time range in wall-clock ns; `None` ends are open.
#[derive(Debug, Clone, Copy, Default)]
pub struct Range {
    pub from_ns: Option<i64>,
    pub to_ns: Option<i64>,
}

impl Range {
    /// This range, ending no later than `end` when there is one: a range that starts after
    /// `end` holds nothing.
    pub fn until(self, end: Option<i64>) -> Self {
        let Some(end) = end else { return self };
        let to_ns = self.to_ns.map_or(end, |t| t.min(end));
        Self {
            from_ns: self.from_ns,
            to_ns: Some(to_ns),
        }
    }

    /// Both ends, open ends as the extreme values.
    pub fn bounds(self) -> (i64, i64) {
        (
            self.from_ns.unwrap_or(i64::MIN),
            self.to_ns.unwrap_or(i64::MAX),
        )
    }
}

/// The rows of a query that skips rows it cannot decode, and how many it skipped.
#[derive(Debug)]
pub struct Decoded<T> {
    pub rows: Vec<T>,
    /// Rows skipped because a column did not decode as the type the query expects.
    pub undecodable: u64,
}

/// When the recording started and, if memwatch finished it, ended (wall-clock ns, from `meta`).
#[derive(Debug, Clone, Copy)]
pub struct Span {
    /// 0 when the recording does not say.
    pub started_ns: i64,
    /// `None` for a recording memwatch did not finish (killed, crashed).
    pub ended_ns: Option<i64>,
}

/// The latest `counters` row: how many ring-buffer records were read, and what was lost.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    pub events: u64,
    pub lost: Lost,
}

/// What the capture lost. Serialised as is in the report JSON (`lost`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Lost {
    pub dropped_events: u64,
    pub unpaired_exits: u64,
    pub map_full: u64,
    pub undecodable: u64,
}

/// A traced process. Serialised as is in the report JSON (`processes`).
#[derive(Debug, Clone, Serialize)]
pub struct Process {
    pub pid: u32,
    pub ppid: Option<u32>,
    pub comm: String,
    pub cmdline: Option<String>,
    pub origin: ProcessOrigin,
    pub started_ns: Option<i64>,
    pub exited_ns: Option<i64>,
    pub exit_code: Option<i32>,
}

/// `processes.origin` as memwatch writes it ([`ProcessOrigin::name`]); any other value does not
/// decode.
impl rusqlite::types::FromSql for ProcessOrigin {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        let name = value.as_str()?;
        Self::from_name(name).ok_or_else(|| {
            rusqlite::types::FromSqlError::Other(
                format!("{:?} is not a process origin", crate::units::cut(name, 40)).into(),
            )
        })
    }
}

impl Recording {
    /// A `meta` value.
    pub fn meta(&self, key: &str) -> Result<Option<String>, RecordingError> {
        self.optional_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
    }

    /// A `meta` value that holds an integer; `None` when absent or not an integer.
    pub fn meta_i64(&self, key: &str) -> Result<Option<i64>, RecordingError> {
        Ok(self.meta(key)?.and_then(|v| v.parse::<i64>().ok()))
    }

    /// When memwatch stopped the command it started (wall ns), if it did: after that moment the
    /// command's exit frees everything, which is no route's release, so the routes' figures
    /// end there.
    pub fn command_stopped_ns(&self) -> Result<Option<i64>, RecordingError> {
        self.meta_i64(meta::COMMAND_STOPPED_NS)
    }

    /// The range the routes' figures of `range` cover: it ends no later than the moment memwatch
    /// stopped the command it started ([`Self::command_stopped_ns`]).
    pub fn figures_range(&self, range: Range) -> Result<Range, RecordingError> {
        Ok(range.until(self.command_stopped_ns()?))
    }

    /// Start and end as recorded in `meta`.
    pub fn span(&self) -> Result<Span, RecordingError> {
        Ok(Span {
            started_ns: self.meta_i64(meta::STARTED_NS)?.unwrap_or(0),
            ended_ns: self.meta_i64(meta::ENDED_NS)?,
        })
    }

    /// The time of the newest row of any kind (0 in an empty recording): where a recording cut
    /// off mid-way ends.
    pub fn latest_ns(&self) -> Result<i64, RecordingError> {
        self.count(
            "SELECT MAX(t) FROM (SELECT MAX(ts_ns) AS t FROM samples
               UNION ALL SELECT MAX(ts_ns) FROM mem_events
               UNION ALL SELECT MAX(ts_ns) FROM counters
               UNION ALL SELECT MAX(end_ns) FROM requests
               UNION ALL SELECT MAX(arrived_ns) FROM log_lines)",
            [],
        )
    }

    /// The latest counters; zeros when none were written. Whole.
    pub fn counters(&self) -> Result<Counters, RecordingError> {
        Ok(self
            .optional_row(
                "SELECT events, dropped, unpaired_exits, map_full, undecodable FROM counters
                 ORDER BY ts_ns DESC LIMIT 1",
                [],
                |r| {
                    Ok(Counters {
                        events: r.get::<_, i64>(0)? as u64,
                        lost: Lost {
                            dropped_events: r.get::<_, i64>(1)? as u64,
                            unpaired_exits: r.get::<_, i64>(2)? as u64,
                            map_full: r.get::<_, i64>(3)? as u64,
                            undecodable: r.get::<_, i64>(4)? as u64,
                        },
                    })
                },
            )?
            .unwrap_or_default())
    }

    /// Every traced process, in the order they started. Whole.
    pub fn processes(&self) -> Result<Vec<Process>, RecordingError> {
        self.rows(
            "SELECT pid, ppid, comm, cmdline, origin, started_ns, exited_ns, exit_code
             FROM processes ORDER BY COALESCE(started_ns, 0), pid",
            [],
            |r| {
                Ok(Process {
                    pid: r.get(0)?,
                    ppid: r.get(1)?,
                    comm: r.get(2)?,
                    cmdline: r.get(3)?,
                    origin: r.get(4)?,
                    started_ns: r.get(5)?,
                    exited_ns: r.get(6)?,
                    exit_code: r.get(7)?,
                })
            },
        )
    }

    /// Traffic that was not HTTP/1.x, counted by kind. Whole.
    pub fn non_http_counts(&self) -> Result<BTreeMap<String, u64>, RecordingError> {
        self.counts_by("SELECT kind, COUNT(*) FROM non_http GROUP BY kind", [])
    }

    /// [`Self::non_http_counts`] for traffic seen in `[from_ns, to_ns]`. Whole.
    pub fn non_http_counts_between(
        &self,
        from_ns: i64,
        to_ns: i64,
    ) -> Result<BTreeMap<String, u64>, RecordingError> {
        self.counts_by(
            "SELECT kind, COUNT(*) FROM non_http WHERE ts_ns BETWEEN ?1 AND ?2 GROUP BY kind",
            [from_ns, to_ns],
        )
    }
}

// The helpers every query goes through. `with_conn` is the one place a rusqlite error becomes a
// `RecordingError`; statements are prepared through the connection's cache, since the page asks
// the same questions every second.
impl Recording {
    /// Runs `f` on the connection, naming this file in any error.
    fn with_conn<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, RecordingError> {
        f(self.conn()).map_err(|e| self.error(e))
    }

    /// `sql`'s rows, each made by `map`; the first row that does not decode fails the query.
    fn rows<T>(
        &self,
        sql: &str,
        params: impl Params,
        map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, RecordingError> {
        let mut out = Vec::new();
        self.each(sql, params, map, |row| out.push(row))?;
        Ok(out)
    }

    /// Hands each of `sql`'s rows, made by `map`, to `f` without collecting them; the first row
    /// that does not decode fails the query.
    fn each<T>(
        &self,
        sql: &str,
        params: impl Params,
        mut map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
        mut f: impl FnMut(T),
    ) -> Result<(), RecordingError> {
        self.with_conn(|conn| {
            let mut stmt = conn.prepare_cached(sql)?;
            let mut rows = stmt.query(params)?;
            while let Some(row) = rows.next()? {
                f(map(row)?);
            }
            Ok(())
        })
    }

    /// `sql`'s rows, each made by `map`, skipping rows `map` cannot decode: they are counted,
    /// and the first one's error is logged as a warning naming `what` was read. A failure of
    /// SQLite itself (a corrupt page, a locked file) still fails the query.
    fn decoded<T>(
        &self,
        what: &'static str,
        sql: &str,
        params: impl Params,
        mut map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Decoded<T>, RecordingError> {
        let mut decoded = Decoded {
            rows: Vec::new(),
            undecodable: 0,
        };
        let mut first_error = None;
        self.with_conn(|conn| {
            let mut stmt = conn.prepare_cached(sql)?;
            let mut rows = stmt.query(params)?;
            // `next` fails only when SQLite does; `map` when a value does not decode.
            while let Some(row) = rows.next()? {
                match map(row) {
                    Ok(value) => decoded.rows.push(value),
                    Err(e) => {
                        decoded.undecodable += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            Ok(())
        })?;
        if let Some(error) = first_error {
            tracing::warn!(
                recording = %self.path().display(),
                what,
                skipped = decoded.undecodable,
                %error,
                "skipped rows that do not decode"
            );
        }
        Ok(decoded)
    }

    /// The one row of `sql` made by `map`, or `None` when it returns no row.
    fn optional_row<T>(
        &self,
        sql: &str,
        params: impl Params,
        map: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>, RecordingError> {
        self.with_conn(|conn| conn.prepare_cached(sql)?.query_row(params, map).optional())
    }

    /// The single value of a `SELECT COUNT(*) ...`, `SELECT SUM(...) ...` or the like; NULL (a
    /// sum over no rows) is 0.
    fn count(&self, sql: &str, params: impl Params) -> Result<i64, RecordingError> {
        Ok(self
            .optional_row(sql, params, |r| r.get::<_, Option<i64>>(0))?
            .flatten()
            .unwrap_or_default())
    }

    /// `SELECT key, COUNT(*) ... GROUP BY key` into a map.
    fn counts_by(
        &self,
        sql: &str,
        params: impl Params,
    ) -> Result<BTreeMap<String, u64>, RecordingError> {
        let mut out = BTreeMap::new();
        self.each(
            sql,
            params,
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)),
            |(key, n)| {
                out.insert(key, n);
            },
        )?;
        Ok(out)
    }
}
