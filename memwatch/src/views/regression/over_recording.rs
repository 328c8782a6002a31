//! The regression estimate over a range of a recording, per route.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{fit, fit_robust};
use crate::{
    error::RecordingError,
    model::meta,
    recording::{
        Recording,
        query::{Range, requests::rollup_seconds},
    },
    units::NS_PER_SEC,
    views::report::{EXACT_LIMIT, Endpoint},
};

/// At most this many routes get a column of their own; the rest are one column.
const MAX_ROUTES: usize = 12;
/// Intervals the range is cut into, at most.
const MAX_INTERVALS: i64 = 120;
/// The shortest interval. An allocator grows the heap when a request needs room that
/// freed memory cannot give, often a request that keeps nothing, while a leaking one
/// fills freed room without growing it: over short intervals the resident set moves with
/// whoever faults pages in, as the page-fault origin does. Longer intervals lessen that
/// bias without removing it: on the resident set, a heap's reuse misleads the regression
/// as it misleads page faults (seen on gunicorn with `--no-heap`); a live-heap signal
/// would not.
const MIN_INTERVAL_NS: i64 = NS_PER_SEC;
/// Fewer intervals than this cannot be fitted with any confidence: 30 of a second at
/// least.
const MIN_INTERVALS: usize = 30;
/// Fewer collections than this (less one) are too few to fit on a live heap. Its changes
/// are far cleaner than the resident set's (a collected runtime's live heap moves with
/// what is kept and little else), so a few intervals beyond the routes' count suffice.
const MIN_GC_INTERVALS: usize = 5;
/// Followed-heap samples further apart than this many sample intervals do not make an
/// interval: the heap probes were off between them, and blocks changed hands unseen.
const HEAP_GAP: i64 = 3;
/// Below this share of the signal's variation explained, the estimates are shown but not
/// set against the origin figures.
const MIN_EXPLAINED: f64 = 0.5;

/// One route's regression figure (the report's `regression` of an endpoint).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RouteEstimate {
    /// Bytes of resident memory each further request of the route keeps, by regression.
    pub kept_per_request_bytes: i64,
    /// Its 95% interval; `None` when the route cannot be separated from another.
    pub kept_per_request_high_bytes: Option<i64>,
    pub kept_per_request_low_bytes: Option<i64>,
}

/// The fit as a whole (the report's `retained.regression`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Routes whose request counts moved together with another's, too closely to tell
    /// their effects apart: `"GET /a ~ GET /b"`.
    pub collinear: Vec<String>,
    /// Where the fit would have been the figure of routes whose requests shared a thread, a
    /// route it puts above a page whose interval reaches into that of one it cannot tell from
    /// nothing (where it finds no route keeping, a route whose estimate alone is above a page):
    /// `"GET /leak ~ GET /churn"`. The fit cannot rank them, and every route keeps the
    /// origin's figure (`kept_from::choose`).
    pub overlapping: Vec<String>,
    /// Where the origin figure and the regression disagree beyond their bounds, and which
    /// to trust.
    pub disagreements: Vec<Disagreement>,
    /// The share of the signal's variation the fit explains (R²).
    pub explained: f64,
    /// Intervals fitted, and their length.
    pub interval_ms: i64,
    pub intervals: usize,
    /// What was regressed.
    pub signal: Signal,
    /// Whether the regression is each route's figure (`kept_from: regression`): the
    /// recording's live heap is a JVM's, whose objects neither page faults nor the heap
    /// probes see one by one.
    pub primary: bool,
}

/// What a regression fits: the retained signal whose change per interval is regressed on the
/// routes' request counts. Spelt in snake case in the report JSON and the API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// What collected runtimes (the JVM, Go) report live after each collection, from one
    /// collection to the next.
    LiveHeap,
    /// The blocks the heap probes followed in Node.js that were held when V8 had freed the
    /// array buffers a collection found dead, and still were when it next had: what each
    /// sweep kept, the buffers of requests in flight at it left out.
    SweptHeap,
    /// What each Ruby collection kept of the blocks the heap probes followed: those held when
    /// its marking began and still held when the next began, its sweep over.
    KeptHeap,
    /// What each Go cycle kept of the spans the heap probes followed, likewise.
    KeptSpans,
    /// The blocks the heap probes followed, in processes whose garbage no collector holds
    /// back: read each sample interval while they were on, as they had settled a second
    /// before (handed out by then, still held), so that what requests built and dropped is
    /// not in it.
    Heap,
    /// The targets' summed resident set over even intervals.
    #[default]
    Rss,
}

