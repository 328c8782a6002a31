//! `GET /api/requests`: the individual requests of a route (or all), newest first, with what
//! each made resident and still keeps.

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
        query::requests::{RequestEntry, RequestFilter},
    },
    views::server::{ApiError, AppState},
};

pub(super) async fn handler(
    State(state): State<Arc<AppState>>,
    Checked(q): Checked<RequestsQuery>,
) -> ApiResult<Requests> {
    answer(&state, move |rec| Requests::read(rec, &q.filter, q.limit)).await
}

/// `from`, `to`, `route` and `method` (any text) as the filter, and `limit`.
#[derive(Debug, Deserialize)]
#[serde(try_from = "Given")]
pub(super) struct RequestsQuery {
    filter: RequestFilter,
    limit: i64,
}

impl TryFrom<Given> for RequestsQuery {
    type Error = BadParam;

    fn try_from(mut p: Given) -> Result<Self, BadParam> {
        let range = p.range()?;
        let limit = p.limit()?;
        Ok(Self {
            filter: RequestFilter {
                from_ns: range.from_ns.unwrap_or(0),
                to_ns: range.to_ns.unwrap_or(i64::MAX),
                route: p.text("route"),
                method: p.text("method"),
            },
            limit,
        })
    }
}

/// `GET /api/requests`.
#[derive(Debug, Serialize)]
pub(crate) struct Requests {
    pub requests: Vec<Request>,
    /// Every request the filter selects, listed or not.
    pub total: i64,
    /// Fewer requests listed than `total`: past `limit`, or left out as undecodable.
    pub truncated: bool,
    /// Requests within `limit` that did not decode and were left out.
    pub undecodable_rows: u64,
}

#[derive(Debug, Serialize)]
pub(crate) struct Request {
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub duration_ms: f64,
    pub end_ms: i64,
    pub exact: bool,
    /// Bytes it made resident, each page once (null without retained figures).
    pub grown_bytes: Option<i64>,
    pub host: Option<String>,
    pub id: i64,
    pub method: Option<String>,
    pub pid: i64,
    /// Of `grown_bytes`, released by the end of the range (to the second), by itself or later
    /// by any thread.
    pub released_bytes: Option<i64>,
    /// What it kept: `grown_bytes` − `released_bytes`.
    pub retained_bytes: Option<i64>,
    pub route: Option<String>,
    /// Page faults × the page size while it ran: gross, 0 for memory reused without a fault.
    pub rss_bytes: i64,
    pub start_ms: i64,
    pub status: Option<i64>,
    pub target: Option<String>,
    pub tid: i64,
    pub user_agent: Option<String>,
    pub vm_bytes: i64,
}

impl From<RequestEntry> for Request {
    fn from(r: RequestEntry) -> Self {
        let RequestEntry {
            id,
            start_ns,
            end_ns,
            pid,
            tid,
            method,
            target,
            route,
            host,
            status,
            bytes_in,
            bytes_out,
            vm_bytes,
            rss_bytes,
            exact,
            user_agent,
            grown,
            released,
        } = r;
        Self {
            bytes_in,
            bytes_out,
            duration_ms: end_ns.saturating_sub(start_ns) as f64 / 1e6,
            end_ms: end_ns / MS,
            exact,
            grown_bytes: grown,
            host,
            id,
            method,
            pid,
            released_bytes: released,
            retained_bytes: grown.zip(released).map(|(g, r)| g.saturating_sub(r)),
            route,
            rss_bytes,
            start_ms: start_ns / MS,
            status,
            target,
            tid,
            user_agent,
            vm_bytes,
        }
    }
}

