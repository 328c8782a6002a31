//! `GET /api/retained`: retained memory over time, the routes that retain most at the end of the
//! range on their own, the others summed, and memory made resident outside any request.

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
            retained::{RetainedOverTime, RouteSeries},
        },
    },
    views::server::{ApiError, AppState},
};

pub(super) async fn handler(
    State(state): State<Arc<AppState>>,
    Checked(q): Checked<RetainedQuery>,
) -> ApiResult<RetainedByRoute> {
    answer(&state, move |rec| {
        RetainedByRoute::read(rec, q.range, q.points, q.top)
    })
    .await
}

/// `from`, `to`, `points`: at most this many buckets (1 to 10000, 1000 by default), and `top`:
/// how many routes have series of their own (0 to 20, 5 by default).
#[derive(Debug, Deserialize)]
#[serde(try_from = "Given")]
pub(super) struct RetainedQuery {
    range: Range,
    points: usize,
    top: usize,
}

impl TryFrom<Given> for RetainedQuery {
    type Error = BadParam;

    fn try_from(p: Given) -> Result<Self, BadParam> {
        Ok(Self {
            range: p.range()?,
            points: p.int("points", 1, 10_000)?.unwrap_or(1000) as usize,
            top: p.int("top", 0, 20)?.unwrap_or(5) as usize,
        })
    }
}

/// `GET /api/retained`.
#[derive(Debug, Serialize)]
pub(crate) struct RetainedByRoute {
    pub from_ms: i64,
    /// Every route not in `routes`, summed.
    pub other: Vec<i64>,
    /// Memory made resident outside any request, less its releases.
    pub outside: Vec<i64>,
    /// The routes that retain most at the end of the range, most first.
    pub routes: Vec<RouteRetained>,
    /// The last millisecond of each bucket, the time its values hold at (the last bucket's
    /// clamped to `to_ms`).
    pub t: Vec<i64>,
    pub to_ms: i64,
}

/// One route's retained bytes at the end of each bucket.
#[derive(Debug, Serialize)]
pub(crate) struct RouteRetained {
    pub method: String,
    pub route: String,
    pub v: Vec<i64>,
}

impl From<RouteSeries> for RouteRetained {
    fn from(r: RouteSeries) -> Self {
        let RouteSeries {
            method,
            route,
            retained,
        } = r;
        Self {
            method,
            route,
            v: retained,
        }
    }
}

