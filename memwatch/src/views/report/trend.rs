//! What each further request of a route keeps: the Theil–Sen slope of its retained memory
//! against its request count, with Sen's interval.

use std::collections::BTreeMap;

use super::{Q, endpoints::Acc};
use crate::{
    recording::{
        Recording,
        query::retained::{LaterRelease, RetainedSecond},
    },
    units::NS_PER_SEC,
};

/// One route's retained memory, request by request (or second by second in a large range).
#[derive(Debug, Default)]
pub(super) struct RouteRetained {
    pub(super) grown: i64,
    pub(super) released: i64,
    /// (time, id) → (requests, retained): one step per request, or per second of requests'
    /// ends (id 0), in time order.
    pub(super) steps: BTreeMap<(i64, i64), (i64, i64)>,
}

impl RouteRetained {
    /// The slope of cumulative retained bytes against cumulative requests, one point per step,
    /// estimated robustly (Theil–Sen: the median of the slopes between every pair of points);
    /// with fewer than three steps, the mean.
    ///
    /// Why robust: a runtime with a collector frees a churning route's garbage in bulk, late, and
    /// the last blocks may not be collected when the recording ends; a heap raises a high-water
    /// mark once. Both are steps in the series, and a least-squares line through a step at one
    /// end reads as memory kept per request. The median slope ignores a minority of such steps
    /// and follows what most stretches of the series do: grow with each request (a leak), or not.
    pub(super) fn slope(&self) -> i64 {
        let n_total = self
            .steps
            .values()
            .fold(0i64, |sum, (n, _)| sum.saturating_add(*n));
        if n_total == 0 {
            return 0;
        }
        let mean = self
            .grown
            .saturating_sub(self.released)
            .saturating_div(n_total);
        if self.steps.len() < 3 {
            return mean;
        }
        theil_sen(&self.points()).unwrap_or(mean)
    }

    /// Cumulative (requests, retained) after each step, thinned to [`MAX_SLOPE_POINTS`].
    fn points(&self) -> Vec<(i64, i64)> {
        let (mut n, mut r) = (0i64, 0i64);
        let points: Vec<(i64, i64)> = self
            .steps
            .values()
            .map(|&(dn, dr)| {
                n = n.saturating_add(dn);
                r = r.saturating_add(dr);
                (n, r)
            })
            .collect();
        thin(&points, MAX_SLOPE_POINTS)
    }

    /// The 95% interval of [`RouteRetained::slope`]: Sen's distribution-free interval, the
    /// pairwise slopes at the ranks `(N ∓ C) / 2` with `C = 1.96 √(n(n−1)(2n+5)/18)`; `None`
    /// with fewer than 3 steps.
    pub(super) fn slope_interval(&self) -> Option<(i64, i64)> {
        if self.steps.len() < 3 {
            return None;
        }
        sen_interval(&self.points())
    }
}

/// Sen's 95% interval of the Theil–Sen slope of `points`.
fn sen_interval(points: &[(i64, i64)]) -> Option<(i64, i64)> {
    let mut slopes = pairwise_slopes(points);
    if slopes.is_empty() {
        return None;
    }
    slopes.sort_unstable_by(f64::total_cmp);
    let n = points.len() as f64;
    let c = 1.96 * (n * (n - 1.0) * (2.0 * n + 5.0) / 18.0).sqrt();
    let total = slopes.len() as f64;
    let at = |rank: f64| {
        let i = (rank.round().max(1.0) as usize).min(slopes.len()) - 1;
        slopes[i].round() as i64
    };
    Some((at((total - c) / 2.0), at((total + c) / 2.0 + 1.0)))
}

/// The slopes between every pair of points with different x.
fn pairwise_slopes(points: &[(i64, i64)]) -> Vec<f64> {
    let mut slopes: Vec<f64> = Vec::with_capacity(points.len() * points.len() / 2);
    for (i, &(x1, y1)) in points.iter().enumerate() {
        for &(x2, y2) in &points[i + 1..] {
            if x2 != x1 {
                slopes.push(y2.saturating_sub(y1) as f64 / x2.saturating_sub(x1) as f64);
            }
        }
    }
    slopes
}

/// At most this many points go into a slope: the pairs grow with its square.
const MAX_SLOPE_POINTS: usize = 100;

