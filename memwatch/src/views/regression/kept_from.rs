//! Which figure each route takes, the origin's or the regression's, and the routes ranked again
//! when the regression's replace some.

use serde::Serialize;

#[cfg(test)]
use super::over_recording::Signal;
use super::over_recording::{RouteEstimate, Summary};
use crate::views::report::{Endpoint, Retention, judged, rank};

/// Which estimate a route's kept per request (and the rank and `retention` that follow from it)
/// comes from ([`Endpoint::kept_from`]); spelt `origin` or `regression` in the report JSON and
/// the API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeptFrom {
    /// The memory each request made resident and what became of it.
    #[default]
    Origin,
    /// The regression of a live or followed heap on the routes' request counts: on a JVM, whose
    /// objects neither page faults nor the heap probes see one by one, and for routes whose
    /// requests mostly shared a thread.
    Regression,
    /// A Go program's own sampled allocations, each weighed by its sampling rate, that the
    /// collector had not freed: its span hooks charge a span to whoever took it, whatever
    /// objects it holds. Spelt `sampled_heap`.
    #[serde(rename = "sampled_heap")]
    SampledHeap,
}

/// The share of the followed heap's variation a regression must explain for routes whose
/// requests shared a thread to take its figures. Fitted robustly, the followed heap of
/// Starlette under uvicorn at -c8 explains 0.97 to 0.98 as it had settled a second before
/// (0.62 to 0.8 sampled as it stood); Node.js's, what each of V8's sweeps kept, 0.96 with
/// async handlers at -c8 (0.62 to 0.79 read at one sweep alone). (A heap whose
/// garbage waits for a collector memwatch does not hook is no signal at all, and is not
/// sampled: `capture::probe::gc::collects_unseen`.)
const SHARED_THREAD_EXPLAINED: f64 = 0.5;

/// Gives the regression's figure to the routes that should take it, given the fit over the
/// range: every route where it is primary (a JVM's live heap), and where the followed heap was
/// fitted well enough and tells the routes apart, those whose requests mostly shared a thread.
/// The others keep the origin's. `page` is the recording's page size. Where the fit does not
/// tell them apart, says which routes in `fit.overlapping`.
pub fn choose(endpoints: &mut [Endpoint], fit: &mut Summary, page: i64) {
    if fit.primary {
        kept_from_regression(endpoints, page, |_| true);
    } else if fit.signal.is_followed_heap() && fit.explained >= SHARED_THREAD_EXPLAINED {
        // Requests that shared a thread (an event loop): the origin could only guess
        // whose memory was whose, and is biased however many requests it sees; the
        // followed heap's regression needs no such guess, and its interval says how
        // sure it is. Not on Go, whose goroutines share threads too: its span hooks
        // follow each span to its request, and are exact at -c8.
        //
        // A fit that explains enough can still be too loose to rank: Node.js at its
        // maximum rate, its heap followed only in the budget's first second, gave about 40
        // intervals whose 95% intervals ran 110 to 360 KiB wide (read at one sweep alone,
        // the buffers in flight in it), and ranked the churn above the leak one run in four.
        // The origin's figure stands there.
        fit.overlapping = overlapping(endpoints, page);
        if fit.overlapping.is_empty() {
            kept_from_regression(endpoints, page, |e| {
                e.approximate.saturating_mul(2) > e.requests
            });
        }
    }
}

