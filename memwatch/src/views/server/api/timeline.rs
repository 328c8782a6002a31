//! `GET /api/timeline`: memory over time, min/max downsampled on the server, with the request
//! density by status class and the largest mapping changes of the range.

use std::sync::Arc;

use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::{
    ApiResult, MS, answer, bounds,
    query::{BadParam, Checked, Given},
};
use crate::{
    recording::{
        Recording,
        query::{
            Range,
            memory::LargeMemEvent,
            requests::{CountFrom, rollup_seconds},
        },
    },
    views::{
        report,
        server::{ApiError, AppState},
    },
};

pub(super) async fn handler(
    State(state): State<Arc<AppState>>,
    Checked(q): Checked<TimelineQuery>,
) -> ApiResult<Timeline> {
    answer(&state, move |rec| Timeline::read(rec, q.range, q.points)).await
}

/// `from`, `to`, and `points`: at most this many points a series (2 to 10000, 1000 by default).
#[derive(Debug, Deserialize)]
#[serde(try_from = "Given")]
pub(super) struct TimelineQuery {
    range: Range,
    points: usize,
}

impl TryFrom<Given> for TimelineQuery {
    type Error = BadParam;

    fn try_from(p: Given) -> Result<Self, BadParam> {
        Ok(Self {
            range: p.range()?,
            points: p.int("points", 2, 10_000)?.unwrap_or(1000) as usize,
        })
    }
}

/// `GET /api/timeline`.
#[derive(Debug, Serialize)]
pub(crate) struct Timeline {
    pub from_ms: i64,
    pub mem_events: Vec<MemEvent>,
    pub points: usize,
    pub requests: RequestDensity,
    pub rss: Series,
    pub to_ms: i64,
    /// Samples, request counts and memory events that did not decode and were left out.
    pub undecodable_rows: u64,
    pub vm: Series,
}

/// A downsampled memory series: times (epoch ms) and values.
#[derive(Debug, Serialize)]
pub(crate) struct Series {
    pub t: Vec<i64>,
    pub v: Vec<i64>,
}

/// Requests ending in each bucket, by status class.
#[derive(Debug, Serialize)]
pub(crate) struct RequestDensity {
    /// No status.
    pub other: Vec<i64>,
    pub s2xx: Vec<i64>,
    pub s3xx: Vec<i64>,
    pub s4xx: Vec<i64>,
    pub s5xx: Vec<i64>,
    /// Each bucket's start.
    pub t: Vec<i64>,
    pub width_ms: i64,
}

/// A large mapping change.
#[derive(Debug, Serialize)]
pub(crate) struct MemEvent {
    /// The signed change of mapped bytes.
    pub bytes: i64,
    pub op: String,
    pub pid: i64,
    pub t: i64,
}

impl From<LargeMemEvent> for MemEvent {
    fn from(e: LargeMemEvent) -> Self {
        let LargeMemEvent {
            ts_ns,
            op,
            vm_delta,
            pid,
        } = e;
        Self {
            bytes: vm_delta,
            op,
            pid,
            t: ts_ns / MS,
        }
    }
}

impl Series {
    fn downsampled(points: &[(i64, i64)], from: i64, to: i64, buckets: usize) -> Self {
        let (t, v) = downsample(points, from, to, buckets);
        Self {
            t: t.into_iter().map(|x| x / MS).collect(),
            v,
        }
    }
}

