//! The routes' figures: requests that ended in a range summed per route, exactly or from the
//! per-second rollup, with percentiles and what each route keeps.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::{
    KeptFrom, Q, RouteEstimate, page_size,
    rank::{Retention, rank, retention},
    trend::{RouteRetained, retained_from_rollups},
};
use crate::{
    recording::{
        Recording,
        query::{
            Range,
            requests::{RequestFigures, RollupGroup, rollup_seconds},
        },
    },
    units::{NS_PER_SEC, count, signed},
};

#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    pub method: String,
    pub route: String,
    pub requests: u64,
    pub statuses: BTreeMap<String, u64>,
    pub vm_bytes: i64,
    pub rss_bytes: i64,
    pub page_faults: u64,
    pub mem_calls: u64,
    pub approximate: u64,
    pub vm_bytes_mean: i64,
    pub rss_bytes_mean: i64,
    pub vm_bytes_per_request_p50: i64,
    pub vm_bytes_per_request_p95: i64,
    pub rss_bytes_per_request_p50: i64,
    pub rss_bytes_per_request_p95: i64,
    pub duration_ms_p50: f64,
    pub duration_ms_p95: f64,
    /// Bytes these requests made resident (each page once). 0 in recordings before schema 3.
    pub grown_bytes: i64,
    /// Of those, released by the end of the range: by the requests themselves or later, by
    /// whatever thread.
    pub released_bytes: i64,
    /// Still held at the end of the range: `grown_bytes - released_bytes`.
    pub retained_bytes: i64,
    /// The slope of retained memory against the route's request count: what each further
    /// request keeps. A leak keeps a steady amount per request; a high-water mark does not.
    pub kept_per_request_bytes: i64,
    /// How the route retains memory: see [`Retention`].
    pub retention: Retention,
    /// Address space these requests mapped and still held when they ended (null before
    /// schema 4).
    pub vm_mapped_bytes: Option<i64>,
    /// Of that, unmapped by the end of the range, by whatever thread: credited back.
    pub vm_released_bytes: Option<i64>,
    /// Still mapped at the end of the range.
    pub vm_retained_bytes: Option<i64>,
    /// Sampled figures: present when the heap probes' budget left some of this route's
    /// requests unfollowed. Its memory figures, kept per request included, then rest on the
    /// followed requests alone.
    pub sampled: Option<Sampled>,
    /// The second estimate of kept per request, by regression of the resident set on the
    /// routes' request counts (`views/regression/`); `None` when the range is too short to
    /// fit, or the route is not among those fitted.
    pub regression: Option<RouteEstimate>,
    /// Which estimate `kept_per_request_bytes` (and the rank and `retention` that follow from
    /// it) comes from: `origin` (the memory each request made resident and what became of it),
    /// `regression` (on a JVM, whose objects neither page faults nor the heap probes see
    /// one by one: the live heap after each collection against the routes' request counts),
    /// or `sampled_heap` (a Go program's own sampled allocations: [`Endpoint::sampled_heap`]).
    /// Chosen next to the regression, by `regression::kept_from::choose`, then by
    /// `sampled_heap::apply`.
    pub kept_from: KeptFrom,
    /// Kept per request from a Go program's own sampled heap, where it samples its
    /// allocations (`None` elsewhere, or with fewer than 10 requests judged).
    pub sampled_heap: Option<super::SampledHeapEstimate>,
}

/// How much of a route the heap probes followed, and how far its kept-per-request figure can
/// be off for that.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Sampled {
    /// Requests the heap probes followed (of the route's `requests`).
    pub followed_requests: u64,
    /// The 95% interval of kept per request (Sen's interval of the Theil–Sen slope over the
    /// followed requests); `None` with fewer than 3 steps to judge from. (Keys in alphabetical
    /// order, as the API sends them.)
    pub kept_per_request_high_bytes: Option<i64>,
    pub kept_per_request_low_bytes: Option<i64>,
}

