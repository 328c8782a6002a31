//! API handlers (`docs/api.md`). Queries run on blocking threads against the shared recording.

use std::{collections::HashMap, convert::Infallible, sync::Arc, time::Duration};

use axum::{
    Json,
    extract::{Query, State},
    http::StatusCode,
    response::sse::{Event, KeepAlive, Sse},
};
use futures_util::stream::{self, Stream};
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::{
    recording::{
        Recording,
        query::{
            Range,
            requests::{CountFrom, RequestFilter, rollup_seconds},
        },
    },
    views::report::{self, AccessLog},
};

type Params = Query<HashMap<String, String>>;
type ApiResult = Result<Json<Value>, ApiError>;

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
    tokio::task::spawn_blocking(move || {
        let rec = state
            .recording
            .lock()
            .map_err(|_| internal("recording lock poisoned"))?;
        f(&rec)
    })
    .await
    .map_err(internal)?
}

fn ms(ns: Option<i64>) -> Option<i64> {
    ns.map(|v| v.div_euclid(MS))
}

/// Start, end (if finished) and latest data time of the recording, in ns.
fn bounds(rec: &Recording) -> Result<(i64, Option<i64>, i64), ApiError> {
    let span = rec.span().map_err(internal)?;
    let latest = rec.latest_ns().map_err(internal)?;
    Ok((span.started_ns, span.ended_ns, latest.max(span.started_ns)))
}

pub async fn summary(State(state): State<Arc<AppState>>) -> ApiResult {
    let live = state.live.load(std::sync::atomic::Ordering::Relaxed);
    with_rec(&state, move |rec| {
        let (started, ended, latest) = bounds(rec)?;
        let processes: Vec<Value> = rec
            .processes()
            .map_err(internal)?
            .into_iter()
            .map(|p| {
                json!({"pid": p.pid, "ppid": p.ppid, "comm": p.comm, "origin": p.origin,
                       "started_ms": ms(p.started_ns), "exited_ms": ms(p.exited_ns)})
            })
            .collect();
        let counters = rec.counters().map_err(internal)?;
        let (events, lost) = (counters.events, counters.lost);
        let non_http = rec.non_http_counts().map_err(internal)?;
        let (rss_start, rss_end, rss_peak, vm_start, vm_end, vm_peak) = {
            let series: Vec<(i64, i64)> = rec
                .sample_series(None)
                .map_err(internal)?
                .rows
                .into_iter()
                .map(|p| (p.rss_bytes, p.vm_bytes))
                .collect();
            let first = series.first().copied().unwrap_or_default();
            let last = series.last().copied().unwrap_or_default();
            let peak_rss = series.iter().map(|s| s.0).max().unwrap_or(0);
            let peak_vm = series.iter().map(|s| s.1).max().unwrap_or(0);
            (first.0, last.0, peak_rss, first.1, last.1, peak_vm)
        };
        let access_log = AccessLog::read(rec).map_err(internal)?;
        Ok(Json(json!({
            "live": live,
            "started_ms": started / MS,
            "ended_ms": ms(ended),
            "latest_ms": latest / MS,
            "duration_s": (ended.unwrap_or(latest) - started).max(0) as f64 / 1e9,
            "processes": processes,
            "events": events,
            "dropped_events": lost.dropped_events,
            "lost": lost,
            "requests": rec.request_count().map_err(internal)?,
            "approximate_requests": rec.approximate_request_count().map_err(internal)?,
            "non_http": non_http,
            "memory": {"rss_start_bytes": rss_start, "rss_end_bytes": rss_end,
                       "rss_peak_bytes": rss_peak, "vm_start_bytes": vm_start,
                       "vm_end_bytes": vm_end, "vm_peak_bytes": vm_peak,
                       "page_faults": rec.thread_faults(None).map_err(internal)?},
            "access_log": access_log,
        })))
    })
    .await
}

/// Min/max downsampling of `(t, v)` points into `buckets` buckets over `[from, to]`: each bucket
/// keeps its minimum and maximum sample, in time order, so at most `2 * buckets` points.
pub fn downsample(
    points: &[(i64, i64)],
    from: i64,
    to: i64,
    buckets: usize,
) -> (Vec<i64>, Vec<i64>) {
    let (mut t, mut v) = (Vec::new(), Vec::new());
    if points.is_empty() || buckets == 0 {
        return (t, v);
    }
    let width = ((to - from).max(1) as f64 / buckets as f64).max(1.0);
    // The last bucket is closed: a point at `to` (or past it) belongs to it, never to a new one.
    let bucket = |t: i64| (((t - from) as f64 / width).floor().max(0.0) as usize).min(buckets - 1);
    let mut i = 0;
    while i < points.len() {
        let b = bucket(points[i].0);
        let mut j = i;
        let (mut lo, mut hi) = (i, i);
        while j < points.len() && bucket(points[j].0) == b {
            if points[j].1 < points[lo].1 {
                lo = j;
            }
            if points[j].1 > points[hi].1 {
                hi = j;
            }
            j += 1;
        }
        let mut keep = [lo, hi];
        keep.sort_unstable();
        for (n, k) in keep.into_iter().enumerate() {
            if n == 1 && k == keep[0] {
                continue;
            }
            t.push(points[k].0);
            v.push(points[k].1);
        }
        i = j;
    }
    (t, v)
}