/// Min/max downsampling of `(t, v)` points into `buckets` buckets over `[from, to]`: each bucket
/// keeps its minimum and maximum sample, in time order, so at most `2 * buckets` points.
fn downsample(points: &[(i64, i64)], from: i64, to: i64, buckets: usize) -> (Vec<i64>, Vec<i64>) {
    let (mut t, mut v) = (Vec::new(), Vec::new());
    if points.is_empty() || buckets == 0 {
        return (t, v);
    }
    // Differences of times saturate: the times come from the file.
    let width = (to.saturating_sub(from).max(1) as f64 / buckets as f64).max(1.0);
    // The last bucket is closed: a point at `to` (or past it) belongs to it, never to a new one.
    let bucket = |t: i64| {
        ((t.saturating_sub(from) as f64 / width).floor().max(0.0) as usize).min(buckets - 1)
    };
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

impl Timeline {
    /// The memory series and request density over `range` (the whole recording by default) in
    /// at most `points` points.
    pub(crate) fn read(rec: &Recording, range: Range, points: usize) -> Result<Self, ApiError> {
        let (started, ended, latest) = bounds(rec)?;
        let from = range.from_ns.unwrap_or(started);
        let to = range.to_ns.unwrap_or(ended.unwrap_or(latest)).max(from);
        let buckets = points / 2;
        let samples = rec.sample_series(Some((from, to)))?;
        let mut undecodable_rows = samples.undecodable;
        let samples = samples.rows;
        let rss: Vec<(i64, i64)> = samples.iter().map(|p| (p.ts_ns, p.rss_bytes)).collect();
        let vm: Vec<(i64, i64)> = samples.iter().map(|p| (p.ts_ns, p.vm_bytes)).collect();
        // Request density per bucket and status class: from the rows, or for ranges with many
        // requests from the per-second rollup (each second counted in the bucket where it
        // starts, so bucket edges are exact to the second).
        // Saturating: `from` and `to` may come from a corrupted file.
        let width = (to.saturating_sub(from) / buckets.max(1) as i64).max(1);
        let mut classes = vec![[0i64; 5]; buckets.max(1)];
        let (first_s, last_s) = rollup_seconds(from, to);
        let source = if rec.rollup_request_count(first_s, last_s)? > report::EXACT_LIMIT {
            CountFrom::Rollup
        } else {
            CountFrom::Rows
        };
        let counts = rec.status_class_counts(from, to, width, source)?;
        undecodable_rows += counts.undecodable;
        for count in counts.rows {
            let b = (count.bucket.max(0) as usize).min(classes.len() - 1);
            let c = match count.class {
                2 => 0,
                3 => 1,
                4 => 2,
                5 => 3,
                _ => 4,
            };
            classes[b][c] = classes[b][c].saturating_add(count.requests);
        }
        let col = |c: usize| classes.iter().map(|x| x[c]).collect::<Vec<_>>();
        let big = rec.largest_mem_events(from, to, points)?;
        undecodable_rows += big.undecodable;
        let mut big = big.rows;
        big.sort_by_key(|e| e.ts_ns);
        Ok(Self {
            from_ms: from / MS,
            mem_events: big.into_iter().map(MemEvent::from).collect(),
            points,
            requests: RequestDensity {
                other: col(4),
                s2xx: col(0),
                s3xx: col(1),
                s4xx: col(2),
                s5xx: col(3),
                t: (0..classes.len())
                    .map(|i| from.saturating_add((i as i64).saturating_mul(width)) / MS)
                    .collect(),
                width_ms: width / MS,
            },
            rss: Series::downsampled(&rss, from, to, buckets),
            to_ms: to / MS,
            undecodable_rows,
            vm: Series::downsampled(&vm, from, to, buckets),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::server::api::testing::{assert_sorted, checked, undecodable_rows};

    #[test]
    fn points_are_checked() {
        let points = |query: &str| checked::<TimelineQuery>(query).map(|q| q.points);
        assert_eq!(points(""), Ok(1000));
        assert_eq!(points("points=2"), Ok(2));
        assert_eq!(points("points=10000"), Ok(10_000));
        for raw in ["abc", "1", "10001", ""] {
            assert_eq!(
                points(&format!("points={raw}")),
                Err(format!("points={raw:?} is not an integer from 2 to 10000"))
            );
        }
        // The range is checked first.
        assert_eq!(
            points("points=abc&from=2&to=1"),
            Err("from=2 is after to=1".to_owned())
        );
    }

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

    /// The answer, with every list filled, sends its keys sorted.
    #[test]
    fn keys_are_sorted() {
        assert_sorted(&Timeline {
            from_ms: 0,
            mem_events: vec![MemEvent {
                bytes: 1 << 20,
                op: "mmap".into(),
                pid: 1,
                t: 0,
            }],
            points: 2,
            requests: RequestDensity {
                other: vec![0],
                s2xx: vec![1],
                s3xx: vec![0],
                s4xx: vec![0],
                s5xx: vec![0],
                t: vec![0],
                width_ms: 1,
            },
            rss: Series {
                t: vec![0],
                v: vec![1],
            },
            to_ms: 1,
            undecodable_rows: 0,
            vm: Series {
                t: vec![0],
                v: vec![1],
            },
        });
    }

    /// The sample's tick and the memory event are left out and counted.
    #[test]
    fn undecodable_rows_are_counted() {
        let (_dir, rec) = undecodable_rows();
        let timeline = Timeline::read(&rec, Range::default(), 100).unwrap();
        assert_eq!(timeline.undecodable_rows, 2);
        assert_eq!(timeline.mem_events.len(), 2);
        assert_eq!(timeline.rss.v, [4096, 4096]);
    }
}
