//! Whether the recording followed the targets' heaps, within what budget, and what the figures
//! cannot see for it.

use serde::Serialize;

use super::{Q, meta_f64, meta_num};
use crate::{model::meta, recording::Recording};

/// Whether the recording followed the targets' heap allocators, within what budget, and what
/// that could not cover.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HeapFollowing {
    /// Heap blocks (glibc) and spans (Go) handed out or given back, whole recording.
    pub blocks: u64,
    /// The share of one core the heap probes were allowed (`--heap-budget`); `None` in
    /// recordings made before the budget.
    pub budget_share: Option<f64>,
    /// Collections the collector probes saw (hits), and the live-heap figures they gave:
    /// fewer where a figure needs the heap probes (Node.js, Ruby, Go's kept spans) and the
    /// budget had them off.
    pub collections: u64,
    pub collections_recorded: u64,
    /// What the probes cost the targets, as a share of one core over the recording (estimated
    /// from their hits and what a hit costs, measured at start).
    pub cost_share: Option<f64>,
    pub followed: bool,
    /// What Go's own sampled heap came to, whole recording, where a Go program sampled its
    /// allocations; absent elsewhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub go_samples: Option<GoSamples>,
    /// Whether a Go program's heap was followed by its spans (`go_span_alloc` among the heap
    /// probes' sites): the fallback for a Go program that samples no allocations (it links no
    /// memory profiler). One that does is followed by its own sampled heap instead
    /// (`retained.sampled_heap`).
    pub go_spans: bool,
    /// What the figures cannot see, and what to do; absent when nothing is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<&'static str>,
    /// The share of the recording the probes were attached (1: throughout, exact).
    pub on_fraction: Option<f64>,
    /// Traced processes whose allocator could not be followed (musl, another static binary).
    pub processes_not_followed: u64,
    /// Processes with a collected runtime memwatch knows (a JVM, Go, Node.js, Ruby) whose probes
    /// could not be attached: their collections are not followed.
    pub runtimes_not_followed: u64,
    /// Present when the budget had the probes off part of the time: the figures are sampled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampling: Option<HeapSampling>,
}

/// Go's own sampled heap over the whole recording (`meta::GO_SAMPLES` and the keys beside it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GoSamples {
    /// Sampled allocations freed by the sweeper.
    pub freed: u64,
    /// Each sampling process's rate, in bytes (`PID=BYTES`, space separated).
    pub rates: String,
    /// Allocations sampled.
    pub samples: u64,
    /// Of those, on a thread that served no request: charged to no route.
    pub samples_outside: u64,
    /// Frees of objects no sample was seen for: objects with a finalizer (they have a special
    /// record too), or sampled before memwatch attached.
    pub unknown_frees: u64,
}

/// How the heap was sampled when following every call would have cost more than the budget.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HeapSampling {
    /// Followed blocks found given back while the probes were off (their glibc chunk header),
    /// and ones whose release was missed and found when a later followed block took their
    /// memory: both released to the allocator then.
    pub frees_found: u64,
    pub frees_overlapped: u64,
    /// Times the budget detached the probes.
    pub pauses: u64,
    /// Requests the probes followed (started while they were on), whole recording.
    pub requests_followed: u64,
    /// Requests they did not: their memory is in the outside-requests row.
    pub requests_sampled_out: u64,
}

/// Said when the heap was not followed.
const HEAP_NOT_FOLLOWED: &str = "heap reuse was not followed (--no-heap): memory a runtime frees \
     to its heap and hands to a later allocation stays with the request that first faulted it \
     in, so a route that reuses another's freed heap (Node.js, Go, threaded Python) can look like \
     it keeps nothing while the other looks like a leak. Record without --no-heap to follow \
     glibc's malloc and free and Go's spans";

/// Said when some processes' heaps could not be followed.
const HEAP_PARTLY: &str = "some processes' heap allocators could not be followed (no glibc and \
     no Go runtime memwatch knows): in those, heap reuse stays with the request that first \
     faulted the memory in; memwatch's log says which";

/// Said when some collected runtimes' reports could not be followed.
const RUNTIMES_PARTLY: &str = "some processes' collected runtimes (a JVM, Go, Node.js, Ruby) could not be \
     followed after each collection: their probes did not attach (memwatch's log says which and \
     why), so the regression on their live heap is missing and each route's figure rests on \
     the heap probes and page faults alone";

/// Said when the budget sampled the heap.
const HEAP_SAMPLED: &str = "the heap probes would have cost more than their budget, so they \
     followed the heap part of the time: requests that started while they were off are not \
     counted in kept per request (their memory is in the outside row), and each route's \
     sampled figures carry a 95% interval. A larger --heap-budget follows more";

impl HeapFollowing {
    pub(super) fn read(rec: &Recording) -> Q<Self> {
        let num = |key: &str| meta_num(rec, key);
        let followed = rec.meta(meta::HEAP)?.as_deref() == Some("true");
        let processes_not_followed = num(meta::HEAP_NOT_FOLLOWED)?;
        let runtimes_not_followed = num(meta::GC_NOT_FOLLOWED)?;
        let pauses = num(meta::HEAP_PAUSES)?;
        let sampling = if followed && pauses > 0 {
            let (requests, sampled_out) = rec.sampled_out_count()?;
            Some(HeapSampling {
                frees_found: num(meta::HEAP_FREES_FOUND)?,
                frees_overlapped: num(meta::HEAP_FREES_OVERLAPPED)?,
                pauses,
                requests_followed: requests.saturating_sub(sampled_out),
                requests_sampled_out: sampled_out,
            })
        } else {
            None
        };
        let note = if !followed {
            Some(HEAP_NOT_FOLLOWED)
        } else if processes_not_followed > 0 {
            Some(HEAP_PARTLY)
        } else if runtimes_not_followed > 0 {
            Some(RUNTIMES_PARTLY)
        } else if sampling.is_some() {
            Some(HEAP_SAMPLED)
        } else {
            None
        };
        let go_spans = rec
            .meta(meta::HEAP_SITES)?
            .is_some_and(|sites| sites.contains("go_span_alloc"));
        let go_samples = match rec.meta(meta::GO_SAMPLE_RATES)? {
            Some(rates) => Some(GoSamples {
                freed: num(meta::GO_SAMPLES_FREED)?,
                rates,
                samples: num(meta::GO_SAMPLES)?,
                samples_outside: num(meta::GO_SAMPLES_OUTSIDE)?,
                unknown_frees: num(meta::GO_SAMPLE_UNKNOWN_FREES)?,
            }),
            None => None,
        };
        Ok(Self {
            go_samples,
            go_spans,
            blocks: num(meta::HEAP_EVENTS)?,
            collections: num(meta::GC_EVENTS)?,
            collections_recorded: num(meta::GC_REPORTS)?,
            budget_share: meta_f64(rec, meta::HEAP_BUDGET)?,
            cost_share: meta_f64(rec, meta::HEAP_COST_SHARE)?,
            followed,
            note,
            on_fraction: meta_f64(rec, meta::HEAP_ON_FRACTION)?,
            processes_not_followed,
            runtimes_not_followed,
            sampling,
        })
    }
}