pub async fn timeline(State(state): State<Arc<AppState>>, Query(p): Params) -> ApiResult {
    let range = range(&p)?;
    let points = int(&p, "points", 2, 10_000)?.unwrap_or(1000) as usize;
    with_rec(&state, move |rec| {
        let (started, ended, latest) = bounds(rec)?;
        let from = range.from_ns.unwrap_or(started);
        let to = range.to_ns.unwrap_or(ended.unwrap_or(latest)).max(from);
        let buckets = points / 2;
        let rows: Vec<(i64, i64, i64)> = rec
            .sample_series(Some((from, to)))
            .map_err(internal)?
            .rows
            .into_iter()
            .map(|p| (p.ts_ns, p.rss_bytes, p.vm_bytes))
            .collect();
        let to_ms = |(t, v): (Vec<i64>, Vec<i64>)| {
            json!({"t": t.into_iter().map(|x| x / MS).collect::<Vec<_>>(), "v": v})
        };
        let rss: Vec<(i64, i64)> = rows.iter().map(|r| (r.0, r.1)).collect();
        let vm: Vec<(i64, i64)> = rows.iter().map(|r| (r.0, r.2)).collect();
        // Request density per bucket and status class: from the rows, or for ranges with many
        // requests from the per-second rollup (each second counted in the bucket where it
        // starts, so bucket edges are exact to the second).
        let width = ((to - from) / buckets.max(1) as i64).max(1);
        let mut classes = vec![[0i64; 5]; buckets.max(1)];
        let (first_s, last_s) = rollup_seconds(from, to);
        let many = rec
            .rollup_request_count(first_s, last_s)
            .map_err(internal)?;
        let source = if many > report::EXACT_LIMIT {
            CountFrom::Rollup
        } else {
            CountFrom::Rows
        };
        let counts = rec
            .status_class_counts(from, to, width, source)
            .map_err(internal)?;
        for c in counts.rows {
            let (b, class, n) = (c.bucket, c.class, c.requests);
            let b = (b.max(0) as usize).min(classes.len() - 1);
            let c = match class {
                2 => 0,
                3 => 1,
                4 => 2,
                5 => 3,
                _ => 4,
            };
            classes[b][c] += n;
        }
        let col = |c: usize| classes.iter().map(|x| x[c]).collect::<Vec<_>>();
        let mut big: Vec<(i64, String, i64, i64)> = rec
            .largest_mem_events(from, to, points)
            .map_err(internal)?
            .rows
            .into_iter()
            .map(|e| (e.ts_ns, e.op, e.vm_delta, e.pid))
            .collect();
        big.sort_unstable_by_key(|b| b.0);
        Ok(Json(json!({
            "from_ms": from / MS,
            "to_ms": to / MS,
            "points": points,
            "rss": to_ms(downsample(&rss, from, to, buckets)),
            "vm": to_ms(downsample(&vm, from, to, buckets)),
            "requests": {
                "t": (0..classes.len()).map(|i| (from + i as i64 * width) / MS).collect::<Vec<_>>(),
                "width_ms": width / MS,
                "s2xx": col(0), "s3xx": col(1), "s4xx": col(2), "s5xx": col(3), "other": col(4),
            },
            "mem_events": big.into_iter().map(|(t, op, bytes, pid)| {
                json!({"t": t / MS, "op": op, "bytes": bytes, "pid": pid})
            }).collect::<Vec<_>>(),
        })))
    })
    .await
}

pub async fn endpoints(State(state): State<Arc<AppState>>, Query(p): Params) -> ApiResult {
    let range = range(&p)?;
    with_rec(&state, move |rec| {
        let (from, to) = (range.from_ns.unwrap_or(0), range.to_ns.unwrap_or(i64::MAX));
        let endpoints = report::endpoints(rec, range).map_err(internal)?;
        let non_http = rec.non_http_counts_between(from, to).map_err(internal)?;
        let unmatched = rec
            .unmatched_line_count_between(from, to)
            .map_err(internal)?;
        Ok(Json(json!({
            "from_ms": ms(range.from_ns),
            "to_ms": ms(range.to_ns),
            "endpoints": endpoints,
            "non_http": non_http,
            "unmatched_lines": unmatched,
        })))
    })
    .await
}