impl Signal {
    /// Whether it is the heap the probes followed, of a runtime whose requests' memory the
    /// origin can only guess when they share a thread: a fit good enough on it gives its
    /// figure to routes whose requests shared a thread. Not Go's spans: the span probes follow
    /// each span to the request its goroutine serves, and the origin is exact there.
    pub fn is_followed_heap(self) -> bool {
        matches!(self, Self::Heap | Self::SweptHeap | Self::KeptHeap)
    }
}

/// A route whose two estimates disagree.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Disagreement {
    pub method: String,
    pub origin_bytes: i64,
    pub regression_bytes: i64,
    pub route: String,
    /// `origin` or `regression`.
    pub trust: &'static str,
    /// Why that one.
    pub why: &'static str,
}

type Q<T> = Result<T, RecordingError>;

/// Fits the range's retained signal against its routes' request counts and sets each
/// endpoint's `regression`; `None` when the range has too few intervals or no samples.
///
/// The signal is a heap at collections where the range has one ([`live_heap_rows`]): each
/// row is one process's change from one collection to the next, against the requests it
/// served in between (the followed heap as collections left it, or the live heap a runtime
/// reports, whichever the fit explains better where there are both). Otherwise it is the
/// followed heap sampled, or the targets' summed resident set over even intervals
/// ([`rss_rows`]).
pub fn estimate(
    rec: &Recording,
    range: Range,
    endpoints: &mut [Endpoint],
    origin_trusted: bool,
) -> Q<Option<Summary>> {
    let (from, to) = range.bounds();
    // The routes with a column: the most requested.
    let mut order: Vec<usize> = (0..endpoints.len()).collect();
    order.sort_by(|&a, &b| endpoints[b].requests.cmp(&endpoints[a].requests));
    order.truncate(MAX_ROUTES);
    if order.is_empty() {
        return Ok(None);
    }
    // One column more for the other routes, when there are any.
    let others = endpoints.len() > order.len();
    let columns = Columns {
        index: order
            .iter()
            .enumerate()
            .map(|(c, &i)| ((endpoints[i].method.clone(), endpoints[i].route.clone()), c))
            .collect(),
        count: order.len() + usize::from(others),
        others,
    };
    // The followed heap as collections left it, and the live heap runtimes report: where a
    // recording has both (Go), the one the fit explains better. Each is exact on its own
    // ground (the first follows each span, the second counts what was allocated while the
    // collector marked, which at -c8 read /leak at 150 KiB of 256), and either can come out
    // of a short range with too few collections to fit.
    let fitted = |rows: Rows| {
        let f = if rows.signal == Signal::Rss {
            fit(&rows.x, rows.n, rows.cols, &rows.y)
        } else {
            fit_robust(&rows.x, rows.n, rows.cols, &rows.y)
        };
        (rows, f)
    };
    let swept = live_heap_rows(rec, (from, to), &columns, true)?.map(fitted);
    let reported = live_heap_rows(rec, (from, to), &columns, false)?.map(fitted);
    let best = match (swept, reported) {
        (Some(a), Some(b)) => Some(if b.1.explained > a.1.explained { b } else { a }),
        (a, b) => a.or(b),
    };
    let best = match best {
        Some(best) => Some(best),
        None => rss_rows(rec, from, to, &columns)?.map(fitted),
    };
    let Some((rows, f)) = best else {
        return Ok(None);
    };
    let name = |c: usize| {
        let e = &endpoints[order[c]];
        format!("{} {}", e.method, e.route)
    };
    let mut summary = Summary {
        collinear: f
            .collinear
            .iter()
            .filter(|(a, b)| a < b && *b < order.len())
            .map(|&(a, b)| format!("{} ~ {}", name(a), name(b)))
            .collect(),
        overlapping: Vec::new(),
        disagreements: Vec::new(),
        explained: (f.explained * 1000.0).round() / 1000.0,
        interval_ms: rows.interval_ns / 1_000_000,
        intervals: rows.n,
        signal: rows.signal,
        primary: rows.primary,
    };
    for (c, &i) in order.iter().enumerate() {
        let k = f.coefficients[c];
        let e = &mut endpoints[i];
        let est = RouteEstimate {
            kept_per_request_bytes: k.per_request.round() as i64,
            kept_per_request_low_bytes: k.interval.map(|(lo, _)| lo.round() as i64),
            kept_per_request_high_bytes: k.interval.map(|(_, hi)| hi.round() as i64),
        };
        if !rows.primary
            && f.explained >= MIN_EXPLAINED
            && let Some(d) = disagreement(e, &est, origin_trusted)
        {
            summary.disagreements.push(d);
        }
        e.regression = Some(est);
    }
    Ok(Some(summary))
}

