//! API handlers (`docs/api.md`): each checks its parameters, then reads its answer
//! ([`responses`]) on a blocking thread with the shared recording locked.

mod responses;

use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use axum::{
    Json,
    extract::{Query, State},
    http::StatusCode,
    response::sse::{Event, KeepAlive, Sse},
};
use futures_util::{
    StreamExt as _,
    stream::{self, Stream},
};
use responses::{
    Endpoints, LogLines, Requests, RetainedByRoute, Stacks, Summary, Timeline, Update,
};

use super::{ApiError, AppState, ErrorBody};
use crate::recording::{
    Recording,
    query::{Range, requests::RequestFilter},
};

type Params = Query<HashMap<String, String>>;
type ApiResult<T> = Result<Json<T>, ApiError>;

/// Nanoseconds per millisecond: the recording's times are ns, the API's ms.
const MS: i64 = 1_000_000;

fn bad(what: String) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, what)
}

/// An optional integer parameter within `[min, max]`.
fn int(
    p: &HashMap<String, String>,
    key: &str,
    min: i64,
    max: i64,
) -> Result<Option<i64>, ApiError> {
    let Some(raw) = p.get(key) else {
        return Ok(None);
    };
    match raw.parse::<i64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(Some(v)),
        _ => Err(bad(format!(
            "{key}={raw:?} is not an integer from {min} to {max}{}",
            if key == "from" || key == "to" {
                " (times are epoch milliseconds)"
            } else {
                ""
            }
        ))),
    }
}

fn range(p: &HashMap<String, String>) -> Result<Range, ApiError> {
    let from = int(p, "from", 0, i64::MAX / MS)?;
    let to = int(p, "to", 0, i64::MAX / MS)?;
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return Err(bad(format!("from={f} is after to={t}")));
    }
    Ok(Range {
        from_ns: from.map(|v| v * MS),
        to_ns: to.map(|v| v * MS),
    })
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

pub(super) async fn summary(State(state): State<Arc<AppState>>) -> ApiResult<Summary> {
    let live = state.live.load(Ordering::Relaxed);
    with_rec(&state, move |rec| Summary::read(rec, live))
        .await
        .map(Json)
}

pub(super) async fn timeline(
    State(state): State<Arc<AppState>>,
    Query(p): Params,
) -> ApiResult<Timeline> {
    let range = range(&p)?;
    let points = int(&p, "points", 2, 10_000)?.unwrap_or(1000) as usize;
    with_rec(&state, move |rec| Timeline::read(rec, range, points))
        .await
        .map(Json)
}

pub(super) async fn endpoints(
    State(state): State<Arc<AppState>>,
    Query(p): Params,
) -> ApiResult<Endpoints> {
    let range = range(&p)?;
    with_rec(&state, move |rec| Endpoints::read(rec, range))
        .await
        .map(Json)
}

pub(super) async fn retained(
    State(state): State<Arc<AppState>>,
    Query(p): Params,
) -> ApiResult<RetainedByRoute> {
    let range = range(&p)?;
    let points = int(&p, "points", 1, 10_000)?.unwrap_or(1000) as usize;
    let top = int(&p, "top", 0, 20)?.unwrap_or(5) as usize;
    with_rec(&state, move |rec| {
        RetainedByRoute::read(rec, range, points, top)
    })
    .await
    .map(Json)
}

pub(super) async fn requests(
    State(state): State<Arc<AppState>>,
    Query(p): Params,
) -> ApiResult<Requests> {
    let range = range(&p)?;
    let limit = int(&p, "limit", 1, 5000)?.unwrap_or(200);
    let filter = RequestFilter {
        from_ns: range.from_ns.unwrap_or(0),
        to_ns: range.to_ns.unwrap_or(i64::MAX),
        route: p.get("route").cloned(),
        method: p.get("method").cloned(),
    };
    with_rec(&state, move |rec| Requests::read(rec, &filter, limit))
        .await
        .map(Json)
}

pub(super) async fn stacks(
    State(state): State<Arc<AppState>>,
    Query(p): Params,
) -> ApiResult<Stacks> {
    let range = range(&p)?;
    let route = p.get("route").cloned();
    let method = p.get("method").cloned();
    with_rec(&state, move |rec| {
        Stacks::read(rec, range, route.as_deref(), method.as_deref())
    })
    .await
    .map(Json)
}

pub(super) async fn log_lines(
    State(state): State<Arc<AppState>>,
    Query(p): Params,
) -> ApiResult<LogLines> {
    let range = range(&p)?;
    let limit = int(&p, "limit", 1, 5000)?.unwrap_or(200);
    with_rec(&state, move |rec| LogLines::read(rec, range, limit))
        .await
        .map(Json)
}

/// One `update` event per second while live; one in offline mode. The stream ends when the
/// server stops, so that an open page never holds memwatch up.
pub(super) async fn stream(
    State(state): State<Arc<AppState>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let closing = Arc::clone(&state);
    let updates = stream::unfold((state, true), |(state, first)| async move {
        if !first {
            if state.live.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_secs(1)).await;
            } else {
                // Offline: nothing changes; keep the connection, send nothing more.
                std::future::pending::<()>().await;
            }
        }
        let live = Arc::clone(&state);
        let update = with_rec(&state, move |rec| {
            Update::read(rec, live.live.load(Ordering::Relaxed))
        })
        .await;
        let event = Event::default().event("update");
        let event = match update {
            Ok(update) => event.json_data(update),
            Err(ApiError(_, error)) => event.json_data(ErrorBody { error }),
        }
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "could not serialise a stream update");
            Event::default().comment("an update could not be serialised")
        });
        Some((Ok(event), (state, false)))
    })
    .take_until(async move { closing.closed().await });
    Sse::new(updates).keep_alive(KeepAlive::default())
}