/// Pairs of judged routes the regression cannot rank: one it finds keeping (its interval
/// above a page) whose interval's lower end does not clear the upper end of one it finds
/// keeping nothing (or that has no interval), as `"GET /keeps ~ GET /other"`. Where it finds
/// no route keeping at all, each route its estimate puts above a page is paired with every
/// other route (once for two such routes): nothing was told from zero, so nothing is ranked.
fn overlapping(endpoints: &[Endpoint], page: i64) -> Vec<String> {
    let fitted = || {
        endpoints
            .iter()
            .filter(|e| judged(e))
            .filter_map(|e| Some((e, e.regression?)))
    };
    // The lower end of a route it finds keeping; `None` for the others.
    let keeps = |r: &RouteEstimate| r.kept_per_request_low_bytes.filter(|&lo| lo > page);
    let mut out = Vec::new();
    let pair =
        |k: &Endpoint, o: &Endpoint| format!("{} {} ~ {} {}", k.method, k.route, o.method, o.route);
    if fitted().all(|(_, r)| keeps(&r).is_none()) {
        // Node.js at -c8 over 12 collections: /leak 194 KiB (0 to 458), /churn 0 (0 to 206).
        // Taken, it read the leak as keeping nothing.
        // And Node.js at its maximum rate: /leak 88 KiB (0 to 248), /churn 102 KiB (0 to
        // 262), `/` above a page too. Paired only with routes below a page, nothing was
        // paired, and the churn's estimate ranked it first.
        let above = |r: &RouteEstimate| r.kept_per_request_bytes > page;
        let all: Vec<(&Endpoint, RouteEstimate)> = fitted().collect();
        for (i, (k, _)) in all.iter().enumerate().filter(|(_, (_, r))| above(r)) {
            for (j, (o, ro)) in all.iter().enumerate() {
                if j != i && (!above(ro) || j > i) {
                    out.push(pair(k, o));
                }
            }
        }
        return out;
    }
    for (k, low) in fitted().filter_map(|(e, r)| Some((e, keeps(&r)?))) {
        for (o, ro) in fitted().filter(|(_, r)| keeps(r).is_none()) {
            if ro.kept_per_request_high_bytes.is_none_or(|hi| hi >= low) {
                out.push(pair(k, o));
            }
        }
    }
    out
}

/// Makes the regression the figure of each route `which` picks (all of a JVM's; those whose
/// requests mostly shared a thread: see [`Endpoint::kept_from`]), and ranks the routes again.
/// A route the regression did not fit keeps its origin figure. `keeps` needs the interval's
/// lower end above 0 where there is one; a regression cannot tell a high-water mark from
/// nothing, so the rest read `none`.
fn kept_from_regression(endpoints: &mut [Endpoint], page: i64, which: impl Fn(&Endpoint) -> bool) {
    for e in endpoints.iter_mut() {
        let Some(r) = e.regression.filter(|_| which(e)) else {
            continue;
        };
        e.kept_from = KeptFrom::Regression;
        e.kept_per_request_bytes = r.kept_per_request_bytes;
        e.retention = if !judged(e) {
            Retention::TooFew
        } else if r.kept_per_request_bytes > page
            && r.kept_per_request_low_bytes.is_none_or(|lo| lo > 0)
        {
            Retention::Keeps
        } else {
            Retention::None
        };
    }
    rank(endpoints);
}