/// Which column each route's requests count in.
struct Columns {
    index: BTreeMap<(String, String), usize>,
    /// Columns in all, the others' included.
    count: usize,
    /// Whether the last column takes the routes without one of their own.
    others: bool,
}

impl Columns {
    fn of(&self, method: &str, route: &str) -> Option<usize> {
        self.index
            .get(&(method.to_owned(), route.to_owned()))
            .copied()
            .or(self.others.then_some(self.count - 1))
    }
}

/// What is fitted: `n` rows of the signal's change `y`, against each column's requests `x`
/// (row-major).
struct Rows {
    x: Vec<f64>,
    y: Vec<f64>,
    n: usize,
    /// Columns of `x`: the routes' first, then any the fit needs besides (set aside).
    cols: usize,
    /// The rows' mean length.
    interval_ns: i64,
    signal: Signal,
    /// The regression is each route's figure: the runtime's objects are not seen one by one.
    primary: bool,
}

/// Rows from a live heap: for each process, from one report to the next, the change of its
/// live heap against the requests it served in between. `None` when the range has too few
/// such intervals.
///
/// Where a runtime reports its collections (`jvm`, `go`), those reports are the signal;
/// otherwise the followed heap, sampled while the heap probes were on (`heap`). A request
/// counts in the interval it ended in. What requests in flight hold at a report is
/// modelled where reports come at moments that have nothing to do with the requests (Go's
/// concurrent collector ends its marking on its own schedule; the heap is sampled on a
/// timer): each route has a second column, the change in how many of its requests were
/// running at the interval's two ends, whose coefficient (what a request holds while it
/// runs) is fitted and set aside. This is what separates requests that share a thread (an
/// event loop), whose memory the origin cannot tell apart. Not on a JVM, whose collections
/// stop the world when an allocation finds no room: the request in flight then is mostly
/// the one whose allocation started it, before it holds anything, and modelling it fitted
/// worse (at -c8: 200 to 270 KiB of 256, against 264 to 274). (Ruby's collections start from an allocation
/// too, but once it is made: the request that made it holds it, as the model has it.) What the model misses (a
/// buffer still referenced just after its request's last write) shows as spikes (+2 MiB,
/// then −2 MiB) that the robust fit ([`fit_robust`]) weighs down. A gap of more than
/// [`HEAP_GAP`] sample intervals between followed-heap samples (the probes off) starts a
/// new series.
fn live_heap_rows(
    rec: &Recording,
    (from, to): (i64, i64),
    columns: &Columns,
    swept: bool,
) -> Q<Option<Rows>> {
    let mut points = rec.live_heap(from, to)?;
    // A followed heap as collections left it and what runtimes report are not one series (a
    // Go process gives both): one or the other is fitted.
    points.retain(|p| is_swept(&p.source) == swept);
    let signal = signal_of(points.iter().map(|p| p.source.as_str()));
    let collected = signal != Signal::Heap;
    let jvm = points.iter().any(|p| p.source == "jvm");
    let gap = rec
        .meta_i64(meta::SAMPLE_INTERVAL_MS)?
        .unwrap_or(100)
        .saturating_mul(1_000_000)
        .saturating_mul(HEAP_GAP);
    // Series of one process's reports, in time order (the query orders them by process
    // and time).
    let mut series: Vec<(u32, Vec<(i64, i64)>)> = Vec::new();
    for p in points.iter().filter(|p| (p.source != "heap") == collected) {
        match series.last_mut() {
            Some((pid, v))
                if *pid == p.pid
                    && (collected || v.last().is_some_and(|l| p.ts_ns - l.0 <= gap)) =>
            {
                v.push((p.ts_ns, p.bytes));
            }
            _ => series.push((p.pid, vec![(p.ts_ns, p.bytes)])),
        }
    }
    series.retain(|(_, v)| v.len() >= 2);
    // Each process's series, and the row of each series' first interval.
    let mut of_pid: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    let mut first_row = Vec::with_capacity(series.len());
    let mut n = 0;
    for (i, (pid, v)) in series.iter().enumerate() {
        of_pid.entry(*pid).or_default().push(i);
        first_row.push(n);
        n += v.len() - 1;
    }
    let routes = columns.count;
    let (Some(t0), Some(t1)) = (
        series.iter().map(|(_, v)| v[0].0).min(),
        series.iter().map(|(_, v)| v[v.len() - 1].0).max(),
    ) else {
        return Ok(None);
    };
    let (first_s, last_s) = rollup_seconds(t0, t1);
    let exact = rec.rollup_request_count(first_s, last_s)? <= EXACT_LIMIT;
    // Requests in flight are known from each request's start and end alone.
    let in_flight = exact && !jvm;
    let cols = if in_flight { 2 * routes } else { routes };
    if n < MIN_GC_INTERVALS.max(cols + 3) {
        return Ok(None);
    }
    let mut x = vec![0.0; n * cols];
    if exact {
        rec.request_ends(t0, t1, |r| {
            let (Some(list), Some(c)) = (of_pid.get(&r.pid), columns.of(&r.method, &r.route))
            else {
                return;
            };
            for &i in list {
                let v = &series[i].1;
                let row = first_row[i];
                // The interval (a, b] it ended in.
                let k = v.partition_point(|&(ts, _)| ts < r.end_ns);
                if k >= 1 && k < v.len() {
                    x[(row + k - 1) * cols + c] += 1.0;
                }
                if !in_flight {
                    continue;
                }
                // The moments that found it running: moment j ends row j - 1 (where it
                // adds) and begins row j (where it takes away).
                let first = v.partition_point(|&(ts, _)| ts < r.start_ns);
                for j in first..k.min(v.len()) {
                    if j >= 1 {
                        x[(row + j - 1) * cols + routes + c] += 1.0;
                    }
                    if j + 1 < v.len() {
                        x[(row + j) * cols + routes + c] -= 1.0;
                    }
                }
            }
        })?;
    } else if let [(_, v)] = series.as_slice() {
        // Too many requests to read one by one: whole seconds from the rollup, each
        // second's requests at its middle, all of them the one reporting process's.
        for (second, method, route, count) in rec.route_counts_per_second(first_s, last_s)? {
            let t = second * NS_PER_SEC + 500_000_000;
            let k = v.partition_point(|&(ts, _)| ts < t);
            if let Some(c) = columns.of(&method, &route)
                && k >= 1
                && k < v.len()
            {
                x[(k - 1) * cols + c] += count as f64;
            }
        }
    } else {
        return Ok(None);
    }
    let y: Vec<f64> = series
        .iter()
        .flat_map(|(_, v)| v.windows(2).map(|w| (w[1].1 - w[0].1) as f64))
        .collect();
    Ok(Some(Rows {
        x,
        y,
        n,
        cols,
        interval_ns: (t1 - t0) / n as i64,
        signal,
        primary: jvm,
    }))
}