/// Nearest-rank percentile of a sorted slice.
pub fn percentile<T: Copy + Default>(sorted: &[T], p: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Ranges with more requests than this are summed from the per-second rollup, and their
/// percentiles estimated from a sample of about this many requests.
pub const EXACT_LIMIT: i64 = 50_000;

/// One route's figures as they add up.
#[derive(Debug, Default)]
pub(super) struct Acc {
    pub(super) statuses: BTreeMap<String, u64>,
    pub(super) n: u64,
    pub(super) vm_sum: i64,
    pub(super) rss_sum: i64,
    pub(super) faults: u64,
    calls: u64,
    pub(super) approximate: u64,
    /// Requests the heap probes did not follow.
    sampled_out: u64,
    /// Per-request values for percentiles: all of them, or a sample.
    vm: Vec<i64>,
    rss: Vec<i64>,
    dur_ns: Vec<i64>,
    /// Retained memory, request by request (exact path) or second by second (rollup path).
    pub(super) retained: RouteRetained,
}

impl Acc {
    /// Adds another accumulator's totals (not its percentile values).
    fn add_totals(&mut self, other: Self) {
        let Self {
            statuses,
            n,
            vm_sum,
            rss_sum,
            faults,
            calls,
            approximate,
            sampled_out,
            vm: _,
            rss: _,
            dur_ns: _,
            // The edges' retained memory is in the rollup's whole seconds already.
            retained: _,
        } = other;
        for (status, count) in statuses {
            let c = self.statuses.entry(status).or_default();
            *c = c.saturating_add(count);
        }
        self.add(n, approximate, (vm_sum, rss_sum), faults, calls);
        self.sampled_out = self.sampled_out.saturating_add(sampled_out);
    }

    /// Adds `n` requests' totals. Saturating: the figures come from the file, and a corrupted
    /// one may hold any value.
    fn add(&mut self, n: u64, approximate: u64, (vm, rss): (i64, i64), faults: u64, calls: u64) {
        self.n = self.n.saturating_add(n);
        self.approximate = self.approximate.saturating_add(approximate);
        self.vm_sum = self.vm_sum.saturating_add(vm);
        self.rss_sum = self.rss_sum.saturating_add(rss);
        self.faults = self.faults.saturating_add(faults);
        self.calls = self.calls.saturating_add(calls);
    }
}

fn status_key(status: Option<i64>) -> String {
    status
        .filter(|s| *s >= 0)
        .map_or_else(|| "-".to_owned(), |s| s.to_string())
}

/// Adds the requests that ended in `[from, to]` (every `every`-th by id) to `groups`: to the
/// totals when `totals`, to the percentile values always, and with `later` (releases after each
/// request ended, by request id) to the retained memory.
pub(super) fn add_rows(
    rec: &Recording,
    groups: &mut BTreeMap<(String, String), Acc>,
    (from, to): (i64, i64),
    every: i64,
    totals: bool,
    later: Option<&HashMap<i64, i64>>,
) -> Q<()> {
    rec.each_request_figures(from, to, every, |row| {
        let RequestFigures {
            method,
            route,
            status,
            vm_bytes,
            rss_bytes,
            faults,
            mem_calls,
            exact,
            duration_ns,
            id,
            end_ns,
            grown,
            released,
            sampled_out,
        } = row;
        let acc = groups.entry((method, route)).or_default();
        // A request the heap probes did not follow holds no memory of its own: it is no step of
        // the retained series.
        if let Some(later) = later
            && !sampled_out
        {
            let released = released.saturating_add(later.get(&id).copied().unwrap_or(0));
            let r = &mut acc.retained;
            r.grown = r.grown.saturating_add(grown);
            r.released = r.released.saturating_add(released);
            r.steps
                .insert((end_ns, id), (1, grown.saturating_sub(released)));
        }
        if totals {
            acc.sampled_out = acc.sampled_out.saturating_add(u64::from(sampled_out));
            let c = acc.statuses.entry(status_key(status)).or_default();
            *c = c.saturating_add(1);
            acc.add(
                1,
                u64::from(!exact),
                (vm_bytes, rss_bytes),
                count(faults),
                count(mem_calls),
            );
        }
        acc.vm.push(vm_bytes);
        acc.rss.push(rss_bytes);
        acc.dur_ns.push(duration_ns);
    })
}

/// Per-route figures for requests that ended in `range`, sorted by resident bytes.
///
/// Totals (requests, statuses, bytes, faults) are always exact. Up to [`EXACT_LIMIT`] requests,
/// percentiles are exact too; above it, whole seconds come from the per-second rollup, the
/// partial seconds at the edges from the rows, and percentiles from a sample of about
/// [`EXACT_LIMIT`] requests (every k-th by id).
pub fn endpoints(rec: &Recording, range: Range) -> Q<Vec<Endpoint>> {
    const S: i64 = NS_PER_SEC;
    let (from, to) = range.bounds();
    let (first_s, last_s) = rollup_seconds(from, to);
    let estimate = rec.rollup_request_count(first_s, last_s)?;
    let mut groups: BTreeMap<(String, String), Acc> = BTreeMap::new();
    let origin = rec.has_origin();
    if estimate <= EXACT_LIMIT {
        let later = if origin {
            Some(rec.later_releases_by_request(from, to, to)?)
        } else {
            None
        };
        add_rows(rec, &mut groups, (from, to), 1, true, later.as_ref())?;
    } else {
        // Whole seconds inside the range from the rollup...
        let inner = (first_s.saturating_add(1), last_s.saturating_sub(1));
        for group in rec.rollup_groups(inner.0, inner.1)? {
            let RollupGroup {
                method,
                route,
                status,
                requests,
                approximate,
                vm_bytes,
                rss_bytes,
                faults,
                mem_calls,
                sampled_out,
            } = group;
            let acc = groups.entry((method, route)).or_default();
            acc.sampled_out = acc.sampled_out.saturating_add(count(sampled_out));
            let c = acc.statuses.entry(status_key(Some(status))).or_default();
            *c = c.saturating_add(count(requests));
            acc.add(
                count(requests),
                count(approximate),
                (vm_bytes, rss_bytes),
                count(faults),
                count(mem_calls),
            );
        }
        // ...the partial seconds at both edges from the rows...
        let mut edges = BTreeMap::new();
        add_rows(
            rec,
            &mut edges,
            (from, inner.0.saturating_mul(S).saturating_sub(1).min(to)),
            1,
            true,
            None,
        )?;
        let tail_from = (inner.1.saturating_add(1).saturating_mul(S))
            .max(from)
            .max(inner.0.saturating_mul(S));
        add_rows(rec, &mut edges, (tail_from, to), 1, true, None)?;
        for (key, e) in edges {
            groups.entry(key).or_default().add_totals(e);
        }
        // ...and percentiles from a sample.
        add_rows(
            rec,
            &mut groups,
            (from, to),
            estimate / EXACT_LIMIT + 1,
            false,
            None,
        )?;
        if origin {
            retained_from_rollups(rec, &mut groups, (from, to))?;
        }
    }
    let page = if origin { page_size(rec)? } else { 0 };
    let mut out: Vec<Endpoint> = groups
        .into_iter()
        .filter(|(_, a)| a.n > 0)
        .map(|((method, route), mut a)| {
            let (vm_bytes, rss_bytes) = (a.vm_sum, a.rss_sum);
            a.vm.sort_unstable();
            a.rss.sort_unstable();
            a.dur_ns.sort_unstable();
            let r = &a.retained;
            let mut e = Endpoint {
                method,
                route,
                requests: a.n,
                statuses: a.statuses,
                vm_bytes,
                rss_bytes,
                page_faults: a.faults,
                mem_calls: a.calls,
                approximate: a.approximate,
                vm_bytes_mean: vm_bytes / signed(a.n).max(1),
                rss_bytes_mean: rss_bytes / signed(a.n).max(1),
                vm_bytes_per_request_p50: percentile(&a.vm, 50.0),
                vm_bytes_per_request_p95: percentile(&a.vm, 95.0),
                rss_bytes_per_request_p50: percentile(&a.rss, 50.0),
                rss_bytes_per_request_p95: percentile(&a.rss, 95.0),
                duration_ms_p50: percentile(&a.dur_ns, 50.0) as f64 / 1e6,
                duration_ms_p95: percentile(&a.dur_ns, 95.0) as f64 / 1e6,
                grown_bytes: r.grown,
                released_bytes: r.released,
                retained_bytes: r.grown.saturating_sub(r.released),
                kept_per_request_bytes: r.slope(),
                retention: Retention::Unknown,
                vm_mapped_bytes: None,
                vm_released_bytes: None,
                vm_retained_bytes: None,
                regression: None,
                kept_from: KeptFrom::Origin,
                sampled_heap: None,
                sampled: (a.sampled_out > 0).then(|| {
                    let (low, high) = r.slope_interval().unzip();
                    Sampled {
                        followed_requests: a.n.saturating_sub(a.sampled_out),
                        kept_per_request_low_bytes: low,
                        kept_per_request_high_bytes: high,
                    }
                }),
            };
            if origin {
                e.retention = retention(&e, page);
            }
            e
        })
        .collect();
    if rec.has_vm_origin() {
        let (from, to) = range.bounds();
        let vm: BTreeMap<(String, String), (i64, i64)> = rec
            .vm_retained(from, to)?
            .into_iter()
            .map(|v| ((v.method, v.route), (v.grown, v.released)))
            .collect();
        for e in &mut out {
            let (grown, released) = vm
                .get(&(e.method.clone(), e.route.clone()))
                .copied()
                .unwrap_or((0, 0));
            e.vm_mapped_bytes = Some(grown);
            e.vm_released_bytes = Some(released);
            e.vm_retained_bytes = Some(grown.saturating_sub(released));
        }
    }
    if origin {
        rank(&mut out);
    } else {
        out.sort_by(|a, b| {
            b.rss_bytes
                .cmp(&a.rss_bytes)
                .then(b.requests.cmp(&a.requests))
                .then(a.route.cmp(&b.route))
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 95.0), 95);
        assert_eq!(percentile(&[7i64], 95.0), 7);
        assert_eq!(percentile::<i64>(&[], 50.0), 0);
    }
}
