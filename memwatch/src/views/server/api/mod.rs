//! The page's JSON API (`docs/api.md`): its routes, and what its endpoints share. Each endpoint
//! has a file of its own that holds its parameters, its answer as typed structs read from the
//! recording, and its handler, which reads the answer on a blocking thread with the shared
//! recording locked.
//!
//! What every answer keeps to:
//! - Times go out as epoch milliseconds.
//! - Rows that do not decode are skipped, as the page would rather show what it can, but never
//!   silently: every answer that lists rows says how many it skipped in `undecodable_rows`, and
//!   the query logs the first one's error.
//! - Fields are declared in alphabetical order at every level, because that is the order the API
//!   has always sent (its answers used to be `serde_json::Value` maps, which sort their keys) and
//!   clients may compare answers byte for byte. Each answer's `keys_are_sorted` test holds it to
//!   that; it is also why the report's types are not serialised directly but copied into structs
//!   of the endpoint's file.

mod endpoints;
mod log_lines;
mod query;
mod requests;
mod retained;
mod stacks;
mod stream;
mod summary;
#[cfg(test)]
mod testing;
mod timeline;

use std::sync::Arc;

use axum::{Json, Router, http::StatusCode, routing::get};

use super::{ApiError, AppState};
use crate::recording::Recording;

type ApiResult<T> = Result<Json<T>, ApiError>;

/// Nanoseconds per millisecond: the recording's times are ns, the API's ms.
const MS: i64 = 1_000_000;

/// The API's routes, each served by its file's handler.
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/summary", get(summary::handler))
        .route("/api/timeline", get(timeline::handler))
        .route("/api/endpoints", get(endpoints::handler))
        .route("/api/retained", get(retained::handler))
        .route("/api/requests", get(requests::handler))
        .route("/api/stacks", get(stacks::handler))
        .route("/api/log_lines", get(log_lines::handler))
        .route("/api/stream", get(stream::handler))
}

/// Epoch ns to epoch ms, rounding down.
fn ms(ns: Option<i64>) -> Option<i64> {
    ns.map(|v| v.div_euclid(MS))
}

/// Start, end (if finished) and latest data time of the recording, in ns.
fn bounds(rec: &Recording) -> Result<(i64, Option<i64>, i64), ApiError> {
    let span = rec.span()?;
    let latest = rec.latest_ns()?;
    Ok((span.started_ns, span.ended_ns, latest.max(span.started_ns)))
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// Runs `f` on a blocking thread with the recording locked.
async fn with_rec<T: Send + 'static>(
    state: &Arc<AppState>,
    f: impl FnOnce(&Recording) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let state = Arc::clone(state);
    tokio::task::spawn_blocking(move || state.read(f))
        .await
        .map_err(internal)?
}

/// An endpoint's JSON answer, read by `read` as [`with_rec`] does.
async fn answer<T: Send + 'static>(
    state: &Arc<AppState>,
    read: impl FnOnce(&Recording) -> Result<T, ApiError> + Send + 'static,
) -> ApiResult<T> {
    with_rec(state, read).await.map(Json)
}

#[cfg(test)]
mod tests {
    use axum::{
        body::{Body, to_bytes},
        http::{Request, header},
    };
    use tower::ServiceExt as _;

    use super::*;
    use crate::recording::Writer;

    /// The routes in-process, on an empty recording: each parameter check answers through its
    /// endpoint, 400 with `{"error": ...}` for a bad value, and a good query is read.
    #[tokio::test]
    async fn each_endpoint_checks_its_parameters() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        Writer::create(&path, &[]).unwrap().finish().unwrap();
        let state = AppState::new(Recording::open(&path).unwrap(), false, None);
        let app = routes().with_state(state);
        let not_an_integer = |key: &str, raw: &str, max: i64| {
            format!("{key}={raw:?} is not an integer from 1 to {max}")
        };
        let cases = [
            (
                "/api/timeline?points=abc",
                Some(r#"points="abc" is not an integer from 2 to 10000"#.to_owned()),
            ),
            ("/api/timeline?points=2&from=0", None),
            (
                "/api/endpoints?from=2&to=1",
                Some("from=2 is after to=1".to_owned()),
            ),
            ("/api/endpoints?to=1", None),
            (
                "/api/retained?points=0",
                Some(not_an_integer("points", "0", 10_000)),
            ),
            ("/api/retained?points=3&top=0", None),
            (
                "/api/requests?limit=0",
                Some(not_an_integer("limit", "0", 5000)),
            ),
            ("/api/requests?route=/leak&method=GET&limit=5", None),
            (
                "/api/stacks?from=x",
                Some(format!(
                    "from=\"x\" is not an integer from 0 to {} (times are epoch milliseconds)",
                    i64::MAX / MS
                )),
            ),
            ("/api/stacks?route=/a", None),
            (
                "/api/log_lines?limit=x",
                Some(not_an_integer("limit", "x", 5000)),
            ),
            ("/api/log_lines?token=s3cret", None),
            ("/api/summary?points=abc", None),
        ];
        for (uri, error) in cases {
            let request = Request::get(uri).body(Body::empty()).unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            let status = response.status();
            let json = response
                .headers()
                .get(header::CONTENT_TYPE)
                .is_some_and(|t| t == "application/json");
            let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert!(json, "{uri}");
            match error {
                Some(error) => {
                    assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
                    assert_eq!(body, serde_json::json!({ "error": error }), "{uri}");
                }
                None => assert_eq!(status, StatusCode::OK, "{uri}: {body}"),
            }
        }
    }
}
