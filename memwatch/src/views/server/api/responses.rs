//! The API's answers (`docs/api.md`) as typed structs, each read from the recording by its
//! `read` function. Times go out as epoch milliseconds.
//!
//! Rows that do not decode are skipped, as the page would rather show what it can, but never
//! silently: every answer that lists rows says how many it skipped in `undecodable_rows`, and
//! the query logs the first one's error.
//!
//! Fields are declared in alphabetical order at every level, because that is the order the API
//! has always sent (its answers used to be `serde_json::Value` maps, which sort their keys) and
//! clients may compare answers byte for byte. `tests::keys_are_sorted` holds every answer to it;
//! that is also why the report's types are not serialised here directly but copied into
//! structs of this module.

use std::collections::BTreeMap;

use serde::Serialize;

use super::MS;
use crate::{
    recording::{
        Recording,
        query::{
            self, Range,
            log_lines::LogLineEntry,
            memory::LargeMemEvent,
            requests::{CountFrom, RequestEntry, RequestFilter, rollup_seconds},
            retained::{RetainedOverTime, RouteSeries},
        },
    },
    views::{flame, report, server::ApiError},
};

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

/// `GET /api/summary`.
#[derive(Debug, Serialize)]
pub(crate) struct Summary {
    pub access_log: Option<AccessLog>,
    pub approximate_requests: u64,
    pub dropped_events: u64,
    pub duration_s: f64,
    pub ended_ms: Option<i64>,
    pub events: u64,
    pub latest_ms: i64,
    pub live: bool,
    pub lost: Lost,
    pub memory: Memory,
    /// memwatch's own figures (the report's `memwatch`); `null` until the recording closes.
    pub memwatch: Option<report::OwnState>,
    pub non_http: BTreeMap<String, u64>,
    pub processes: Vec<Process>,
    /// Whether query strings were dropped before storing (`--redact-query`); `null` when the
    /// recording does not say (made before memwatch recorded it).
    pub redact_query: Option<bool>,
    pub requests: u64,
    pub started_ms: i64,
    /// Samples, and rejected access-log lines' text, that did not decode and were left out.
    pub undecodable_rows: u64,
}

/// The report's `access_log` object.
#[derive(Debug, Serialize)]
pub(crate) struct AccessLog {
    pub format: Vec<String>,
    pub invalid_requests: u64,
    pub lines: u64,
    pub matched: u64,
    pub mode: String,
    pub parsed: u64,
    pub rejected: BTreeMap<String, u64>,
    pub rejected_examples: Vec<String>,
    pub sources: Vec<String>,
    pub unmatched_lines: u64,
    pub unmatched_requests: u64,
}

/// The report's `lost` object.
#[derive(Debug, Serialize)]
pub(crate) struct Lost {
    pub dropped_events: u64,
    pub map_full: u64,
    pub undecodable: u64,
    pub unpaired_exits: u64,
}

/// Memory of the whole target: RSS and VmSize summed over the processes.
#[derive(Debug, Serialize)]
pub(crate) struct Memory {
    pub page_faults: u64,
    pub rss_end_bytes: i64,
    pub rss_peak_bytes: i64,
    pub rss_start_bytes: i64,
    pub vm_end_bytes: i64,
    pub vm_peak_bytes: i64,
    pub vm_start_bytes: i64,
}

#[derive(Debug, Serialize)]
pub(crate) struct Process {
    pub comm: String,
    pub exited_ms: Option<i64>,
    pub origin: String,
    pub pid: u32,
    pub ppid: Option<u32>,
    pub started_ms: Option<i64>,
}

impl From<report::AccessLog> for AccessLog {
    fn from(a: report::AccessLog) -> Self {
        let report::AccessLog {
            sources,
            format,
            mode,
            lines,
            parsed,
            rejected,
            invalid_requests,
            matched,
            unmatched_lines,
            unmatched_requests,
            rejected_examples,
            // Counted in the summary's `undecodable_rows`.
            undecodable_examples: _,
        } = a;
        Self {
            format,
            invalid_requests,
            lines,
            matched,
            mode,
            parsed,
            rejected,
            rejected_examples,
            sources,
            unmatched_lines,
            unmatched_requests,
        }
    }
}

impl From<query::Lost> for Lost {
    fn from(l: query::Lost) -> Self {
        let query::Lost {
            dropped_events,
            unpaired_exits,
            map_full,
            undecodable,
        } = l;
        Self {
            dropped_events,
            map_full,
            undecodable,
            unpaired_exits,
        }
    }
}