impl RetainedByRoute {
    /// Retained memory over `range` (the whole recording by default) in at most `points`
    /// buckets, with the `top` routes that retain most at its end on their own. Empty series
    /// for a recording without retained figures.
    pub(crate) fn read(
        rec: &Recording,
        range: Range,
        points: usize,
        top: usize,
    ) -> Result<Self, ApiError> {
        let (started, ended, latest) = bounds(rec)?;
        let from = range.from_ns.unwrap_or(started);
        let to = range.to_ns.unwrap_or(ended.unwrap_or(latest)).max(from);
        let RetainedOverTime {
            ends,
            routes,
            other,
            outside,
        } = rec.retained_over_time(from, to, points, top)?;
        Ok(Self {
            from_ms: from / MS,
            other,
            outside,
            routes: routes.into_iter().map(RouteRetained::from).collect(),
            t: ends.into_iter().map(|e| e.div_euclid(MS)).collect(),
            to_ms: to / MS,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::server::api::{
        testing::{assert_sorted, checked},
        timeline::Timeline,
    };

    #[test]
    fn points_and_top_are_checked() {
        let read = |query: &str| checked::<RetainedQuery>(query).map(|q| (q.points, q.top));
        assert_eq!(read(""), Ok((1000, 5)));
        assert_eq!(read("points=1&top=0"), Ok((1, 0)));
        assert_eq!(read("points=10000&top=20"), Ok((10_000, 20)));
        for raw in ["0", "10001", "x"] {
            assert_eq!(
                read(&format!("points={raw}")),
                Err(format!("points={raw:?} is not an integer from 1 to 10000"))
            );
        }
        for raw in ["-1", "21", "five"] {
            assert_eq!(
                read(&format!("top={raw}")),
                Err(format!("top={raw:?} is not an integer from 0 to 20"))
            );
        }
        // Points before top.
        assert_eq!(
            read("top=21&points=0"),
            Err(r#"points="0" is not an integer from 1 to 10000"#.to_owned())
        );
    }

    /// The answer, with every list filled, sends its keys sorted.
    #[test]
    fn keys_are_sorted() {
        assert_sorted(&RetainedByRoute {
            from_ms: 0,
            other: vec![0],
            outside: vec![4096],
            routes: vec![RouteRetained {
                method: "GET".into(),
                route: "/leak".into(),
                v: vec![262_144],
            }],
            t: vec![0],
            to_ms: 1,
        });
    }

    /// Retained memory steps with the resident set: over a range of a few seconds its buckets
    /// are whole milliseconds, and a request counts in the bucket of its end, so that the line
    /// rises within one sample interval of the RSS sample that shows the request's growth
    /// (whole seconds, stamped at each second's end, drew it up to a second late: 0.7 s for a
    /// request that ended at .3 s). Ranges whose buckets would be a second or longer keep
    /// whole seconds, each at its last millisecond, strictly increasing even when the range
    /// ends on a second's first millisecond.
    #[test]
    fn retained_steps_with_the_resident_set() {
        use crate::{
            model::{RequestRow, Row},
            recording::Writer,
        };
        const B: i64 = 1_800_000_000_000;
        const MIB: u64 = 1 << 20;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let writer = Writer::create(&path, &[]).unwrap();
        // A sample every 100 ms; the request faults in 256 KiB and ends at B+1.3 s, so the
        // sample at B+1.4 s is the first to hold it.
        let mut rows: Vec<Row> = (0..=30)
            .map(|i| Row::Sample {
                ts_ns: (B + i * 100) * MS,
                pid: 1,
                rss_bytes: if i * 100 <= 1_300 { MIB } else { MIB + 262_144 },
                vm_bytes: 4 * MIB,
                faults: 0,
            })
            .collect();
        rows.push(Row::Request(RequestRow {
            id: 1,
            method: Some("GET".into()),
            route: Some("/leak".into()),
            start_ns: (B + 1_290) * MS,
            end_ns: (B + 1_300) * MS,
            exact: true,
            grown: 262_144,
            ..RequestRow::default()
        }));
        writer.send(rows);
        writer.finish().unwrap();
        let rec = Recording::open(&path).unwrap();
        let range = Range {
            from_ns: Some((B + 250) * MS),
            to_ns: Some((B + 3_000) * MS),
        };

        // 2,751 ms in at most 1000 buckets: 3 ms each from B+250, the last clamped to the end.
        let answer = RetainedByRoute::read(&rec, range, 1000, 5).unwrap();
        assert_eq!(answer.t.len(), 917, "{answer:?}");
        assert_eq!(answer.t[..2], [B + 252, B + 255]);
        assert_eq!(answer.t[915..], [B + 2_997, B + 3_000]);
        assert!(answer.t.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(answer.routes.len(), 1);
        let leak = &answer.routes[0].v;
        let first = leak.iter().position(|&v| v != 0).unwrap();
        assert_eq!(answer.t[first - 1..=first], [B + 1_299, B + 1_302]);
        assert!(leak[first..].iter().all(|&v| v == 262_144), "{leak:?}");
        assert_eq!((answer.other, answer.outside), (vec![0; 917], vec![0; 917]));
        // A range that starts and ends within milliseconds: the buckets start at its first
        // millisecond, and the last ends in a later millisecond than the one before.
        let odd = Range {
            from_ns: Some((B + 250) * MS + 400_000),
            to_ns: Some((B + 2_997) * MS + 300_000),
        };
        let shifted = RetainedByRoute::read(&rec, odd, 1000, 5).unwrap();
        assert_eq!(shifted.t.len(), 916);
        assert_eq!(shifted.t[..2], [B + 252, B + 255]);
        assert_eq!(shifted.t[914..], [B + 2_994, B + 2_997]);
        // The resident set's step, in the timeline of the same range: one sample later.
        let timeline = Timeline::read(&rec, range, 1000).unwrap();
        let rss_step = timeline.rss.t[timeline.rss.v.iter().position(|&v| v > MIB as i64).unwrap()];
        assert_eq!(rss_step, B + 1_400);

        // Two buckets at most: whole seconds, two each, the last clamped to the end.
        let coarse = RetainedByRoute::read(&rec, range, 2, 5).unwrap();
        assert_eq!(coarse.t, [B + 1_999, B + 3_000]);
        assert_eq!(coarse.routes[0].v, [262_144, 262_144]);
        // A range of 4,001 seconds in 1000 buckets: 5 s each from the range's second.
        let long = Range {
            from_ns: Some((B + 250) * MS),
            to_ns: Some((B + 4_000_000) * MS),
        };
        let coarse = RetainedByRoute::read(&rec, long, 1000, 5).unwrap();
        assert_eq!(coarse.t[..2], [B + 4_999, B + 9_999]);
        assert_eq!(coarse.t.last(), Some(&(B + 4_000_000)));
        assert_eq!(coarse.routes[0].v[..2], [262_144, 262_144]);
    }
}
