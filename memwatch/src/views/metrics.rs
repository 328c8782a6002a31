//! `/metrics`: a recording's figures in the OpenMetrics text format, for Prometheus, Mimir or
//! anything that scrapes it (prometheus-client encodes it). Built from the recording at each
//! scrape, as the page is; the series are documented in `docs/metrics.md`.
//!
//! Route labels come from traffic, so they are bounded: at most `max_routes` routes have series
//! of their own, the rest are summed into the route `other` (method `other`), and how many were
//! folded is itself a series. A route keeps its label from the first scrape that sees it while
//! there is room, and a route first seen when there is none stays in `other`: every series is
//! continuous, and counters never go back (a route moving in and out of `other` would make
//! both look reset). Routes seen together in one scrape are labelled largest retained first.

use std::collections::HashSet;

use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::{Registry, Unit},
};

use crate::{
    error::RecordingError,
    recording::{Recording, query::Range},
    views::report::{self, Endpoint},
};

/// Routes with series of their own, unless `--metrics-max-routes` says otherwise.
pub const DEFAULT_MAX_ROUTES: usize = 100;
/// The route (and method) that routes past the bound are summed into.
pub const OTHER: &str = "other";
/// Longest label value kept (route names come from traffic).
const MAX_LABEL: usize = 256;
/// The exposition format's content type.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(String, String)>;

/// Which routes have series of their own; kept across scrapes (see the module's doc).
#[derive(Debug)]
pub struct RouteLabels {
    labelled: HashSet<(String, String)>,
    max_routes: usize,
}

impl RouteLabels {
    pub fn new(max_routes: usize) -> Self {
        Self {
            labelled: HashSet::new(),
            max_routes,
        }
    }
}

fn bounded(s: &str) -> String {
    crate::units::cut(s, MAX_LABEL).to_owned()
}

fn route_labels(method: &str, route: &str) -> Labels {
    vec![
        ("method".into(), bounded(method)),
        ("route".into(), bounded(route)),
    ]
}

/// Per-route families.
#[derive(Default)]
struct RouteFamilies {
    requests: Family<Labels, Counter>,
    grown: Family<Labels, Counter>,
    retained: Family<Labels, Gauge>,
    kept: Family<Labels, Gauge>,
    followed: Family<Labels, Counter>,
    regression: Family<Labels, Gauge>,
    sampled_heap: Family<Labels, Gauge>,
}

impl RouteFamilies {
    fn add(&self, labels: &Labels, e: &Endpoint, with_kept: bool) {
        self.requests.get_or_create(labels).inc_by(e.requests);
        self.grown
            .get_or_create(labels)
            .inc_by(u64::try_from(e.grown_bytes).unwrap_or(0));
        self.retained.get_or_create(labels).inc_by(e.retained_bytes);
        self.followed
            .get_or_create(labels)
            .inc_by(e.sampled.map_or(e.requests, |s| s.followed_requests));
        if with_kept {
            self.kept
                .get_or_create(labels)
                .set(e.kept_per_request_bytes);
            if let Some(g) = e.regression {
                self.regression
                    .get_or_create(labels)
                    .set(g.kept_per_request_bytes);
            }
            if let Some(h) = e.sampled_heap {
                self.sampled_heap
                    .get_or_create(labels)
                    .set(h.kept_per_request_bytes);
            }
        }
    }
}

