//! What qualifies the summary's answer, said right under it.

use super::{
    super::{
        regression::over_recording::Signal,
        report::{Endpoint, KeptFrom, RetainedSummary},
    },
    signed_bytes, words,
};

/// What qualifies the answer, said right under it: estimates that disagree, routes the
/// regression cannot separate, routes too new to judge, and how the heap was followed.
pub(super) fn answer_notes(s: &mut String, r: &RetainedSummary, endpoints: &[Endpoint]) {
    if let Some(g) = &r.regression {
        let shared: Vec<String> = endpoints
            .iter()
            .filter(|e| e.kept_from == KeptFrom::Regression)
            .map(|e| format!("{} {}", e.method, e.route))
            .collect();
        if !g.primary && !shared.is_empty() {
            words(
                s,
                "",
                &format!(
                    "kept/req of {} is the regression's: their requests mostly shared a thread \
                     (an event loop), so the origin could only guess whose memory was whose; the \
                     regression fits the {} over {} intervals (R² {:.2}) against the requests \
                     that ended and ran in each",
                    shared.join(", "),
                    match g.signal {
                        Signal::Heap => "heap the probes followed",
                        Signal::SweptHeap | Signal::KeptHeap | Signal::KeptSpans =>
                            "heap the probes followed, as each collection left it,",
                        Signal::LiveHeap | Signal::Rss => "live heap the runtime reported",
                    },
                    g.intervals,
                    g.explained
                ),
            );
        }
        if g.primary {
            words(
                s,
                "",
                &format!(
                    "kept/req is the regression's: a JVM's objects are seen by neither page \
                     faults nor the heap probes, so each route's figure is fitted from the live \
                     heap the JVM reported after each of {} collections against the requests \
                     in between (R² {:.2}); retained and grown are the resident set's",
                    g.intervals + 1,
                    g.explained
                ),
            );
        } else if g.signal == Signal::LiveHeap {
            words(
                s,
                "",
                "by regression: fitted from the live heap the runtime reported after each \
                 collection",
            );
        } else if matches!(
            g.signal,
            Signal::SweptHeap | Signal::KeptHeap | Signal::KeptSpans
        ) && shared.is_empty()
        {
            words(
                s,
                "",
                "by regression: fitted from the heap the probes followed, as each collection \
                 left it",
            );
        }
        for d in &g.disagreements {
            words(
                s,
                "",
                &format!(
                    "Estimates disagree on {} {}: the origin says {} kept per request, the \
                     regression {}; trust the {}: {}",
                    d.method,
                    d.route,
                    signed_bytes(d.origin_bytes),
                    signed_bytes(d.regression_bytes),
                    d.trust,
                    d.why
                ),
            );
        }
        if !g.collinear.is_empty() {
            words(
                s,
                "",
                &format!(
                    "The regression cannot tell apart routes hit together: {}",
                    g.collinear.join(", ")
                ),
            );
        }
        if !g.overlapping.is_empty() {
            words(
                s,
                "",
                &format!(
                    "kept/req is the origin's, though requests shared a thread: the \
                     regression's intervals overlap for {} (a route it puts above a page and \
                     one it cannot tell from nothing), too loose to rank them; record longer or \
                     at a lower rate for a tighter fit",
                    g.overlapping.join(", ")
                ),
            );
        }
    }
    if let Some(g) = &r.sampled_heap {
        let sampled: Vec<String> = endpoints
            .iter()
            .filter(|e| e.kept_from == KeptFrom::SampledHeap)
            .map(|e| format!("{} {}", e.method, e.route))
            .collect();
        let judged = g.processes - g.processes_unjudged;
        words(
            s,
            "",
            &format!(
                "kept/req{} is Go's own sampled heap: the allocations its runtime sampled \
                 (runtime.MemProfileRate: {}), each weighed by what it stands for, not freed by \
                 the range's end, judged in {} of {} Go processes up to their third-last \
                 collection; {} samples were taken outside any request",
                if sampled.is_empty() {
                    String::new()
                } else {
                    format!(" of {}", sampled.join(", "))
                },
                g.rates,
                judged,
                g.processes,
                g.samples_outside
            ),
        );
    }
    if r.heap.go_spans {
        words(
            s,
            "",
            "Go's heap was followed by its spans: a Go program that links no memory profiler \
             (runtime/pprof, net/http/pprof) samples no allocations (runtime.MemProfileRate is \
             0), so its objects are charged span by span, to the request that took each span",
        );
    }
    if let Some(sm) = &r.heap.sampling {
        words(
            s,
            "",
            &format!(
                "Heap SAMPLED: {} of {} requests followed; kept/req rests on those (95% \
                 interval per route above); {} blocks found freed while off",
                sm.requests_followed,
                sm.requests_followed + sm.requests_sampled_out,
                sm.frees_found + sm.frees_overlapped
            ),
        );
    }
    if let Some(note) = r.heap.note {
        words(s, "", &format!("Note: {note}"));
    }
}