/// What the live-heap rows of these `sources` are, as a signal: the heap sampled as it goes
/// (`heap`) only where no process has reports at collections; the followed heap as collections
/// left it wherever there is one ([`is_swept`]: it follows each block, where a runtime's own
/// figure counts what its collector marked, including what was allocated while it marked);
/// otherwise what the runtimes reported (`jvm`, `go`).
fn signal_of<'a>(sources: impl Iterator<Item = &'a str> + Clone) -> Signal {
    if sources.clone().all(|s| s == "heap") {
        Signal::Heap
    } else if sources.clone().any(is_swept) {
        let mut swept = sources.filter(|s| is_swept(s));
        if swept.clone().all(|s| s == "go_kept") {
            Signal::KeptSpans
        } else if swept.all(|s| s == "ruby") {
            Signal::KeptHeap
        } else {
            Signal::SweptHeap
        }
    } else {
        Signal::LiveHeap
    }
}

/// Whether rows of `source` are a followed heap as a collection left it: read at V8's sweep
/// (`node`), or what a Ruby or Go collection kept of the followed blocks (`ruby`, `go_kept`).
fn is_swept(source: &str) -> bool {
    matches!(source, "node" | "ruby" | "go_kept")
}

/// Rows from the targets' summed resident set, over even intervals of at least
/// [`MIN_INTERVAL_NS`]. `None` when the range has too few.
fn rss_rows(rec: &Recording, from: i64, to: i64, columns: &Columns) -> Q<Option<Rows>> {
    let samples = rec.sample_series(Some((from, to)))?.rows;
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return Ok(None);
    };
    let (t0, t1) = (first.ts_ns, last.ts_ns);
    let width = ((t1 - t0) / MAX_INTERVALS).max(MIN_INTERVAL_NS);
    let n = usize::try_from((t1 - t0) / width).unwrap_or(0);
    let cols = columns.count;
    if n < MIN_INTERVALS.max(cols * 3) {
        return Ok(None);
    }
    let bucket = |t: i64| -> Option<usize> {
        if t <= t0 {
            return None;
        }
        let k = usize::try_from((t - t0 - 1) / width).ok()?;
        (k < n).then_some(k)
    };
    let mut x = vec![0.0; n * cols];
    let mut add = |t: i64, method: &str, route: &str, count: f64| {
        if let (Some(k), Some(c)) = (bucket(t), columns.of(method, route)) {
            x[k * cols + c] += count;
        }
    };
    let (first_s, last_s) = rollup_seconds(t0, t1);
    if rec.rollup_request_count(first_s, last_s)? <= EXACT_LIMIT {
        rec.each_request_figures(t0, t1, 1, |r| add(r.end_ns, &r.method, &r.route, 1.0))?;
    } else {
        // Whole seconds from the rollup: each second's requests at its middle.
        for (second, method, route, count) in rec.route_counts_per_second(first_s, last_s)? {
            add(
                second * NS_PER_SEC + 500_000_000,
                &method,
                &route,
                count as f64,
            );
        }
    }
    // The resident set at each interval's end: the last sample at or before it.
    let mut at_end = Vec::with_capacity(n + 1);
    let mut i = 0;
    for k in 0..=n {
        let edge = t0 + k as i64 * width;
        while i + 1 < samples.len() && samples[i + 1].ts_ns <= edge {
            i += 1;
        }
        at_end.push(samples[i].rss_bytes as f64);
    }
    let y: Vec<f64> = at_end.windows(2).map(|w| w[1] - w[0]).collect();
    Ok(Some(Rows {
        x,
        y,
        n,
        cols,
        interval_ns: width,
        signal: Signal::Rss,
        primary: false,
    }))
}