impl From<query::Process> for Process {
    fn from(p: query::Process) -> Self {
        let query::Process {
            pid,
            ppid,
            comm,
            cmdline: _,
            origin,
            started_ns,
            exited_ns,
            exit_code: _,
        } = p;
        Self {
            comm,
            exited_ms: ms(exited_ns),
            origin,
            pid,
            ppid,
            started_ms: ms(started_ns),
        }
    }
}

impl Summary {
    pub(crate) fn read(rec: &Recording, live: bool) -> Result<Self, ApiError> {
        let (started, ended, latest) = bounds(rec)?;
        let counters = rec.counters()?;
        let samples = rec.sample_series(None)?;
        let series = samples.rows;
        let first = series.first().map_or((0, 0), |p| (p.rss_bytes, p.vm_bytes));
        let last = series.last().map_or((0, 0), |p| (p.rss_bytes, p.vm_bytes));
        let memory = Memory {
            page_faults: rec.total_faults()?,
            rss_end_bytes: last.0,
            rss_peak_bytes: series.iter().map(|p| p.rss_bytes).max().unwrap_or(0),
            rss_start_bytes: first.0,
            vm_end_bytes: last.1,
            vm_peak_bytes: series.iter().map(|p| p.vm_bytes).max().unwrap_or(0),
            vm_start_bytes: first.1,
        };
        let access_log = report::AccessLog::read(rec)?;
        let undecodable_rows = samples
            .undecodable
            .saturating_add(access_log.as_ref().map_or(0, |a| a.undecodable_examples));
        Ok(Self {
            access_log: access_log.map(AccessLog::from),
            approximate_requests: rec.approximate_request_count()?,
            dropped_events: counters.lost.dropped_events,
            duration_s: ended.unwrap_or(latest).saturating_sub(started).max(0) as f64 / 1e9,
            ended_ms: ms(ended),
            events: counters.events,
            latest_ms: latest / MS,
            live,
            lost: counters.lost.into(),
            memory,
            memwatch: report::OwnState::read(rec)?,
            non_http: rec.non_http_counts()?,
            processes: rec.processes()?.into_iter().map(Process::from).collect(),
            redact_query: report::redact_query(rec)?,
            requests: rec.request_count()?,
            started_ms: started / MS,
            undecodable_rows,
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
pub(super) fn downsample(
    points: &[(i64, i64)],
    from: i64,
    to: i64,
    buckets: usize,
) -> (Vec<i64>, Vec<i64>) {
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

/// `GET /api/endpoints`.
#[derive(Debug, Serialize)]
pub(crate) struct Endpoints {
    pub endpoints: Vec<Endpoint>,
    pub from_ms: Option<i64>,
    pub non_http: BTreeMap<String, u64>,
    /// Retained memory of the range and its reconciliation with the resident set (null for
    /// recordings before schema 3). Keys as in the report's `retained`.
    pub retained: Option<report::RetainedSummary>,
    pub to_ms: Option<i64>,
    pub unmatched_lines: i64,
}

/// The report's endpoint object.
#[derive(Debug, Serialize)]
pub(crate) struct Endpoint {
    pub approximate: u64,
    pub duration_ms_p50: f64,
    pub duration_ms_p95: f64,
    pub grown_bytes: i64,
    /// `origin` or `regression`: see [`report::Endpoint::kept_from`].
    pub kept_from: &'static str,
    pub kept_per_request_bytes: i64,
    pub mem_calls: u64,
    pub method: String,
    pub page_faults: u64,
    /// The regression's estimate of kept per request (keys as in the report).
    pub regression: Option<report::RouteEstimate>,
    pub released_bytes: i64,
    pub requests: u64,
    pub retained_bytes: i64,
    pub retention: &'static str,
    pub route: String,
    pub rss_bytes: i64,
    pub rss_bytes_mean: i64,
    pub rss_bytes_per_request_p50: i64,
    pub rss_bytes_per_request_p95: i64,
    /// Present when the heap budget left some of the route's requests unfollowed: its figures
    /// rest on the followed ones (keys as in the report).
    pub sampled: Option<report::Sampled>,
    pub statuses: BTreeMap<String, u64>,
    pub vm_bytes: i64,
    pub vm_bytes_mean: i64,
    pub vm_bytes_per_request_p50: i64,
    pub vm_bytes_per_request_p95: i64,
    pub vm_mapped_bytes: Option<i64>,
    pub vm_released_bytes: Option<i64>,
    pub vm_retained_bytes: Option<i64>,
}

impl From<report::Endpoint> for Endpoint {
    fn from(e: report::Endpoint) -> Self {
        let report::Endpoint {
            method,
            route,
            requests,
            statuses,
            vm_bytes,
            rss_bytes,
            page_faults,
            mem_calls,
            approximate,
            vm_bytes_mean,
            rss_bytes_mean,
            vm_bytes_per_request_p50,
            vm_bytes_per_request_p95,
            rss_bytes_per_request_p50,
            rss_bytes_per_request_p95,
            duration_ms_p50,
            duration_ms_p95,
            grown_bytes,
            released_bytes,
            retained_bytes,
            kept_per_request_bytes,
            retention,
            vm_mapped_bytes,
            vm_released_bytes,
            vm_retained_bytes,
            sampled,
            regression,
            kept_from,
        } = e;
        Self {
            approximate,
            duration_ms_p50,
            duration_ms_p95,
            grown_bytes,
            kept_from,
            kept_per_request_bytes,
            mem_calls,
            method,
            page_faults,
            regression,
            released_bytes,
            requests,
            retained_bytes,
            retention,
            route,
            rss_bytes,
            rss_bytes_mean,
            rss_bytes_per_request_p50,
            rss_bytes_per_request_p95,
            sampled,
            statuses,
            vm_bytes,
            vm_bytes_mean,
            vm_bytes_per_request_p50,
            vm_bytes_per_request_p95,
            vm_mapped_bytes,
            vm_released_bytes,
            vm_retained_bytes,
        }
    }
}

impl Endpoints {
    /// The routes hit by requests that ended in `range`.
    pub(crate) fn read(rec: &Recording, range: Range) -> Result<Self, ApiError> {
        let (from, to) = (range.from_ns.unwrap_or(0), range.to_ns.unwrap_or(i64::MAX));
        let mut endpoints = report::endpoints(rec, range)?;
        let retained = report::RetainedSummary::read(rec, range, &mut endpoints)?;
        Ok(Self {
            endpoints: endpoints.into_iter().map(Endpoint::from).collect(),
            from_ms: ms(range.from_ns),
            non_http: rec.non_http_counts_between(from, to)?,
            retained,
            to_ms: ms(range.to_ns),
            unmatched_lines: rec.unmatched_line_count_between(from, to)?,
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

/// `GET /api/stacks`.
#[derive(Debug, Serialize)]
pub(crate) struct Stacks {
    /// Call sites that retain something and were left out by the bounds (their bytes count in
    /// their callers').
    pub folded_nodes: u64,
    /// What the outermost of those retain.
    pub folded_retained_bytes: i64,
    pub from_ms: Option<i64>,
    /// Over every call site of the range (and route).
    pub grown_bytes: i64,
    /// Whether the recording was made with `record --stacks`.
    pub recorded: bool,
    pub retained_bytes: i64,
    /// The outermost frames, most retained first.
    pub roots: Vec<StackNode>,
    pub routes: Vec<StackRoute>,
    pub routes_folded: u64,
    pub to_ms: Option<i64>,
}

/// A call site.
#[derive(Debug, Serialize)]
pub(crate) struct StackNode {
    /// The functions it called, most retained first.
    pub children: Vec<StackNode>,
    pub grown_bytes: i64,
    /// Null for `[no stack taken]`.
    pub module: Option<String>,
    pub name: String,
    pub retained_bytes: i64,
    /// The routes that reached it, most retained first.
    pub routes: Vec<StackRoute>,
    /// Routes that reached it and are not listed.
    pub routes_folded: u64,
}

/// What a route's requests did through a call site.
#[derive(Debug, Serialize)]
pub(crate) struct StackRoute {
    pub grown_bytes: i64,
    pub method: String,
    pub retained_bytes: i64,
    /// `""` for memory made outside any request.
    pub route: String,
}

impl From<flame::RouteBytes> for StackRoute {
    fn from(r: flame::RouteBytes) -> Self {
        let flame::RouteBytes {
            method,
            route,
            grown,
            retained,
        } = r;
        Self {
            grown_bytes: grown,
            method,
            retained_bytes: retained,
            route,
        }
    }
}

impl From<flame::CallNode> for StackNode {
    fn from(n: flame::CallNode) -> Self {
        let flame::CallNode {
            name,
            module,
            grown,
            retained,
            routes,
            routes_folded,
            children,
        } = n;
        Self {
            children: children.into_iter().map(Self::from).collect(),
            grown_bytes: grown,
            module,
            name,
            retained_bytes: retained,
            routes: routes.into_iter().map(StackRoute::from).collect(),
            routes_folded,
        }
    }
}

impl Stacks {
    /// Retained memory by call site for the requests that ended in `range` (the whole recording
    /// by default), only `route`'s and `method`'s when given.
    pub(crate) fn read(
        rec: &Recording,
        range: Range,
        route: Option<&str>,
        method: Option<&str>,
    ) -> Result<Self, ApiError> {
        let (from, to) = (range.from_ns.unwrap_or(0), range.to_ns.unwrap_or(i64::MAX));
        let flame::CallTree {
            recorded,
            grown,
            retained,
            routes,
            routes_folded,
            roots,
            folded_nodes,
            folded_retained,
        } = flame::CallTree::read(rec, (from, to), route, method, flame::Limits::default())?;
        Ok(Self {
            folded_nodes,
            folded_retained_bytes: folded_retained,
            from_ms: ms(range.from_ns),
            grown_bytes: grown,
            recorded,
            retained_bytes: retained,
            roots: roots.into_iter().map(StackNode::from).collect(),
            routes: routes.into_iter().map(StackRoute::from).collect(),
            routes_folded,
            to_ms: ms(range.to_ns),
        })
    }
}

/// `GET /api/requests`.
#[derive(Debug, Serialize)]
pub(crate) struct Requests {
    pub requests: Vec<Request>,
    /// Every request the filter selects, listed or not.
    pub total: i64,
    /// Fewer requests listed than `total`: past `limit`, or left out as undecodable.
    pub truncated: bool,
    /// Requests within `limit` that did not decode and were left out.
    pub undecodable_rows: u64,
}

#[derive(Debug, Serialize)]
pub(crate) struct Request {
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub duration_ms: f64,
    pub end_ms: i64,
    pub exact: bool,
    /// Bytes it made resident, each page once (null without retained figures).
    pub grown_bytes: Option<i64>,
    pub host: Option<String>,
    pub id: i64,
    pub method: Option<String>,
    pub pid: i64,
    /// Of `grown_bytes`, released by the end of the range (to the second), by itself or later
    /// by any thread.
    pub released_bytes: Option<i64>,
    /// What it kept: `grown_bytes` − `released_bytes`.
    pub retained_bytes: Option<i64>,
    pub route: Option<String>,
    /// Page faults × the page size while it ran: gross, 0 for memory reused without a fault.
    pub rss_bytes: i64,
    pub start_ms: i64,
    pub status: Option<i64>,
    pub target: Option<String>,
    pub tid: i64,
    pub user_agent: Option<String>,
    pub vm_bytes: i64,
}

impl From<RequestEntry> for Request {
    fn from(r: RequestEntry) -> Self {
        let RequestEntry {
            id,
            start_ns,
            end_ns,
            pid,
            tid,
            method,
            target,
            route,
            host,
            status,
            bytes_in,
            bytes_out,
            vm_bytes,
            rss_bytes,
            exact,
            user_agent,
            grown,
            released,
        } = r;
        Self {
            bytes_in,
            bytes_out,
            duration_ms: end_ns.saturating_sub(start_ns) as f64 / 1e6,
            end_ms: end_ns / MS,
            exact,
            grown_bytes: grown,
            host,
            id,
            method,
            pid,
            released_bytes: released,
            retained_bytes: grown.zip(released).map(|(g, r)| g.saturating_sub(r)),
            route,
            rss_bytes,
            start_ms: start_ns / MS,
            status,
            target,
            tid,
            user_agent,
            vm_bytes,
        }
    }
}

impl Requests {
    /// The `limit` newest requests `filter` selects, and how many it selects.
    pub(crate) fn read(
        rec: &Recording,
        filter: &RequestFilter,
        limit: i64,
    ) -> Result<Self, ApiError> {
        let total = rec.matching_request_count(filter)?;
        let newest = rec.newest_requests(filter, limit)?;
        let requests: Vec<Request> = newest.rows.into_iter().map(Request::from).collect();
        Ok(Self {
            truncated: total > requests.len() as i64,
            requests,
            total,
            undecodable_rows: newest.undecodable,
        })
    }
}

/// `GET /api/log_lines`.
#[derive(Debug, Serialize)]
pub(crate) struct LogLines {
    pub lines: Vec<LogLine>,
    /// Lines within `limit` that did not decode and were left out.
    pub undecodable_rows: u64,
}

#[derive(Debug, Serialize)]
pub(crate) struct LogLine {
    pub arrived_ms: i64,
    pub method: Option<String>,
    pub ok: bool,
    pub raw: Option<String>,
    pub reason: Option<String>,
    pub status: Option<i64>,
    pub target: Option<String>,
    pub ts_ms: Option<i64>,
}

impl From<LogLineEntry> for LogLine {
    fn from(l: LogLineEntry) -> Self {
        let LogLineEntry {
            arrived_ns,
            ts_ns,
            ok,
            reason,
            raw,
            method,
            target,
            status,
        } = l;
        Self {
            arrived_ms: arrived_ns / MS,
            method,
            ok,
            raw,
            reason,
            status,
            target,
            ts_ms: ts_ns.map(|t| t / MS),
        }
    }
}

impl LogLines {
    /// The `limit` newest lines that arrived in `range` and were rejected or matched nothing.
    pub(crate) fn read(rec: &Recording, range: Range, limit: i64) -> Result<Self, ApiError> {
        let (from, to) = (range.from_ns.unwrap_or(0), range.to_ns.unwrap_or(i64::MAX));
        let lines = rec.unmatched_or_rejected_lines(from, to, limit)?;
        Ok(Self {
            lines: lines.rows.into_iter().map(LogLine::from).collect(),
            undecodable_rows: lines.undecodable,
        })
    }
}

/// The data of a `GET /api/stream` `update` event.
#[derive(Debug, Serialize)]
pub(super) struct Update {
    pub dropped_events: u64,
    pub latest_ms: i64,
    pub live: bool,
    pub requests: u64,
}

impl Update {
    pub(super) fn read(rec: &Recording, live: bool) -> Result<Self, ApiError> {
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
    use std::fmt;

    use serde::de::{self, Deserialize, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};

    use super::*;

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

    /// Any JSON value whose objects, at every depth, have their keys in ascending order.
    struct Sorted;

    impl<'de> Deserialize<'de> for Sorted {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(SortedVisitor)
        }
    }

    struct SortedVisitor;

    impl<'de> Visitor<'de> for SortedVisitor {
        type Value = Sorted;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("JSON whose object keys are sorted")
        }

        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Sorted, E> {
            Ok(Sorted)
        }

        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Sorted, E> {
            Ok(Sorted)
        }

        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Sorted, E> {
            Ok(Sorted)
        }

        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Sorted, E> {
            Ok(Sorted)
        }

        fn visit_str<E: de::Error>(self, _: &str) -> Result<Sorted, E> {
            Ok(Sorted)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Sorted, E> {
            Ok(Sorted)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Sorted, A::Error> {
            while seq.next_element::<Sorted>()?.is_some() {}
            Ok(Sorted)
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Sorted, A::Error> {
            let mut previous: Option<String> = None;
            while let Some(key) = map.next_key::<String>()? {
                if let Some(previous) = previous.as_ref().filter(|p| **p >= key) {
                    return Err(A::Error::custom(format!(
                        "{key:?} comes after {previous:?}"
                    )));
                }
                map.next_value::<Sorted>()?;
                previous = Some(key);
            }
            Ok(Sorted)
        }
    }

    fn assert_sorted(answer: &impl Serialize) {
        let json = serde_json::to_string(answer).unwrap();
        if let Err(e) = serde_json::from_str::<Sorted>(&json) {
            panic!("keys out of order ({e}) in {json}");
        }
    }

    /// Every answer, with every optional object and list filled, sends its keys sorted.
    #[test]
    fn keys_are_sorted() {
        assert!(serde_json::from_str::<Sorted>(r#"[{"a": {"c": 1, "b": 2}}]"#).is_err());
        let counts = BTreeMap::from([("a".to_owned(), 1), ("b".to_owned(), 2)]);
        assert_sorted(&Summary {
            access_log: Some(AccessLog {
                format: vec!["combined".into()],
                invalid_requests: 0,
                lines: 3,
                matched: 1,
                mode: "joined".into(),
                parsed: 2,
                rejected: counts.clone(),
                rejected_examples: vec!["x".into()],
                sources: vec!["access.log".into()],
                unmatched_lines: 1,
                unmatched_requests: 0,
            }),
            approximate_requests: 0,
            dropped_events: 0,
            duration_s: 1.5,
            ended_ms: Some(2),
            events: 10,
            latest_ms: 2,
            live: false,
            lost: Lost {
                dropped_events: 0,
                map_full: 0,
                undecodable: 0,
                unpaired_exits: 0,
            },
            memory: Memory {
                page_faults: 1,
                rss_end_bytes: 1,
                rss_peak_bytes: 1,
                rss_start_bytes: 1,
                vm_end_bytes: 1,
                vm_peak_bytes: 1,
                vm_start_bytes: 1,
            },
            memwatch: Some(report::OwnState {
                kernel_map_entries: counts.clone(),
                ..report::OwnState::default()
            }),
            non_http: counts.clone(),
            processes: vec![Process {
                comm: "server".into(),
                exited_ms: None,
                origin: "attached".into(),
                pid: 1,
                ppid: Some(0),
                started_ms: Some(0),
            }],
            redact_query: Some(false),
            requests: 1,
            started_ms: 0,
            undecodable_rows: 0,
        });
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
        assert_sorted(&Endpoints {
            endpoints: vec![Endpoint {
                approximate: 0,
                duration_ms_p50: 0.1,
                duration_ms_p95: 0.2,
                grown_bytes: 8192,
                kept_from: "origin",
                kept_per_request_bytes: 4096,
                mem_calls: 1,
                method: "GET".into(),
                page_faults: 1,
                regression: Some(report::RouteEstimate {
                    kept_per_request_bytes: 4000,
                    kept_per_request_high_bytes: Some(4500),
                    kept_per_request_low_bytes: Some(3500),
                }),
                released_bytes: 4096,
                requests: 1,
                retained_bytes: 4096,
                retention: "keeps",
                route: "/".into(),
                rss_bytes: 4096,
                rss_bytes_mean: 4096,
                rss_bytes_per_request_p50: 4096,
                rss_bytes_per_request_p95: 4096,
                sampled: Some(report::Sampled {
                    followed_requests: 1,
                    kept_per_request_low_bytes: Some(0),
                    kept_per_request_high_bytes: Some(1),
                }),
                statuses: counts.clone(),
                vm_bytes: 0,
                vm_bytes_mean: 0,
                vm_bytes_per_request_p50: 0,
                vm_bytes_per_request_p95: 0,
                vm_mapped_bytes: Some(0),
                vm_released_bytes: Some(0),
                vm_retained_bytes: Some(0),
            }],
            from_ms: Some(0),
            non_http: counts,
            retained: Some(report::RetainedSummary::default()),
            to_ms: Some(1),
            unmatched_lines: 0,
        });
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
        assert_sorted(&Requests {
            requests: vec![Request {
                bytes_in: 1,
                bytes_out: 1,
                duration_ms: 0.1,
                end_ms: 1,
                exact: true,
                grown_bytes: Some(8192),
                host: Some("localhost".into()),
                id: 1,
                method: Some("GET".into()),
                pid: 1,
                released_bytes: Some(4096),
                retained_bytes: Some(4096),
                route: Some("/".into()),
                rss_bytes: 0,
                start_ms: 0,
                status: Some(200),
                target: Some("/?q".into()),
                tid: 2,
                user_agent: Some("curl".into()),
                vm_bytes: 0,
            }],
            total: 1,
            truncated: false,
            undecodable_rows: 0,
        });
        assert_sorted(&LogLines {
            lines: vec![LogLine {
                arrived_ms: 1,
                method: None,
                ok: false,
                raw: Some("garbage".into()),
                reason: Some("missing_timestamp".into()),
                status: None,
                target: None,
                ts_ms: None,
            }],
            undecodable_rows: 0,
        });
        let route = || StackRoute {
            grown_bytes: 8192,
            method: "GET".into(),
            retained_bytes: 4096,
            route: "/leak".into(),
        };
        assert_sorted(&Stacks {
            folded_nodes: 1,
            folded_retained_bytes: 4096,
            from_ms: Some(0),
            grown_bytes: 8192,
            recorded: true,
            retained_bytes: 4096,
            roots: vec![StackNode {
                children: vec![StackNode {
                    children: vec![],
                    grown_bytes: 8192,
                    module: None,
                    name: "leak".into(),
                    retained_bytes: 4096,
                    routes: vec![route()],
                    routes_folded: 0,
                }],
                grown_bytes: 8192,
                module: Some("/srv/app".into()),
                name: "main".into(),
                retained_bytes: 4096,
                routes: vec![route()],
                routes_folded: 1,
            }],
            routes: vec![route()],
            routes_folded: 0,
            to_ms: Some(1),
        });
        assert_sorted(&Update {
            dropped_events: 0,
            latest_ms: 1,
            live: true,
            requests: 1,
        });
    }

    /// `/api/stacks` for the fixture's route /a: the icicle from `main` in, with stack 0 a root
    /// of its own, and the routes of each call site.
    #[test]
    fn stacks_answer_one_routes_tree() {
        use crate::recording::query::stacks::fixture::{B, S, write};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        write(&path);
        let rec = Recording::open(&path).unwrap();
        let range = Range {
            from_ns: Some(B * S),
            to_ns: Some((B + 1) * S + 999 * MS),
        };
        let answer = Stacks::read(&rec, range, Some("/a"), None).unwrap();
        let a = |kib: i64| {
            serde_json::json!([{"grown_bytes": kib * 1024, "method": "GET",
                                "retained_bytes": kib * 1024, "route": "/a"}])
        };
        let node = |name: &str, module: Option<&str>, kib: i64, children| {
            serde_json::json!({"children": children, "grown_bytes": kib * 1024,
                               "module": module, "name": name, "retained_bytes": kib * 1024,
                               "routes": a(kib), "routes_folded": 0})
        };
        let leak_a = node("leak_a", Some("/srv/app"), 512, serde_json::json!([]));
        let handle = node("handle", Some("/srv/app"), 512, serde_json::json!([leak_a]));
        let main = node("main", Some("/srv/app"), 512, serde_json::json!([handle]));
        let none = node("[no stack taken]", None, 8, serde_json::json!([]));
        assert_eq!(
            serde_json::to_value(&answer).unwrap(),
            serde_json::json!({
                "folded_nodes": 0,
                "folded_retained_bytes": 0,
                "from_ms": B * 1000,
                "grown_bytes": 520 * 1024,
                "recorded": true,
                "retained_bytes": 520 * 1024,
                "roots": [main, none],
                "routes": a(520),
                "routes_folded": 0,
                "to_ms": (B + 1) * 1000 + 999,
            })
        );
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
        rows.push(Row::Request(Box::new(RequestRow {
            id: 1,
            method: Some("GET".into()),
            route: Some("/leak".into()),
            start_ns: (B + 1_290) * MS,
            end_ns: (B + 1_300) * MS,
            exact: true,
            grown: 262_144,
            ..RequestRow::default()
        })));
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

    /// A route's request list says what each request made resident and what it still keeps at
    /// the end of the range (to the second, as the routes' figures), whatever its page faults
    /// were: a request served from reused heap takes none.
    #[test]
    fn requests_carry_what_each_made_resident_and_keeps() {
        use crate::{
            model::{ReleaseRow, RequestRow, Row},
            recording::Writer,
        };
        const B: i64 = 1_800_000_000_000;
        const KIB: u64 = 1024;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let writer = Writer::create(&path, &[]).unwrap();
        let request = |id: i64, end_ms: i64, rss: i64, grown: u64, released: u64| RequestRow {
            id,
            pid: 1,
            tid: 1,
            method: Some("GET".into()),
            route: Some("/leak".into()),
            target: Some(format!("/leak?n={id}")),
            status: Some(200),
            start_ns: (end_ms - 1) * MS,
            end_ns: end_ms * MS,
            exact: true,
            rss_bytes: rss,
            grown,
            released,
            ..RequestRow::default()
        };
        // 1 faults in 64 KiB and keeps them; 2 takes 32 KiB of reused heap (no fault) and frees
        // 8 KiB of it before it ends; 3 keeps 16 KiB until another thread releases them at
        // B+2.5 s.
        let first = request(1, B + 100, 65_536, 64 * KIB, 0);
        let second = request(2, B + 200, 0, 32 * KIB, 8 * KIB);
        let third = request(3, B + 300, 16_384, 16 * KIB, 0);
        let release = Row::Release(Box::new(ReleaseRow {
            ts_ns: (B + 2_500) * MS,
            pid: 1,
            request_id: 3,
            request_end_ns: third.end_ns,
            method: Some("GET".into()),
            route: Some("/leak".into()),
            bytes: 16 * KIB,
        }));
        writer.send(vec![
            Row::Request(Box::new(first)),
            Row::Request(Box::new(second)),
            Row::Request(Box::new(third)),
            release,
        ]);
        writer.finish().unwrap();
        let rec = Recording::open(&path).unwrap();
        let figures = |to_ms: i64| {
            let filter = RequestFilter {
                from_ns: B * MS,
                to_ns: to_ms * MS,
                route: Some("/leak".into()),
                method: Some("GET".into()),
            };
            let answer = serde_json::to_value(Requests::read(&rec, &filter, 200).unwrap()).unwrap();
            answer["requests"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    (
                        r["id"].as_i64().unwrap(),
                        r["rss_bytes"].as_i64().unwrap(),
                        r["grown_bytes"].as_i64().unwrap(),
                        r["released_bytes"].as_i64().unwrap(),
                        r["retained_bytes"].as_i64().unwrap(),
                    )
                })
                .collect::<Vec<_>>()
        };
        // Before the release (newest first).
        assert_eq!(
            figures(B + 1_000),
            [
                (3, 16_384, 16_384, 0, 16_384),
                (2, 0, 32_768, 8_192, 24_576),
                (1, 65_536, 65_536, 0, 65_536),
            ]
        );
        // A range that ends in the second of the release sees it.
        assert_eq!(
            figures(B + 2_100),
            [
                (3, 16_384, 16_384, 16_384, 0),
                (2, 0, 32_768, 8_192, 24_576),
                (1, 65_536, 65_536, 0, 65_536),
            ]
        );

        // A recording without retained figures (schema 2) answers null for them.
        let old = dir.path().join("old.db");
        std::fs::copy(&path, &old).unwrap();
        rusqlite::Connection::open(&old)
            .unwrap()
            .execute_batch("PRAGMA user_version = 2;")
            .unwrap();
        let rec = Recording::open(&old).unwrap();
        let filter = RequestFilter {
            from_ns: 0,
            to_ns: i64::MAX,
            ..RequestFilter::default()
        };
        let answer = serde_json::to_value(Requests::read(&rec, &filter, 200).unwrap()).unwrap();
        let first = &answer["requests"][2];
        assert_eq!(first["rss_bytes"], 65_536);
        for key in ["grown_bytes", "released_bytes", "retained_bytes"] {
            assert_eq!(first[key], serde_json::Value::Null, "{key}");
        }
    }

    /// A recording with one row of each kind the API lists that cannot be decoded (a value of
    /// the wrong type, as only something other than memwatch writes): every answer leaves the
    /// row out, keeps the others, and counts it in `undecodable_rows`.
    #[test]
    fn undecodable_rows_are_counted() {
        use crate::{
            model::{LogLineRow, MemRow, RequestRow, Row, meta},
            recording::Writer,
        };
        const S: i64 = 1_000_000_000;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let writer =
            Writer::create(&path, &[(meta::ACCESS_LOGS, "access.log".to_owned())]).unwrap();
        let mut rows = Vec::new();
        for i in 1..=3 {
            rows.push(Row::Sample {
                ts_ns: i * S,
                pid: 1,
                rss_bytes: 4096,
                vm_bytes: 8192,
                faults: 0,
            });
            rows.push(Row::Request(Box::new(RequestRow {
                id: i,
                pid: 1,
                tid: 1,
                conn: 1,
                method: Some("GET".into()),
                route: Some("/".into()),
                status: Some(200),
                start_ns: i * S,
                end_ns: i * S + 1000,
                exact: true,
                ..RequestRow::default()
            })));
            rows.push(Row::LogLine(Box::new(LogLineRow {
                source: "access.log".into(),
                arrived_ns: i * S,
                reason: Some("missing_timestamp"),
                raw: Some(format!("garbage {i}")),
                ..LogLineRow::default()
            })));
            rows.push(Row::Mem(MemRow {
                ts_ns: i * S,
                pid: 1,
                tid: 1,
                op: "mmap",
                addr: 0,
                len: 2 << 20,
                new_len: 0,
                prot: 3,
                flags: 34,
                fd: -1,
                ret: 0,
                ok: true,
                vm_delta: 2 << 20,
                request_id: None,
                stack: None,
            }));
        }
        writer.send(rows);
        writer.finish().unwrap();
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch(
                "UPDATE request_rows SET bytes_in = 'junk' WHERE id = 2;
                 UPDATE samples SET rss_bytes = 'junk' WHERE ts_ns = 2000000000;
                 UPDATE log_lines SET raw = X'00ff' WHERE arrived_ns = 2000000000;
                 UPDATE mem_events SET pid = 'junk' WHERE ts_ns = 2000000000;",
            )
            .unwrap();
        let rec = Recording::open(&path).unwrap();

        let filter = RequestFilter {
            from_ns: 0,
            to_ns: i64::MAX,
            ..RequestFilter::default()
        };
        let requests = Requests::read(&rec, &filter, 200).unwrap();
        let ids: Vec<i64> = requests.requests.iter().map(|r| r.id).collect();
        assert_eq!(ids, [3, 1]);
        assert_eq!((requests.total, requests.undecodable_rows), (3, 1));
        assert!(requests.truncated, "fewer listed than selected");
        assert_eq!(
            serde_json::to_value(&requests).unwrap()["undecodable_rows"],
            1
        );

        let lines = LogLines::read(&rec, Range::default(), 200).unwrap();
        assert_eq!((lines.lines.len(), lines.undecodable_rows), (2, 1));

        // The sample's tick, and the line's text among the access log's rejected examples.
        let summary = Summary::read(&rec, false).unwrap();
        assert_eq!(summary.undecodable_rows, 2);
        assert_eq!(summary.memory.rss_peak_bytes, 4096);
        let access_log = summary.access_log.unwrap();
        assert_eq!(access_log.rejected_examples, ["garbage 1", "garbage 3"]);

        // The sample's tick and the memory event.
        let timeline = Timeline::read(&rec, Range::default(), 100).unwrap();
        assert_eq!(timeline.undecodable_rows, 2);
        assert_eq!(timeline.mem_events.len(), 2);
        assert_eq!(timeline.rss.v, [4096, 4096]);
    }
}