pub async fn requests(State(state): State<Arc<AppState>>, Query(p): Params) -> ApiResult {
    let range = range(&p)?;
    let limit = int(&p, "limit", 1, 5000)?.unwrap_or(200);
    let route = p.get("route").cloned();
    let method = p.get("method").cloned();
    with_rec(&state, move |rec| {
        let (from, to) = (range.from_ns.unwrap_or(0), range.to_ns.unwrap_or(i64::MAX));
        let filter = RequestFilter {
            from_ns: from,
            to_ns: to,
            route,
            method,
        };
        let total = rec.matching_request_count(&filter).map_err(internal)?;
        let rows: Vec<Value> = rec
            .newest_requests(&filter, limit)
            .map_err(internal)?
            .rows
            .into_iter()
            .map(|r| {
                let (start, end) = (r.start_ns, r.end_ns);
                json!({
                    "id": r.id, "start_ms": start / MS, "end_ms": end / MS,
                    "duration_ms": (end - start) as f64 / 1e6,
                    "pid": r.pid, "tid": r.tid,
                    "method": r.method,
                    "target": r.target,
                    "route": r.route,
                    "host": r.host,
                    "status": r.status,
                    "bytes_in": r.bytes_in, "bytes_out": r.bytes_out,
                    "vm_bytes": r.vm_bytes, "rss_bytes": r.rss_bytes,
                    "exact": r.exact,
                    "user_agent": r.user_agent,
                })
            })
            .collect();
        Ok(Json(json!({
            "total": total,
            "truncated": total > rows.len() as i64,
            "requests": rows,
        })))
    })
    .await
}

pub async fn log_lines(State(state): State<Arc<AppState>>, Query(p): Params) -> ApiResult {
    let range = range(&p)?;
    let limit = int(&p, "limit", 1, 5000)?.unwrap_or(200);
    with_rec(&state, move |rec| {
        let (from, to) = (range.from_ns.unwrap_or(0), range.to_ns.unwrap_or(i64::MAX));
        let lines: Vec<Value> = rec
            .unmatched_or_rejected_lines(from, to, limit)
            .map_err(internal)?
            .rows
            .into_iter()
            .map(|l| {
                json!({
                    "arrived_ms": l.arrived_ns / MS,
                    "ts_ms": l.ts_ns.map(|t| t / MS),
                    "ok": l.ok,
                    "reason": l.reason,
                    "raw": l.raw,
                    "method": l.method,
                    "target": l.target,
                    "status": l.status,
                })
            })
            .collect();
        Ok(Json(json!({ "lines": lines })))
    })
    .await
}

/// One `update` event per second while live; one in offline mode.
pub async fn stream(
    State(state): State<Arc<AppState>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let updates =
        stream::unfold((state, true), |(state, first)| async move {
            let live = state.live.load(std::sync::atomic::Ordering::Relaxed);
            if !first {
                if live {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                } else {
                    // Offline: nothing changes; keep the connection, send nothing more.
                    std::future::pending::<()>().await;
                }
            }
            let data = with_rec(&state, |rec| {
            let (_, _, latest) = bounds(rec)?;
            let requests = rec.request_count().map_err(internal)?;
            let dropped = rec.counters().map_err(internal)?.lost.dropped_events;
            Ok(json!({"latest_ms": latest / MS, "requests": requests, "dropped_events": dropped}))
        })
        .await
        .map_or_else(|e| json!({"error": e.1}), |mut v| {
            v["live"] = json!(state.live.load(std::sync::atomic::Ordering::Relaxed));
            v
        });
            let event = Event::default().event("update").data(data.to_string());
            Some((Ok(event), (state, false)))
        });
    Sse::new(updates).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use super::downsample;

    #[test]
    fn downsampling_keeps_extremes_and_bounds_points() {
        let pts: Vec<(i64, i64)> = (0..10_000).map(|i| (i, (i * 7919) % 1000)).collect();
        let (t, v) = downsample(&pts, 0, 9_999, 50);
        assert!(t.len() <= 100 && v.len() == t.len(), "{}", t.len());
        assert!(v.contains(&999) && v.contains(&0));
        assert!(t.windows(2).all(|w| w[0] <= w[1]));
        let (t, _) = downsample(&pts[..3], 0, 9_999, 50);
        assert_eq!(t, vec![0, 1]);
    }
}