/// Whether `e`'s origin figure lies outside the regression's interval by more than either's
/// slack, and which to trust: the origin where it followed every request's memory (the heap
/// followed throughout, each request on a thread of its own), or where it followed part of
/// them and what those kept is known more closely than the regression knows it (a narrower
/// 95% interval: at Node.js's maximum rate the regression, fitted over the second the probes
/// were on, put `/churn` at 217 KiB, 86 to 348, where the origin's followed requests kept
/// 1.5 KiB); the regression otherwise.
fn disagreement(e: &Endpoint, r: &RouteEstimate, origin_trusted: bool) -> Option<Disagreement> {
    let (lo, hi) = (
        r.kept_per_request_low_bytes?,
        r.kept_per_request_high_bytes?,
    );
    let o = e.kept_per_request_bytes;
    let slack = (o.abs().max(hi.abs()) / 5).max(16 * 1024);
    if o >= lo - slack && o <= hi + slack {
        return None;
    }
    let own_thread = origin_trusted && e.approximate == 0;
    let followed = own_thread && e.sampled.is_none();
    let closer = own_thread
        && e.sampled.is_some_and(|s| {
            s.kept_per_request_low_bytes
                .zip(s.kept_per_request_high_bytes)
                .is_some_and(|(slo, shi)| shi - slo < hi - lo)
        });
    Some(Disagreement {
        method: e.method.clone(),
        route: e.route.clone(),
        origin_bytes: o,
        regression_bytes: r.kept_per_request_bytes,
        trust: if followed || closer {
            "origin"
        } else {
            "regression"
        },
        why: if followed {
            "the heap was followed throughout and each request ran on a thread of its own: \
             the origin figure saw every page change hands, while the resident set also moves \
             with collections and allocator caches"
        } else if closer {
            "the heap probes followed part of this route's requests (their budget was spent), \
             each on a thread of its own, and what those kept is known more closely (a \
             narrower 95% interval) than the regression, fitted while the probes were on, \
             knows it"
        } else if e.sampled.is_some() {
            "the heap probes followed part of this route's requests (their budget was spent), \
             and the regression counts all of them"
        } else if e.approximate > 0 {
            "requests shared a thread (an event loop), so the origin figure had to guess whose \
             memory was whose; the regression needs no such guess"
        } else {
            "the heap was not followed, so memory reused inside the allocator stayed with the \
             request that first made it resident"
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::{regression::kept_from::tests::route, report::Sampled};

    /// Where the origin followed only part of a route's requests, the closer of the two
    /// estimates is trusted: the origin's where its interval is narrower than the regression's
    /// (Node.js at its maximum rate: `/churn` kept 1.5 KiB by its followed requests, 217 KiB
    /// by a fit over one window), the regression's where the few requests followed say less.
    #[test]
    fn a_sampled_origin_is_trusted_where_it_is_known_more_closely() {
        let regression = RouteEstimate {
            kept_per_request_bytes: 217 * 1024,
            kept_per_request_low_bytes: Some(86 * 1024),
            kept_per_request_high_bytes: Some(348 * 1024),
        };
        let mut churn = route("/churn", 2000, 0, None);
        churn.kept_per_request_bytes = 1536;
        churn.sampled = Some(Sampled {
            followed_requests: 480,
            kept_per_request_low_bytes: Some(0),
            kept_per_request_high_bytes: Some(4096),
        });
        let d = disagreement(&churn, &regression, true).unwrap();
        assert_eq!((d.trust, d.origin_bytes), ("origin", 1536));
        assert!(d.why.contains("known more closely"), "{}", d.why);
        // Followed for a handful of requests, its interval wider than the fit's.
        churn.sampled = Some(Sampled {
            followed_requests: 12,
            kept_per_request_low_bytes: Some(0),
            kept_per_request_high_bytes: Some(400 * 1024),
        });
        let d = disagreement(&churn, &regression, true).unwrap();
        assert_eq!(d.trust, "regression");
        assert!(d.why.contains("budget was spent"), "{}", d.why);
        // No interval at all (too few steps to judge from), or requests sharing a thread.
        churn.sampled = Some(Sampled {
            followed_requests: 2,
            kept_per_request_low_bytes: None,
            kept_per_request_high_bytes: None,
        });
        assert_eq!(
            disagreement(&churn, &regression, true).unwrap().trust,
            "regression"
        );
        churn.sampled = Some(Sampled {
            followed_requests: 480,
            kept_per_request_low_bytes: Some(0),
            kept_per_request_high_bytes: Some(4096),
        });
        churn.approximate = 1500;
        assert_eq!(
            disagreement(&churn, &regression, true).unwrap().trust,
            "regression"
        );
    }

    /// A Node.js process's rows at V8's sweeps are a followed heap, not a runtime's report;
    /// beside a runtime's reports, the reports are the signal; samples count only alone.
    #[test]
    fn the_signal_is_named_by_its_sources() {
        let of = |sources: &[&str]| signal_of(sources.iter().copied());
        assert_eq!(of(&["heap", "heap"]), Signal::Heap);
        assert_eq!(of(&["node", "node"]), Signal::SweptHeap);
        assert_eq!(of(&["heap", "node"]), Signal::SweptHeap);
        assert_eq!(of(&["ruby", "node"]), Signal::SweptHeap);
        assert_eq!(of(&["ruby", "ruby"]), Signal::KeptHeap);
        assert_eq!(of(&["go", "node"]), Signal::SweptHeap);
        assert_eq!(of(&["go", "go_kept"]), Signal::KeptSpans);
        assert_eq!(of(&["go", "heap"]), Signal::LiveHeap);
        assert_eq!(of(&["jvm", "heap"]), Signal::LiveHeap);
        assert_eq!(
            serde_json::to_string(&Signal::SweptHeap).unwrap(),
            "\"swept_heap\""
        );
        assert_eq!(
            serde_json::to_string(&Signal::LiveHeap).unwrap(),
            "\"live_heap\""
        );
    }
}