impl Requests {
    /// The `limit` newest requests `filter` selects, and how many it selects.
    pub(crate) fn read(
        rec: &Recording,
        filter: &RequestFilter,
        limit: i64,
    ) -> Result<Self, ApiError> {
        let total = rec.matching_request_count(filter)?;
        let newest = rec.newest_requests(filter, limit)?;
        let requests: Vec<Request> = newest.rows.into_iter().map(Request::from).collect();
        Ok(Self {
            truncated: total > requests.len() as i64,
            requests,
            total,
            undecodable_rows: newest.undecodable,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::server::api::testing::{assert_sorted, checked, undecodable_rows};

    #[test]
    fn the_filter_and_limit_are_checked() {
        let q = checked::<RequestsQuery>("route=/leak&method=GET&limit=5&from=1").unwrap();
        assert_eq!(q.limit, 5);
        assert_eq!(
            (q.filter.from_ns, q.filter.to_ns),
            (MS, i64::MAX),
            "an open end is the extreme"
        );
        assert_eq!(q.filter.route.as_deref(), Some("/leak"));
        assert_eq!(q.filter.method.as_deref(), Some("GET"));
        let q = checked::<RequestsQuery>("").unwrap();
        assert_eq!((q.limit, q.filter.from_ns, q.filter.route), (200, 0, None));
        for raw in ["0", "5001", "all"] {
            assert_eq!(
                checked::<RequestsQuery>(&format!("limit={raw}")).unwrap_err(),
                format!("limit={raw:?} is not an integer from 1 to 5000")
            );
        }
    }

    /// The answer, with every optional field filled, sends its keys sorted.
    #[test]
    fn keys_are_sorted() {
        assert_sorted(&Requests {
            requests: vec![Request {
                bytes_in: 1,
                bytes_out: 1,
                duration_ms: 0.1,
                end_ms: 1,
                exact: true,
                grown_bytes: Some(8192),
                host: Some("localhost".into()),
                id: 1,
                method: Some("GET".into()),
                pid: 1,
                released_bytes: Some(4096),
                retained_bytes: Some(4096),
                route: Some("/".into()),
                rss_bytes: 0,
                start_ms: 0,
                status: Some(200),
                target: Some("/?q".into()),
                tid: 2,
                user_agent: Some("curl".into()),
                vm_bytes: 0,
            }],
            total: 1,
            truncated: false,
            undecodable_rows: 0,
        });
    }

    /// A route's request list says what each request made resident and what it still keeps at
    /// the end of the range (to the second, as the routes' figures), whatever its page faults
    /// were: a request served from reused heap takes none.
    #[test]
    fn requests_carry_what_each_made_resident_and_keeps() {
        use crate::{
            model::{ReleaseRow, RequestRow, Row},
            recording::Writer,
        };
        const B: i64 = 1_800_000_000_000;
        const KIB: u64 = 1024;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let writer = Writer::create(&path, &[]).unwrap();
        let request = |id: i64, end_ms: i64, rss: i64, grown: u64, released: u64| RequestRow {
            id,
            pid: 1,
            tid: 1,
            method: Some("GET".into()),
            route: Some("/leak".into()),
            target: Some(format!("/leak?n={id}").into()),
            status: Some(200),
            start_ns: (end_ms - 1) * MS,
            end_ns: end_ms * MS,
            exact: true,
            rss_bytes: rss,
            grown,
            released,
            ..RequestRow::default()
        };
        // 1 faults in 64 KiB and keeps them; 2 takes 32 KiB of reused heap (no fault) and frees
        // 8 KiB of it before it ends; 3 keeps 16 KiB until another thread releases them at
        // B+2.5 s.
        let first = request(1, B + 100, 65_536, 64 * KIB, 0);
        let second = request(2, B + 200, 0, 32 * KIB, 8 * KIB);
        let third = request(3, B + 300, 16_384, 16 * KIB, 0);
        let release = Row::Release(Box::new(ReleaseRow {
            ts_ns: (B + 2_500) * MS,
            pid: 1,
            request_id: 3,
            request_end_ns: third.end_ns,
            method: Some("GET".into()),
            route: Some("/leak".into()),
            bytes: 16 * KIB,
        }));
        writer.send(vec![
            Row::Request(first),
            Row::Request(second),
            Row::Request(third),
            release,
        ]);
        writer.finish().unwrap();
        let rec = Recording::open(&path).unwrap();
        let figures = |to_ms: i64| {
            let filter = RequestFilter {
                from_ns: B * MS,
                to_ns: to_ms * MS,
                route: Some("/leak".into()),
                method: Some("GET".into()),
            };
            let answer = serde_json::to_value(Requests::read(&rec, &filter, 200).unwrap()).unwrap();
            answer["requests"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    (
                        r["id"].as_i64().unwrap(),
                        r["rss_bytes"].as_i64().unwrap(),
                        r["grown_bytes"].as_i64().unwrap(),
                        r["released_bytes"].as_i64().unwrap(),
                        r["retained_bytes"].as_i64().unwrap(),
                    )
                })
                .collect::<Vec<_>>()
        };
        // Before the release (newest first).
        assert_eq!(
            figures(B + 1_000),
            [
                (3, 16_384, 16_384, 0, 16_384),
                (2, 0, 32_768, 8_192, 24_576),
                (1, 65_536, 65_536, 0, 65_536),
            ]
        );
        // A range that ends in the second of the release sees it.
        assert_eq!(
            figures(B + 2_100),
            [
                (3, 16_384, 16_384, 16_384, 0),
                (2, 0, 32_768, 8_192, 24_576),
                (1, 65_536, 65_536, 0, 65_536),
            ]
        );

        // A recording without retained figures (schema 2) answers null for them.
        let old = dir.path().join("old.db");
        std::fs::copy(&path, &old).unwrap();
        rusqlite::Connection::open(&old)
            .unwrap()
            .execute_batch("PRAGMA user_version = 2;")
            .unwrap();
        let rec = Recording::open(&old).unwrap();
        let filter = RequestFilter {
            from_ns: 0,
            to_ns: i64::MAX,
            ..RequestFilter::default()
        };
        let answer = serde_json::to_value(Requests::read(&rec, &filter, 200).unwrap()).unwrap();
        let first = &answer["requests"][2];
        assert_eq!(first["rss_bytes"], 65_536);
        for key in ["grown_bytes", "released_bytes", "retained_bytes"] {
            assert_eq!(first[key], serde_json::Value::Null, "{key}");
        }
    }

    /// The second request is left out and counted, and the answer says the list is short.
    #[test]
    fn undecodable_rows_are_counted() {
        let (_dir, rec) = undecodable_rows();
        let filter = RequestFilter {
            from_ns: 0,
            to_ns: i64::MAX,
            ..RequestFilter::default()
        };
        let requests = Requests::read(&rec, &filter, 200).unwrap();
        let ids: Vec<i64> = requests.requests.iter().map(|r| r.id).collect();
        assert_eq!(ids, [3, 1]);
        assert_eq!((requests.total, requests.undecodable_rows), (3, 1));
        assert!(requests.truncated, "fewer listed than selected");
        assert_eq!(
            serde_json::to_value(&requests).unwrap()["undecodable_rows"],
            1
        );
    }
}