/// The recording's figures as an OpenMetrics exposition, with route labels bounded by
/// `labels`.
pub fn render(rec: &Recording, labels: &mut RouteLabels) -> Result<String, RecordingError> {
    let mut registry = Registry::with_prefix("memwatch");
    let mut endpoints = report::endpoints(rec, Range::default())?;
    // Each route's second estimate of kept per request (only the figures are exported here,
    // not which estimate to trust).
    crate::views::regression::over_recording::estimate(
        rec,
        Range::default(),
        &mut endpoints,
        false,
    )?;
    // A Go program's own sampled heap, where one samples its allocations: then each of its
    // routes' kept per request (it has no span probes, so the origin figure is no figure).
    report::apply_sampled_heap(rec, Range::default(), &mut endpoints)?;
    // New routes take the room left, largest retained first.
    endpoints.sort_by(|a, b| {
        b.retained_bytes
            .cmp(&a.retained_bytes)
            .then(b.requests.cmp(&a.requests))
            .then_with(|| (&a.method, &a.route).cmp(&(&b.method, &b.route)))
    });
    let routes = RouteFamilies::default();
    let other = route_labels(OTHER, OTHER);
    let mut folded = 0i64;
    for e in &endpoints {
        let key = (e.method.clone(), e.route.clone());
        if !labels.labelled.contains(&key) && labels.labelled.len() < labels.max_routes {
            labels.labelled.insert(key.clone());
        }
        if labels.labelled.contains(&key) {
            routes.add(&route_labels(&e.method, &e.route), e, true);
        } else {
            routes.add(&other, e, false);
            folded += 1;
        }
    }
    registry.register(
        "route_requests",
        "HTTP requests completed, per route and method",
        routes.requests,
    );
    registry.register_with_unit(
        "route_grown",
        "Memory the route's requests made resident (each page once)",
        Unit::Bytes,
        routes.grown,
    );
    registry.register_with_unit(
        "route_retained",
        "Memory the route's requests made resident and still hold, whoever released the rest",
        Unit::Bytes,
        routes.retained,
    );
    registry.register_with_unit(
        "route_kept_per_request",
        "What each further request of the route keeps: the robust slope of its retained memory \
         against its request count (not for the route other)",
        Unit::Bytes,
        routes.kept,
    );
    registry.register_with_unit(
        "route_kept_per_request_regression",
        "What each further request of the route keeps, by the second estimate: a regression of \
         the targets' resident set on the routes' request counts (no probe needed)",
        Unit::Bytes,
        routes.regression,
    );
    registry.register_with_unit(
        "route_kept_per_request_sampled_heap",
        "What each further request of the route keeps, from a Go program's own sampled heap: \
         the allocations its runtime sampled that the collector had not freed, each weighed by \
         what it stands for (only where the program links a memory profiler)",
        Unit::Bytes,
        routes.sampled_heap,
    );
    registry.register(
        "route_heap_followed_requests",
        "Requests of the route the heap probes followed: all of them unless the heap budget \
         had the probes off part of the time, when kept per request rests on these (sampled)",
        routes.followed,
    );
    let folded_gauge = Gauge::<i64>::default();
    folded_gauge.set(folded);
    registry.register(
        "routes_folded",
        format!(
            "Routes past the bound of {} whose figures are summed into the route {OTHER}",
            labels.max_routes
        ),
        folded_gauge,
    );

    let rss: Family<Labels, Gauge> = Family::default();
    let vm: Family<Labels, Gauge> = Family::default();
    let samples = rec.latest_samples()?;
    for s in &samples {
        let l = vec![
            ("pid".into(), s.pid.to_string()),
            ("comm".into(), bounded(&s.comm)),
        ];
        rss.get_or_create(&l).set(s.rss_bytes);
        vm.get_or_create(&l).set(s.vm_bytes);
    }
    registry.register_with_unit(
        "process_resident_memory",
        "Resident set (RSS) of each traced process, at its latest sample",
        Unit::Bytes,
        rss,
    );
    registry.register_with_unit(
        "process_virtual_memory",
        "Mapped address space (VmSize) of each traced process, at its latest sample",
        Unit::Bytes,
        vm,
    );
    let traced = Gauge::<i64>::default();
    traced.set(
        rec.processes()?
            .iter()
            .filter(|p| p.exited_ns.is_none())
            .count() as i64,
    );
    registry.register("traced_processes", "Traced processes not exited", traced);

    // The heap probes' budget, as far as the recording says so far (written each second).
    let ratio = |key: &str| -> Result<Option<f64>, RecordingError> {
        Ok(rec
            .meta(key)?
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite()))
    };
    for (name, help, key) in [
        (
            "heap_probes_on_ratio",
            "Share of the recording the heap probes were attached (1: every heap call followed; \
             less: the budget sampled)",
            crate::model::meta::HEAP_ON_FRACTION,
        ),
        (
            "heap_probes_cost_ratio",
            "What the heap probes cost the targets, as a share of one core (estimated)",
            crate::model::meta::HEAP_COST_SHARE,
        ),
        (
            "heap_budget_ratio",
            "The share of one core the heap probes may cost (--heap-budget)",
            crate::model::meta::HEAP_BUDGET,
        ),
    ] {
        if let Some(v) = ratio(key)? {
            let g = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
            g.set(v);
            registry.register(name, help, g);
        }
    }

    let counters = rec.counters()?;
    let lost = &counters.lost;
    for (name, help, value) in [
        (
            "events",
            "Kernel events read from the ring buffer",
            counters.events,
        ),
        (
            "dropped_events",
            "Kernel events lost because the ring buffer was full",
            lost.dropped_events,
        ),
        (
            "unpaired_exits",
            "Memory syscalls whose entry was not seen",
            lost.unpaired_exits,
        ),
        (
            "map_full",
            "Kernel map insertions refused because a map was full",
            lost.map_full,
        ),
        (
            "undecodable_events",
            "Kernel events that could not be decoded",
            lost.undecodable,
        ),
    ] {
        let c = Counter::<u64>::default();
        c.inc_by(value);
        registry.register(name, help, c);
    }

    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &registry);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        model::{ProcessOrigin, ProcessRow, RequestRow, Row},
        recording::Writer,
    };

    use crate::units::NS_PER_SEC as S;
    const B: i64 = 1_800_000_000;

    fn request(id: i64, route: &str, grown: u64) -> Row {
        Row::Request(RequestRow {
            id,
            pid: 42,
            method: Some("GET".into()),
            target: Some(route.into()),
            route: Some(route.into()),
            status: Some(200),
            start_ns: (B + id) * S,
            end_ns: (B + id) * S + 1_000,
            exact: true,
            grown,
            ..RequestRow::default()
        })
    }

    /// Four requests of /leak keep 8 KiB each; /big once 100 KiB; /a and /b nothing; a
    /// traced process with its latest sample.
    fn recording(dir: &std::path::Path) -> Recording {
        let path = dir.join("m.db");
        let writer = Writer::create(&path, &[]).unwrap();
        let mut rows = vec![
            Row::Process(ProcessRow {
                pid: 42,
                ppid: Some(1),
                comm: "server\"x".into(),
                cmdline: None,
                started_ns: Some(B * S),
                origin: ProcessOrigin::Attached,
            }),
            Row::Sample {
                ts_ns: B * S,
                pid: 42,
                rss_bytes: 1000,
                vm_bytes: 5000,
                faults: 0,
            },
            // 40 s after the first: long enough for the regression's 30 intervals of a second.
            Row::Sample {
                ts_ns: (B + 40) * S,
                pid: 42,
                rss_bytes: 2000,
                vm_bytes: 6000,
                faults: 0,
            },
            request(1, "/big", 100 * 1024),
            request(6, "/a", 0),
            request(7, "/b", 0),
            request(8, "/a", 0),
        ];
        for id in 2..6 {
            rows.push(request(id, "/leak", 8 * 1024));
        }
        writer.send(rows);
        writer.finish().unwrap();
        Recording::open(&path).unwrap()
    }

    /// The samples, sorted: a family's series come in no set order.
    fn series(text: &str) -> Vec<&str> {
        let mut v: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        v.sort_unstable();
        v
    }

    /// Past the bound, routes are summed into `other` and counted; labels stay with the routes
    /// that had them; names carry units and `_total`; label values are escaped.
    #[test]
    fn routes_past_the_bound_fold_into_other() {
        let dir = tempfile::tempdir().unwrap();
        let rec = recording(dir.path());
        let mut labels = RouteLabels::new(2);
        let text = render(&rec, &mut labels).unwrap();
        let mut want = vec![
            r#"memwatch_route_requests_total{method="GET",route="/big"} 1"#,
            r#"memwatch_route_requests_total{method="GET",route="/leak"} 4"#,
            r#"memwatch_route_requests_total{method="other",route="other"} 3"#,
            r#"memwatch_route_grown_bytes_total{method="GET",route="/big"} 102400"#,
            r#"memwatch_route_grown_bytes_total{method="GET",route="/leak"} 32768"#,
            r#"memwatch_route_grown_bytes_total{method="other",route="other"} 0"#,
            r#"memwatch_route_retained_bytes{method="GET",route="/big"} 102400"#,
            r#"memwatch_route_retained_bytes{method="GET",route="/leak"} 32768"#,
            r#"memwatch_route_retained_bytes{method="other",route="other"} 0"#,
            // One request: all it keeps is what each keeps, as in the report.
            r#"memwatch_route_kept_per_request_bytes{method="GET",route="/big"} 102400"#,
            r#"memwatch_route_kept_per_request_bytes{method="GET",route="/leak"} 8192"#,
            // The fixture's resident set does not move: the regression finds nothing kept.
            r#"memwatch_route_kept_per_request_regression_bytes{method="GET",route="/big"} 0"#,
            r#"memwatch_route_kept_per_request_regression_bytes{method="GET",route="/leak"} 0"#,
            // The heap was not followed: every request counts as followed (none sampled out).
            r#"memwatch_route_heap_followed_requests_total{method="GET",route="/big"} 1"#,
            r#"memwatch_route_heap_followed_requests_total{method="GET",route="/leak"} 4"#,
            r#"memwatch_route_heap_followed_requests_total{method="other",route="other"} 3"#,
            "memwatch_routes_folded 2",
            r#"memwatch_process_resident_memory_bytes{pid="42",comm="server\"x"} 2000"#,
            r#"memwatch_process_virtual_memory_bytes{pid="42",comm="server\"x"} 6000"#,
            "memwatch_traced_processes 1",
            "memwatch_events_total 0",
            "memwatch_dropped_events_total 0",
            "memwatch_unpaired_exits_total 0",
            "memwatch_map_full_total 0",
            "memwatch_undecodable_events_total 0",
        ];
        want.sort_unstable();
        assert_eq!(series(&text), want);
        assert!(text.ends_with("# EOF\n"));
        assert!(text.contains("# UNIT memwatch_route_retained_bytes bytes\n"));
        // A new route later, with no room: folded, and the labelled ones keep their series.
        let mut labels_again = labels;
        let again = render(&rec, &mut labels_again).unwrap();
        assert_eq!(series(&again), series(&text));
    }
}