/// Every `k`th point of `points` (and the last), so that at most `max` remain.
fn thin(points: &[(i64, i64)], max: usize) -> Vec<(i64, i64)> {
    if points.len() <= max {
        return points.to_vec();
    }
    let k = points.len().div_ceil(max);
    let mut out: Vec<(i64, i64)> = points.iter().step_by(k).copied().collect();
    if let Some(&last) = points.last()
        && out.last() != Some(&last)
    {
        out.push(last);
    }
    out
}

/// The median of the slopes between every pair of points with different x; None when there is
/// no such pair.
fn theil_sen(points: &[(i64, i64)]) -> Option<i64> {
    let mut slopes = pairwise_slopes(points);
    if slopes.is_empty() {
        return None;
    }
    let mid = slopes.len() / 2;
    let (_, m, _) = slopes.select_nth_unstable_by(mid, f64::total_cmp);
    let m = *m;
    let median = if slopes.len().is_multiple_of(2) {
        let lower = slopes[..mid].iter().copied().fold(f64::MIN, f64::max);
        (lower + m) / 2.0
    } else {
        m
    };
    Some(median.round() as i64)
}

/// Retained memory of the requests that ended in `[from, to]`, per route and second, from the
/// writer's per-second rollups (for ranges too large to read request by request); releases are
/// counted up to `to`, to the second.
pub(super) fn retained_from_rollups(
    rec: &Recording,
    groups: &mut BTreeMap<(String, String), Acc>,
    (from, to): (i64, i64),
) -> Q<()> {
    const S: i64 = NS_PER_SEC;
    for s in rec.retained_seconds(from, to)? {
        let RetainedSecond {
            method,
            route,
            second,
            requests,
            grown,
            released_own,
        } = s;
        let r = &mut groups.entry((method, route)).or_default().retained;
        r.grown = r.grown.saturating_add(grown);
        r.released = r.released.saturating_add(released_own);
        let slot = r.steps.entry((second.saturating_mul(S), 0)).or_default();
        slot.0 = slot.0.saturating_add(requests);
        slot.1 = slot.1.saturating_add(grown.saturating_sub(released_own));
    }
    for l in rec.later_releases(from, to)? {
        let LaterRelease {
            method,
            route,
            req_second,
            bytes,
        } = l;
        let r = &mut groups.entry((method, route)).or_default().retained;
        r.released = r.released.saturating_add(bytes);
        let slot = r
            .steps
            .entry((req_second.saturating_mul(S), 0))
            .or_default();
        slot.1 = slot.1.saturating_sub(bytes);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_per_request_ignores_a_late_burst_and_a_one_off_step() {
        const KIB: i64 = 1024;
        let route = |series: &[i64]| {
            let mut r = RouteRetained::default();
            let mut prev = 0;
            for (i, &v) in series.iter().enumerate() {
                r.steps.insert((i as i64, i as i64), (1, v - prev));
                prev = v;
            }
            r.grown = prev;
            r.slope()
        };
        // A leak: 256 KiB per request, with noise of a page either way.
        let leak: Vec<i64> = (1..=100)
            .map(|i| i * 256 * KIB + (i % 3 - 1) * 4 * KIB)
            .collect();
        assert!(
            (route(&leak) - 256 * KIB).abs() <= 4 * KIB,
            "{}",
            route(&leak)
        );
        // Churn whose last 13 blocks of 2 MiB await the collector when the recording ends.
        let churn: Vec<i64> = (1..=100)
            .map(|i: i64| (i - 87).max(0) * 2048 * KIB)
            .collect();
        assert_eq!(route(&churn), 0);
        // A heap that grows to 1 MiB on the first request and is reused afterwards.
        let reuse: Vec<i64> = (1..=40).map(|_| 1024 * KIB).collect();
        assert_eq!(route(&reuse), 0);
        // Two steps: the mean.
        assert_eq!(route(&[10, 30]), 15);
        // Thinning keeps the ends.
        let pts: Vec<(i64, i64)> = (0..1000).map(|i| (i, 2 * i)).collect();
        let thinned = thin(&pts, 400);
        assert!(thinned.len() <= 401);
        assert_eq!(thinned.first(), Some(&(0, 0)));
        assert_eq!(thinned.last(), Some(&(999, 1998)));
        assert_eq!(theil_sen(&thinned), Some(2));
        assert_eq!(theil_sen(&[(5, 1), (5, 9)]), None);
    }
}
