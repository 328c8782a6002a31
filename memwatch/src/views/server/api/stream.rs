//! `GET /api/stream`: server-sent `update` events with the recording's latest time and counts,
//! one a second while memwatch records, one in offline mode.

use std::{
    convert::Infallible,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use axum::{
    extract::State,
    response::sse::{Event, KeepAlive, Sse},
};
use futures_util::{
    StreamExt as _,
    stream::{self, Stream},
};
use serde::Serialize;

use super::{MS, bounds, with_rec};
use crate::{
    recording::Recording,
    views::server::{ApiError, AppState, ErrorBody},
};

/// One `update` event per second while live; one in offline mode. The stream ends when the
/// server stops, so that an open page never holds memwatch up.
pub(super) async fn handler(
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

/// The data of a `GET /api/stream` `update` event.
#[derive(Debug, Serialize)]
struct Update {
    dropped_events: u64,
    latest_ms: i64,
    live: bool,
    requests: u64,
}

impl Update {
    fn read(rec: &Recording, live: bool) -> Result<Self, ApiError> {
        let (_, _, latest) = bounds(rec)?;
        Ok(Self {
            dropped_events: rec.counters()?.lost.dropped_events,
            latest_ms: latest / MS,
            live,
            requests: rec.request_count()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::server::api::testing::assert_sorted;

    /// The event's data sends its keys sorted.
    #[test]
    fn keys_are_sorted() {
        assert_sorted(&Update {
            dropped_events: 0,
            latest_ms: 1,
            live: true,
            requests: 1,
        });
    }
}
