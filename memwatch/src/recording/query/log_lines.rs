//! Access logs: the followed logs' settings (`meta`) and their lines (`log_lines`).

use std::collections::BTreeMap;

use rusqlite::params;

use super::Decoded;
use crate::{error::RecordingError, model::meta, recording::Recording};

/// The access logs a recording followed, as `meta` records them.
#[derive(Debug, Clone)]
pub struct AccessLogSettings {
    /// The paths as given on the command line, in order.
    pub sources: Vec<String>,
    /// Each source's format, in the same order; `None` when no line arrived to detect it.
    pub formats: Vec<Option<String>>,
    /// False with `--no-ebpf`: lines became the requests instead of being joined to them.
    pub ebpf: bool,
}

/// How the lines fared.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogLineCounts {
    pub lines: u64,
    pub parsed: u64,
    /// Parsed lines whose request field is not a valid HTTP request.
    pub invalid_requests: u64,
    /// Lines joined to a request.
    pub matched: u64,
    /// Parsed lines with a valid request that no request was joined to.
    pub unmatched_lines: u64,
}

/// A log line as the page lists it.
#[derive(Debug, Clone)]
pub struct LogLineEntry {
    pub arrived_ns: i64,
    pub ts_ns: Option<i64>,
    pub ok: bool,
    pub reason: Option<String>,
    pub raw: Option<String>,
    pub method: Option<String>,
    pub target: Option<String>,
    pub status: Option<i64>,
}

impl Recording {
    /// The followed access logs, or `None` when the recording followed none.
    pub fn access_log_settings(&self) -> Result<Option<AccessLogSettings>, RecordingError> {
        let sources: Vec<String> = self
            .meta(meta::ACCESS_LOGS)?
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        if sources.is_empty() {
            return Ok(None);
        }
        let mut formats = Vec::with_capacity(sources.len());
        for i in 0..sources.len() {
            formats.push(self.meta(&meta::access_log_format(i))?);
        }
        // Absent in recordings older than `--no-ebpf`: those all used eBPF.
        let ebpf = self.meta(meta::EBPF)?.is_none_or(|v| v == "true");
        Ok(Some(AccessLogSettings {
            sources,
            formats,
            ebpf,
        }))
    }

    /// How many lines arrived, parsed, matched, and so on.
    pub fn log_line_counts(&self) -> Result<LogLineCounts, RecordingError> {
        let count = |sql: &str| Ok::<_, RecordingError>(self.count(sql, [])? as u64);
        Ok(LogLineCounts {
            lines: count("SELECT COUNT(*) FROM log_lines")?,
            parsed: count("SELECT COUNT(*) FROM log_lines WHERE ok")?,
            invalid_requests: count("SELECT COUNT(*) FROM log_lines WHERE ok AND method IS NULL")?,
            matched: count("SELECT COUNT(*) FROM log_lines WHERE request_id IS NOT NULL")?,
            unmatched_lines: count(
                "SELECT COUNT(*) FROM log_lines
                 WHERE ok AND method IS NOT NULL AND request_id IS NULL",
            )?,
        })
    }

    /// Rejected lines counted by reason. Whole.
    pub fn rejected_reasons(&self) -> Result<BTreeMap<String, u64>, RecordingError> {
        self.counts_by(
            "SELECT reason, COUNT(*) FROM log_lines WHERE NOT ok GROUP BY reason",
            [],
        )
    }

    /// The text of the first `limit` rejected lines (fewer when some kept no text).
    /// [`Decoded`].
    pub fn rejected_examples(&self, limit: usize) -> Result<Decoded<String>, RecordingError> {
        let Decoded { rows, undecodable } = self.decoded(
            "log_lines",
            "SELECT raw FROM log_lines WHERE NOT ok ORDER BY id LIMIT ?1",
            [limit as i64],
            |r| r.get::<_, Option<String>>(0),
        )?;
        Ok(Decoded {
            rows: rows.into_iter().flatten().collect(),
            undecodable,
        })
    }

    /// Parsed lines with a valid request that arrived in `[from_ns, to_ns]` and no request was
    /// joined to.
    pub fn unmatched_line_count_between(
        &self,
        from_ns: i64,
        to_ns: i64,
    ) -> Result<i64, RecordingError> {
        self.count(
            "SELECT COUNT(*) FROM log_lines WHERE ok AND method IS NOT NULL
             AND request_id IS NULL AND arrived_ns BETWEEN ?1 AND ?2",
            [from_ns, to_ns],
        )
    }

    /// The `limit` newest lines that arrived in `[from_ns, to_ns]` and were rejected or matched
    /// no request, newest first. [`Decoded`].
    pub fn unmatched_or_rejected_lines(
        &self,
        from_ns: i64,
        to_ns: i64,
        limit: i64,
    ) -> Result<Decoded<LogLineEntry>, RecordingError> {
        self.decoded(
            "log_lines",
            "SELECT arrived_ns, ts_ns, ok, reason, raw, method, target, status
             FROM log_lines WHERE arrived_ns BETWEEN ?1 AND ?2
               AND (NOT ok OR (method IS NOT NULL AND request_id IS NULL))
             ORDER BY arrived_ns DESC, id DESC LIMIT ?3",
            params![from_ns, to_ns, limit],
            |r| {
                Ok(LogLineEntry {
                    arrived_ns: r.get(0)?,
                    ts_ns: r.get(1)?,
                    ok: r.get(2)?,
                    reason: r.get(3)?,
                    raw: r.get(4)?,
                    method: r.get(5)?,
                    target: r.get(6)?,
                    status: r.get(7)?,
                })
            },
        )
    }
}
