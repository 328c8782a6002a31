//! Go's sampled heap as each route's figure: where a Go program samples its allocations, what
//! each route's requests kept of them, weighed by the sampling rate, is its kept per request,
//! with a 95% interval from the sampling alone (`recording/query/heap_samples.rs` judges which
//! samples were kept).

use serde::Serialize;

use super::{Endpoint, KeptFrom, Q, Retention, judged, rank};
use crate::recording::{Recording, query::Range};

/// The fewest judged requests a route needs for its sampled figure to be its kept per request.
const MIN_REQUESTS: u64 = 10;

/// One route's kept per request from Go's sampled heap ([`Endpoint::sampled_heap`]). Keys in
/// alphabetical order, as the API sends them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SampledHeapEstimate {
    /// The bytes the route's kept samples stand for, per judged request, and its 95% interval
    /// (the sampling's variance alone).
    pub kept_per_request_bytes: i64,
    pub kept_per_request_high_bytes: i64,
    pub kept_per_request_low_bytes: i64,
    /// The route's requests in the judged part of the range (before the third-last
    /// collection), and the allocations sampled in them, and of those, still held at its end.
    pub requests: u64,
    pub samples: u64,
    pub samples_kept: u64,
}

/// What Go's sampled heap covered in a range ([`super::RetainedSummary::sampled_heap`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SampledHeapRange {
    /// Go processes whose allocations were sampled in the range, and of those, ones with too
    /// few collections by its end (fewer than three) to judge what they kept.
    pub processes: u64,
    pub processes_unjudged: u64,
    /// The sampling rate of each Go process that sampled, in bytes (`PID=BYTES`, space
    /// separated), whole recording.
    pub rates: String,
    /// Samples taken on a thread that served no request (the runtime's own, or a goroutine
    /// between requests), in the judged part: charged to no route.
    pub samples_outside: u64,
}

/// Gives each route of a sampling Go program its sampled figure, which becomes its kept per
/// request (`kept_from: sampled_heap`), and ranks the routes again. `None` where nothing in
/// the range was sampled.
pub(super) fn apply(
    rec: &Recording,
    range: Range,
    endpoints: &mut [Endpoint],
    page: i64,
) -> Q<Option<SampledHeapRange>> {
    let (from, to) = range.bounds();
    let sampled = rec.heap_samples(from, to)?;
    if sampled.processes == 0 {
        return Ok(None);
    }
    let mut changed = false;
    for e in endpoints.iter_mut() {
        let Some(r) = sampled.routes.get(&(e.method.clone(), e.route.clone())) else {
            continue;
        };
        if r.requests < MIN_REQUESTS {
            continue;
        }
        let n = r.requests as f64;
        let kept = r.kept_bytes as f64 / n;
        let half = 1.96 * r.kept_variance.sqrt() / n;
        let estimate = SampledHeapEstimate {
            kept_per_request_bytes: kept.round() as i64,
            kept_per_request_high_bytes: (kept + half).round() as i64,
            kept_per_request_low_bytes: (kept - half).max(0.0).round() as i64,
            requests: r.requests,
            samples: r.samples,
            samples_kept: r.kept_samples,
        };
        e.sampled_heap = Some(estimate);
        e.kept_from = KeptFrom::SampledHeap;
        e.kept_per_request_bytes = estimate.kept_per_request_bytes;
        e.retention = if !judged(e) {
            Retention::TooFew
        } else if estimate.kept_per_request_bytes > page && estimate.kept_per_request_low_bytes > 0
        {
            Retention::Keeps
        } else {
            Retention::None
        };
        changed = true;
    }
    if changed {
        rank(endpoints);
    }
    Ok(Some(SampledHeapRange {
        rates: rec
            .meta(crate::model::meta::GO_SAMPLE_RATES)?
            .unwrap_or_else(|| "?".into()),
        processes: sampled.processes,
        processes_unjudged: sampled.processes_unjudged,
        samples_outside: sampled.outside,
    }))
}
