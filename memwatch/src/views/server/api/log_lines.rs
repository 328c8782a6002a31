//! `GET /api/log_lines`: the access-log lines of the range that were rejected or matched no
//! request, newest first.

use std::sync::Arc;

use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::{
    ApiResult, MS, answer,
    query::{BadParam, Checked, Given},
};
use crate::{
    recording::{
        Recording,
        query::{Range, log_lines::LogLineEntry},
    },
    views::server::{ApiError, AppState},
};

pub(super) async fn handler(
    State(state): State<Arc<AppState>>,
    Checked(q): Checked<LogLinesQuery>,
) -> ApiResult<LogLines> {
    answer(&state, move |rec| LogLines::read(rec, q.range, q.limit)).await
}

/// `from`, `to` and `limit`.
#[derive(Debug, Deserialize)]
#[serde(try_from = "Given")]
pub(super) struct LogLinesQuery {
    range: Range,
    limit: i64,
}

impl TryFrom<Given> for LogLinesQuery {
    type Error = BadParam;

    fn try_from(p: Given) -> Result<Self, BadParam> {
        Ok(Self {
            range: p.range()?,
            limit: p.limit()?,
        })
    }
}

/// `GET /api/log_lines`.
#[derive(Debug, Serialize)]
pub(crate) struct LogLines {
    pub lines: Vec<LogLine>,
    /// Lines within `limit` that did not decode and were left out.
    pub undecodable_rows: u64,
}

#[derive(Debug, Serialize)]
pub(crate) struct LogLine {
    pub arrived_ms: i64,
    pub method: Option<String>,
    pub ok: bool,
    pub raw: Option<String>,
    pub reason: Option<String>,
    pub status: Option<i64>,
    pub target: Option<String>,
    pub ts_ms: Option<i64>,
}

impl From<LogLineEntry> for LogLine {
    fn from(l: LogLineEntry) -> Self {
        let LogLineEntry {
            arrived_ns,
            ts_ns,
            ok,
            reason,
            raw,
            method,
            target,
            status,
        } = l;
        Self {
            arrived_ms: arrived_ns / MS,
            method,
            ok,
            raw,
            reason,
            status,
            target,
            ts_ms: ts_ns.map(|t| t / MS),
        }
    }
}

impl LogLines {
    /// The `limit` newest lines that arrived in `range` and were rejected or matched nothing.
    pub(crate) fn read(rec: &Recording, range: Range, limit: i64) -> Result<Self, ApiError> {
        let (from, to) = (range.from_ns.unwrap_or(0), range.to_ns.unwrap_or(i64::MAX));
        let lines = rec.unmatched_or_rejected_lines(from, to, limit)?;
        Ok(Self {
            lines: lines.rows.into_iter().map(LogLine::from).collect(),
            undecodable_rows: lines.undecodable,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::server::api::testing::{assert_sorted, checked, undecodable_rows};

    #[test]
    fn limit_is_checked() {
        let limit = |query: &str| checked::<LogLinesQuery>(query).map(|q| q.limit);
        assert_eq!(limit(""), Ok(200));
        assert_eq!(limit("limit=5000"), Ok(5000));
        assert_eq!(
            limit("limit=5001"),
            Err(r#"limit="5001" is not an integer from 1 to 5000"#.to_owned())
        );
    }

    /// The answer sends its keys sorted.
    #[test]
    fn keys_are_sorted() {
        assert_sorted(&LogLines {
            lines: vec![LogLine {
                arrived_ms: 1,
                method: None,
                ok: false,
                raw: Some("garbage".into()),
                reason: Some("missing_timestamp".into()),
                status: None,
                target: None,
                ts_ms: None,
            }],
            undecodable_rows: 0,
        });
    }

    /// The second line is left out and counted.
    #[test]
    fn undecodable_rows_are_counted() {
        let (_dir, rec) = undecodable_rows();
        let lines = LogLines::read(&rec, Range::default(), 200).unwrap();
        assert_eq!((lines.lines.len(), lines.undecodable_rows), (2, 1));
    }
}
