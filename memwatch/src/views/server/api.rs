//! API handlers (`docs/api.md`). Queries run on blocking threads against the shared recording.

use std::{collections::HashMap, convert::Infallible, sync::Arc, time::Duration};

use axum::{
    Json,
    extract::{Query, State},
    http::StatusCode,
    response::sse::{Event, KeepAlive, Sse},
};
use futures_util::stream::{self, Stream};
use rusqlite::params;
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::{
    model::meta,
    recording::Recording,
    views::report::{self, Range},
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
    let meta_ns = |k: &str| -> Result<Option<i64>, ApiError> {
        Ok(rec
            .meta(k)
            .map_err(internal)?
            .and_then(|v| v.parse::<i64>().ok()))
    };
    let started = meta_ns(meta::STARTED_NS)?.unwrap_or(0);
    let ended = meta_ns(meta::ENDED_NS)?;
    let latest = report::latest_ns(rec).map_err(internal)?;
    Ok((started, ended, latest.max(started)))
}

pub async fn summary(State(state): State<Arc<AppState>>) -> ApiResult {
    let live = state.live.load(std::sync::atomic::Ordering::Relaxed);
    with_rec(&state, move |rec| {
        let (started, ended, latest) = bounds(rec)?;
        let processes: Vec<Value> = report::processes(rec)
            .map_err(internal)?
            .into_iter()
            .map(|p| {
                json!({"pid": p.pid, "ppid": p.ppid, "comm": p.comm, "origin": p.origin,
                       "started_ms": ms(p.started_ns), "exited_ms": ms(p.exited_ns)})
            })
            .collect();
        let q = |sql: &str| report::count(rec, sql).map_err(internal);
        let (events, lost) = report::lost(rec).map_err(internal)?;
        let non_http =
            report::counts_by(rec, "SELECT kind, COUNT(*) FROM non_http GROUP BY kind", [])
                .map_err(internal)?;
        let (rss_start, rss_end, rss_peak, vm_start, vm_end, vm_peak) = {
            let mut stmt = rec
                .conn()
                .prepare_cached(
                    "SELECT SUM(rss_bytes), SUM(vm_bytes) FROM samples GROUP BY ts_ns
                     ORDER BY ts_ns",
                )
                .map_err(internal)?;
            let series: Vec<(i64, i64)> = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(internal)?
                .flatten()
                .collect();
            let first = series.first().copied().unwrap_or_default();
            let last = series.last().copied().unwrap_or_default();
            let peak_rss = series.iter().map(|s| s.0).max().unwrap_or(0);
            let peak_vm = series.iter().map(|s| s.1).max().unwrap_or(0);
            (first.0, last.0, peak_rss, first.1, last.1, peak_vm)
        };
        let access_log = report::access_log(rec).map_err(internal)?;
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
            "requests": q("SELECT COUNT(*) FROM requests")?,
            "approximate_requests": q("SELECT COUNT(*) FROM requests WHERE NOT exact")?,
            "non_http": non_http,
            "memory": {"rss_start_bytes": rss_start, "rss_end_bytes": rss_end,
                       "rss_peak_bytes": rss_peak, "vm_start_bytes": vm_start,
                       "vm_end_bytes": vm_end, "vm_peak_bytes": vm_peak,
                       "page_faults": q("SELECT SUM(faults) FROM threads")?},
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
        let mut stmt = rec
            .conn()
            .prepare_cached(
                "SELECT ts_ns, SUM(rss_bytes), SUM(vm_bytes) FROM samples
                 WHERE ts_ns BETWEEN ?1 AND ?2 GROUP BY ts_ns ORDER BY ts_ns",
            )
            .map_err(internal)?;
        let rows: Vec<(i64, i64, i64)> = stmt
            .query_map(params![from, to], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(internal)?
            .flatten()
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
        let many: i64 = rec
            .conn()
            .query_row(
                "SELECT COALESCE(SUM(n), 0) FROM request_rollup WHERE second BETWEEN ?1 AND ?2",
                params![from.div_euclid(1_000_000_000), to.div_euclid(1_000_000_000)],
                |r| r.get(0),
            )
            .map_err(internal)?;
        let sql = if many > report::EXACT_LIMIT {
            "SELECT (second * 1000000000 - ?1) / ?3, CASE WHEN status < 0 THEN 0
                    ELSE status / 100 END, SUM(n) FROM request_rollup
             WHERE second BETWEEN ?1 / 1000000000 AND ?2 / 1000000000 GROUP BY 1, 2"
        } else {
            "SELECT (end_ns - ?1) / ?3, COALESCE(status / 100, 0), COUNT(*) FROM requests
             WHERE end_ns BETWEEN ?1 AND ?2 GROUP BY 1, 2"
        };
        let mut stmt = rec.conn().prepare_cached(sql).map_err(internal)?;
        let counts = stmt
            .query_map(params![from, to, width], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
            })
            .map_err(internal)?;
        for (b, class, n) in counts.flatten() {
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
        let mut stmt = rec
            .conn()
            .prepare_cached(
                "SELECT ts_ns, op, vm_delta, pid FROM mem_events
                 WHERE ok AND ABS(vm_delta) >= 1048576 AND ts_ns BETWEEN ?1 AND ?2
                 ORDER BY ABS(vm_delta) DESC LIMIT ?3",
            )
            .map_err(internal)?;
        let mut big: Vec<(i64, String, i64, i64)> = stmt
            .query_map(params![from, to, points as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .map_err(internal)?
            .flatten()
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
        let non_http = report::counts_by(
            rec,
            "SELECT kind, COUNT(*) FROM non_http WHERE ts_ns BETWEEN ?1 AND ?2 GROUP BY kind",
            params![from, to],
        )
        .map_err(internal)?;
        let unmatched: i64 = rec
            .conn()
            .query_row(
                "SELECT COUNT(*) FROM log_lines WHERE ok AND method IS NOT NULL
                 AND request_id IS NULL AND arrived_ns BETWEEN ?1 AND ?2",
                params![from, to],
                |r| r.get(0),
            )
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
        let filter = "end_ns BETWEEN ?1 AND ?2 AND (?3 IS NULL OR route = ?3)
                      AND (?4 IS NULL OR method = ?4)";
        let total: i64 = rec
            .conn()
            .query_row(
                &format!("SELECT COUNT(*) FROM requests WHERE {filter}"),
                params![from, to, route, method],
                |r| r.get(0),
            )
            .map_err(internal)?;
        let mut stmt = rec
            .conn()
            .prepare_cached(&format!(
                "SELECT id, start_ns, end_ns, pid, tid, method, target, route, host, status,
                        bytes_in, bytes_out, vm_bytes, rss_bytes, exact,
                        (SELECT user_agent FROM log_lines WHERE request_id = requests.id LIMIT 1)
                 FROM requests WHERE {filter} ORDER BY end_ns DESC, id DESC LIMIT ?5"
            ))
            .map_err(internal)?;
        let rows: Vec<Value> = stmt
            .query_map(params![from, to, route, method, limit], |r| {
                let start: i64 = r.get(1)?;
                let end: i64 = r.get(2)?;
                Ok(json!({
                    "id": r.get::<_, i64>(0)?, "start_ms": start / MS, "end_ms": end / MS,
                    "duration_ms": (end - start) as f64 / 1e6,
                    "pid": r.get::<_, i64>(3)?, "tid": r.get::<_, i64>(4)?,
                    "method": r.get::<_, Option<String>>(5)?,
                    "target": r.get::<_, Option<String>>(6)?,
                    "route": r.get::<_, Option<String>>(7)?,
                    "host": r.get::<_, Option<String>>(8)?,
                    "status": r.get::<_, Option<i64>>(9)?,
                    "bytes_in": r.get::<_, i64>(10)?, "bytes_out": r.get::<_, i64>(11)?,
                    "vm_bytes": r.get::<_, i64>(12)?, "rss_bytes": r.get::<_, i64>(13)?,
                    "exact": r.get::<_, bool>(14)?,
                    "user_agent": r.get::<_, Option<String>>(15)?,
                }))
            })
            .map_err(internal)?
            .flatten()
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
        let mut stmt = rec
            .conn()
            .prepare_cached(
                "SELECT arrived_ns, ts_ns, ok, reason, raw, method, target, status
                 FROM log_lines WHERE arrived_ns BETWEEN ?1 AND ?2
                   AND (NOT ok OR (method IS NOT NULL AND request_id IS NULL))
                 ORDER BY arrived_ns DESC, id DESC LIMIT ?3",
            )
            .map_err(internal)?;
        let lines: Vec<Value> = stmt
            .query_map(params![from, to, limit], |r| {
                Ok(json!({
                    "arrived_ms": r.get::<_, i64>(0)? / MS,
                    "ts_ms": r.get::<_, Option<i64>>(1)?.map(|t| t / MS),
                    "ok": r.get::<_, bool>(2)?,
                    "reason": r.get::<_, Option<String>>(3)?,
                    "raw": r.get::<_, Option<String>>(4)?,
                    "method": r.get::<_, Option<String>>(5)?,
                    "target": r.get::<_, Option<String>>(6)?,
                    "status": r.get::<_, Option<i64>>(7)?,
                }))
            })
            .map_err(internal)?
            .flatten()
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
            let requests = report::count(rec, "SELECT COUNT(*) FROM requests").map_err(internal)?;
            let dropped = rec
                .conn()
                .query_row(
                    "SELECT dropped FROM counters ORDER BY ts_ns DESC LIMIT 1",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .unwrap_or(0);
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