#[cfg(test)]
pub(super) mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const PAGE: i64 = 4096;

    /// A route ranked on its origin figure, with `regression` as the fit's estimate.
    pub(in crate::views::regression) fn route(
        name: &str,
        requests: u64,
        approximate: u64,
        regression: Option<(i64, i64)>,
    ) -> Endpoint {
        Endpoint {
            method: "GET".into(),
            route: name.into(),
            requests,
            statuses: BTreeMap::new(),
            vm_bytes: 0,
            rss_bytes: 0,
            page_faults: 0,
            mem_calls: 0,
            approximate,
            vm_bytes_mean: 0,
            rss_bytes_mean: 0,
            vm_bytes_per_request_p50: 0,
            vm_bytes_per_request_p95: 0,
            rss_bytes_per_request_p50: 0,
            rss_bytes_per_request_p95: 0,
            duration_ms_p50: 0.0,
            duration_ms_p95: 0.0,
            grown_bytes: 0,
            released_bytes: 0,
            retained_bytes: 0,
            kept_per_request_bytes: 0,
            retention: Retention::None,
            vm_mapped_bytes: None,
            vm_released_bytes: None,
            vm_retained_bytes: None,
            sampled: None,
            regression: regression.map(|(kept, low)| RouteEstimate {
                kept_per_request_bytes: kept,
                kept_per_request_high_bytes: Some(kept.saturating_mul(2)),
                kept_per_request_low_bytes: Some(low),
            }),
            kept_from: KeptFrom::Origin,
            sampled_heap: None,
        }
    }

    fn fit(signal: Signal, explained: f64, primary: bool) -> Summary {
        Summary {
            explained,
            signal,
            primary,
            ..Summary::default()
        }
    }

    fn figures(endpoints: &[Endpoint]) -> Vec<(&str, KeptFrom, i64, Retention)> {
        endpoints
            .iter()
            .map(|e| {
                (
                    e.route.as_str(),
                    e.kept_from,
                    e.kept_per_request_bytes,
                    e.retention,
                )
            })
            .collect()
    }

    /// On a JVM every fitted route takes the regression's figure and is ranked by it: `keeps`
    /// when the interval's lower end is above 0, `none` otherwise, `too-few` below the
    /// requests needed to judge; a route the fit left out keeps the origin's.
    #[test]
    fn a_primary_fit_is_every_fitted_route_figure() {
        let mut endpoints = vec![
            route("/unfitted", 50, 0, None),
            route("/noise", 50, 0, Some((64 * 1024, 0))),
            route("/new", 2, 0, Some((64 * 1024, 1024))),
            route("/leak", 50, 0, Some((256 * 1024, 200 * 1024))),
        ];
        choose(&mut endpoints, &mut fit(Signal::LiveHeap, 0.1, true), PAGE);
        assert_eq!(
            figures(&endpoints),
            vec![
                ("/leak", KeptFrom::Regression, 256 * 1024, Retention::Keeps),
                ("/noise", KeptFrom::Regression, 64 * 1024, Retention::None),
                ("/unfitted", KeptFrom::Origin, 0, Retention::None),
                ("/new", KeptFrom::Regression, 64 * 1024, Retention::TooFew),
            ]
        );
    }

    /// Otherwise only routes whose requests mostly shared a thread take it, and only from a
    /// followed heap that the fit explains well enough.
    #[test]
    fn shared_threads_take_a_well_fitted_followed_heap() {
        let routes = || {
            vec![
                route("/own-thread", 50, 25, Some((128 * 1024, 64 * 1024))),
                route("/event-loop", 50, 26, Some((256 * 1024, 200 * 1024))),
            ]
        };
        for signal in [Signal::Heap, Signal::SweptHeap] {
            let mut endpoints = routes();
            let mut fitted = fit(signal, SHARED_THREAD_EXPLAINED, false);
            choose(&mut endpoints, &mut fitted, PAGE);
            assert!(fitted.overlapping.is_empty(), "{fitted:?}");
            assert_eq!(
                figures(&endpoints),
                vec![
                    (
                        "/event-loop",
                        KeptFrom::Regression,
                        256 * 1024,
                        Retention::Keeps
                    ),
                    ("/own-thread", KeptFrom::Origin, 0, Retention::None),
                ],
                "{signal:?}"
            );
        }
        for (signal, explained) in [
            (Signal::Heap, 0.49),
            (Signal::SweptHeap, 0.49),
            (Signal::LiveHeap, 0.9),
            (Signal::Rss, 0.9),
        ] {
            let mut endpoints = routes();
            choose(&mut endpoints, &mut fit(signal, explained, false), PAGE);
            assert!(
                endpoints.iter().all(|e| e.kept_from == KeptFrom::Origin),
                "{signal:?} {explained}"
            );
        }
    }

    /// A fit too loose to rank the routes is no figure: where the interval of a route it finds
    /// keeping reaches into that of one it finds keeping nothing, every route keeps the
    /// origin's figure, and the pair is named. Routes too new to judge are not weighed.
    #[test]
    fn shared_threads_keep_the_origin_where_the_intervals_overlap() {
        let shared = |name: &str, kept: i64, low: i64, high: i64| {
            let mut e = route(name, 50, 50, Some((kept * 1024, low * 1024)));
            if let Some(r) = &mut e.regression {
                r.kept_per_request_high_bytes = Some(high * 1024);
            }
            e
        };
        // Measured: Node.js at its maximum rate, its heap followed in one budget window.
        let mut endpoints = vec![
            shared("/leak", 181, 77, 285),
            shared("/churn", 109, 0, 218),
            shared("/", 0, 0, 108),
        ];
        let mut fitted = fit(Signal::SweptHeap, 0.63, false);
        choose(&mut endpoints, &mut fitted, PAGE);
        assert_eq!(
            fitted.overlapping,
            vec!["GET /leak ~ GET /churn", "GET /leak ~ GET /"]
        );
        assert!(endpoints.iter().all(|e| e.kept_from == KeptFrom::Origin));
        // The same server's clear runs: the leak's interval stands above both.
        let mut endpoints = vec![
            shared("/churn", 23, 0, 100),
            shared("/leak", 253, 196, 311),
            shared("/", 0, 0, 70),
            // Two requests: not judged, whatever its interval.
            route("/new", 2, 2, None),
        ];
        let mut fitted = fit(Signal::SweptHeap, 0.94, false);
        choose(&mut endpoints, &mut fitted, PAGE);
        assert!(fitted.overlapping.is_empty(), "{fitted:?}");
        assert_eq!(
            figures(&endpoints)[..3],
            [
                ("/leak", KeptFrom::Regression, 253 * 1024, Retention::Keeps),
                ("/churn", KeptFrom::Regression, 23 * 1024, Retention::None),
                ("/", KeptFrom::Regression, 0, Retention::None),
            ]
        );
        // A route with no interval (collinear with another) cannot be ranked either.
        let mut endpoints = vec![shared("/leak", 253, 196, 311), route("/twin", 50, 50, None)];
        endpoints[1].regression = Some(RouteEstimate {
            kept_per_request_bytes: 0,
            kept_per_request_low_bytes: None,
            kept_per_request_high_bytes: None,
        });
        let mut fitted = fit(Signal::Heap, 0.9, false);
        choose(&mut endpoints, &mut fitted, PAGE);
        assert_eq!(fitted.overlapping, vec!["GET /leak ~ GET /twin"]);
    }

    #[test]
    fn a_regression_that_tells_no_route_from_zero_ranks_none() {
        let shared = |name: &str, kept: i64, high: i64| {
            let mut e = route(name, 150, 146, Some((kept, 0)));
            if let Some(r) = &mut e.regression {
                r.kept_per_request_high_bytes = Some(high);
            }
            e
        };
        // Measured: Node.js at -c8, the regression over 12 of V8's sweeps (R² 0.73).
        let mut endpoints = vec![
            shared("/leak", 198_192, 468_642),
            shared("/churn", 0, 211_149),
        ];
        let mut fitted = fit(Signal::SweptHeap, 0.73, false);
        choose(&mut endpoints, &mut fitted, PAGE);
        assert_eq!(fitted.overlapping, vec!["GET /leak ~ GET /churn"]);
        assert!(endpoints.iter().all(|e| e.kept_from == KeptFrom::Origin));
        // Measured: Node.js at its maximum rate, every route estimated above a page and none
        // told from zero. Each pair is named once, and the origin's figures stand.
        let mut endpoints = vec![
            shared("/leak", 90_112, 253_747),
            shared("/churn", 103_936, 268_595),
            shared("/", 8_192, 120_000),
            shared("/health", 0, 4_000),
        ];
        let mut fitted = fit(Signal::SweptHeap, 0.58, false);
        choose(&mut endpoints, &mut fitted, PAGE);
        assert_eq!(
            fitted.overlapping,
            vec![
                "GET /leak ~ GET /churn",
                "GET /leak ~ GET /",
                "GET /leak ~ GET /health",
                "GET /churn ~ GET /",
                "GET /churn ~ GET /health",
                "GET / ~ GET /health",
            ]
        );
        assert!(endpoints.iter().all(|e| e.kept_from == KeptFrom::Origin));
        // Nothing kept, and nothing estimated to keep: no pair to name, and the regression's
        // figures (all none) stand.
        let mut endpoints = vec![shared("/a", 1_000, 90_000), shared("/b", 0, 80_000)];
        let mut fitted = fit(Signal::SweptHeap, 0.73, false);
        choose(&mut endpoints, &mut fitted, PAGE);
        assert!(fitted.overlapping.is_empty(), "{fitted:?}");
        assert!(
            endpoints
                .iter()
                .all(|e| e.kept_from == KeptFrom::Regression)
        );
    }

    /// The JSON spells it as the strings it was before it had a type.
    #[test]
    fn serialises_lowercase() {
        assert_eq!(
            serde_json::to_string(&KeptFrom::Origin).unwrap(),
            "\"origin\""
        );
        assert_eq!(
            serde_json::to_string(&KeptFrom::Regression).unwrap(),
            "\"regression\""
        );
    }
}
