//! `GET /api/endpoints`: the routes hit by requests that ended in the range, with the report's
//! figures for each and the range's retained memory.

use std::{collections::BTreeMap, sync::Arc};

use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::{
    ApiResult, answer, ms,
    query::{BadParam, Checked, Given},
};
use crate::{
    recording::{Recording, query::Range},
    views::{
        report::{self, Retention},
        server::{ApiError, AppState},
    },
};

pub(super) async fn handler(
    State(state): State<Arc<AppState>>,
    Checked(q): Checked<EndpointsQuery>,
) -> ApiResult<Endpoints> {
    answer(&state, move |rec| Endpoints::read(rec, q.range)).await
}

/// `from` and `to`.
#[derive(Debug, Deserialize)]
#[serde(try_from = "Given")]
pub(super) struct EndpointsQuery {
    range: Range,
}

impl TryFrom<Given> for EndpointsQuery {
    type Error = BadParam;

    fn try_from(p: Given) -> Result<Self, BadParam> {
        Ok(Self { range: p.range()? })
    }
}

/// `GET /api/endpoints`.
#[derive(Debug, Serialize)]
pub(crate) struct Endpoints {
    pub endpoints: Vec<Endpoint>,
    pub from_ms: Option<i64>,
    pub non_http: BTreeMap<String, u64>,
    /// Retained memory of the range and its reconciliation with the resident set (null for
    /// recordings before schema 3). Keys as in the report's `retained`.
    pub retained: Option<report::RetainedSummary>,
    pub to_ms: Option<i64>,
    pub unmatched_lines: i64,
}

/// The report's endpoint object.
#[derive(Debug, Serialize)]
pub(crate) struct Endpoint {
    pub approximate: u64,
    pub duration_ms_p50: f64,
    pub duration_ms_p95: f64,
    pub grown_bytes: i64,
    /// `origin`, `regression` or `sampled_heap`: see [`report::Endpoint::kept_from`].
    pub kept_from: report::KeptFrom,
    pub kept_per_request_bytes: i64,
    pub mem_calls: u64,
    pub method: String,
    pub page_faults: u64,
    /// The regression's estimate of kept per request (keys as in the report).
    pub regression: Option<report::RouteEstimate>,
    pub released_bytes: i64,
    pub requests: u64,
    pub retained_bytes: i64,
    pub retention: Retention,
    pub route: String,
    pub rss_bytes: i64,
    pub rss_bytes_mean: i64,
    pub rss_bytes_per_request_p50: i64,
    pub rss_bytes_per_request_p95: i64,
    /// Present when the heap budget left some of the route's requests unfollowed: its figures
    /// rest on the followed ones (keys as in the report).
    pub sampled: Option<report::Sampled>,
    /// Kept per request from a Go program's own sampled heap (keys as in the report).
    pub sampled_heap: Option<report::SampledHeapEstimate>,
    pub statuses: BTreeMap<String, u64>,
    pub vm_bytes: i64,
    pub vm_bytes_mean: i64,
    pub vm_bytes_per_request_p50: i64,
    pub vm_bytes_per_request_p95: i64,
    pub vm_mapped_bytes: Option<i64>,
    pub vm_released_bytes: Option<i64>,
    pub vm_retained_bytes: Option<i64>,
}

impl From<report::Endpoint> for Endpoint {
    fn from(e: report::Endpoint) -> Self {
        let report::Endpoint {
            method,
            route,
            requests,
            statuses,
            vm_bytes,
            rss_bytes,
            page_faults,
            mem_calls,
            approximate,
            vm_bytes_mean,
            rss_bytes_mean,
            vm_bytes_per_request_p50,
            vm_bytes_per_request_p95,
            rss_bytes_per_request_p50,
            rss_bytes_per_request_p95,
            duration_ms_p50,
            duration_ms_p95,
            grown_bytes,
            released_bytes,
            retained_bytes,
            kept_per_request_bytes,
            retention,
            vm_mapped_bytes,
            vm_released_bytes,
            vm_retained_bytes,
            sampled,
            regression,
            kept_from,
            sampled_heap,
        } = e;
        Self {
            approximate,
            duration_ms_p50,
            duration_ms_p95,
            grown_bytes,
            kept_from,
            kept_per_request_bytes,
            mem_calls,
            method,
            page_faults,
            regression,
            released_bytes,
            requests,
            retained_bytes,
            retention,
            route,
            rss_bytes,
            rss_bytes_mean,
            rss_bytes_per_request_p50,
            rss_bytes_per_request_p95,
            sampled,
            sampled_heap,
            statuses,
            vm_bytes,
            vm_bytes_mean,
            vm_bytes_per_request_p50,
            vm_bytes_per_request_p95,
            vm_mapped_bytes,
            vm_released_bytes,
            vm_retained_bytes,
        }
    }
}

impl Endpoints {
    /// The routes hit by requests that ended in `range`.
    pub(crate) fn read(rec: &Recording, range: Range) -> Result<Self, ApiError> {
        let range = rec.figures_range(range)?;
        let (from, to) = (range.from_ns.unwrap_or(0), range.to_ns.unwrap_or(i64::MAX));
        let mut endpoints = report::endpoints(rec, range)?;
        let retained = report::RetainedSummary::read(rec, range, &mut endpoints)?;
        Ok(Self {
            endpoints: endpoints.into_iter().map(Endpoint::from).collect(),
            from_ms: ms(range.from_ns),
            non_http: rec.non_http_counts_between(from, to)?,
            retained,
            to_ms: ms(range.to_ns),
            unmatched_lines: rec.unmatched_line_count_between(from, to)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::server::api::testing::assert_sorted;

    /// The answer, with every optional object and list filled, sends its keys sorted.
    #[test]
    fn keys_are_sorted() {
        let counts = BTreeMap::from([("a".to_owned(), 1), ("b".to_owned(), 2)]);
        assert_sorted(&Endpoints {
            endpoints: vec![Endpoint {
                approximate: 0,
                duration_ms_p50: 0.1,
                duration_ms_p95: 0.2,
                grown_bytes: 8192,
                kept_from: report::KeptFrom::Origin,
                kept_per_request_bytes: 4096,
                mem_calls: 1,
                method: "GET".into(),
                page_faults: 1,
                regression: Some(report::RouteEstimate {
                    kept_per_request_bytes: 4000,
                    kept_per_request_high_bytes: Some(4500),
                    kept_per_request_low_bytes: Some(3500),
                }),
                released_bytes: 4096,
                requests: 1,
                retained_bytes: 4096,
                retention: Retention::Keeps,
                route: "/".into(),
                rss_bytes: 4096,
                rss_bytes_mean: 4096,
                rss_bytes_per_request_p50: 4096,
                rss_bytes_per_request_p95: 4096,
                sampled: Some(report::Sampled {
                    followed_requests: 1,
                    kept_per_request_low_bytes: Some(0),
                    kept_per_request_high_bytes: Some(1),
                }),
                sampled_heap: Some(report::SampledHeapEstimate {
                    kept_per_request_bytes: 4096,
                    kept_per_request_high_bytes: 5000,
                    kept_per_request_low_bytes: 3000,
                    requests: 12,
                    samples: 3,
                    samples_kept: 2,
                }),
                statuses: counts.clone(),
                vm_bytes: 0,
                vm_bytes_mean: 0,
                vm_bytes_per_request_p50: 0,
                vm_bytes_per_request_p95: 0,
                vm_mapped_bytes: Some(0),
                vm_released_bytes: Some(0),
                vm_retained_bytes: Some(0),
            }],
            from_ms: Some(0),
            non_http: counts,
            retained: Some(report::RetainedSummary::default()),
            to_ms: Some(1),
            unmatched_lines: 0,
        });
    }
}
