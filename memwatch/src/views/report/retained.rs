//! Retained memory over a range, reconciled with the resident set's change.

use serde::Serialize;

use super::{Endpoint, HeapFollowing, Q, RegressionSummary, meta_num, page_size};
use crate::{
    model::meta,
    recording::{Recording, query::Range},
    views::regression::kept_from,
};

/// Retained memory over a range, and how it reconciles with the resident set.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RetainedSummary {
    /// What the figures above account for: retained + outside grown - outside released -
    /// released from before.
    pub attributed_change_bytes: i64,
    /// Made resident by requests that ended in the range.
    pub grown_bytes: i64,
    /// Whether heap blocks were followed as they changed hands (`record --heap`).
    pub heap: HeapFollowing,
    /// Spans the origin maps held when the recording closed (resident pages and address space;
    /// about 64 bytes of memwatch's memory each). 0 when not written (an older or killed
    /// recording).
    pub origin_spans: u64,
    /// Made resident while no request was served (startup, background threads, collectors).
    pub outside_grown_bytes: i64,
    /// Released in the range, of memory made outside any request.
    pub outside_released_bytes: i64,
    /// The regression estimate's fit over the range: its intervals, the routes it cannot tell
    /// apart, and where it disagrees with the origin figures; `None` when too short to fit.
    pub regression: Option<RegressionSummary>,
    /// Of that, released by the end of the range.
    pub released_bytes: i64,
    /// Released in the range, of memory made by requests that ended before it.
    pub released_from_before_bytes: i64,
    /// Of that, still held: the routes' retained memory summed.
    pub retained_bytes: i64,
    /// The change of the resident set over the range (/proc samples).
    pub rss_change_bytes: i64,
    /// What a Go program's own sampled heap covered, where one sampled its allocations in the
    /// range (each route's figure is then its `sampled_heap`); `None` elsewhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampled_heap: Option<super::SampledHeapRange>,
    /// `rss_change_bytes - attributed_change_bytes`: growth memwatch did not see made by a user
    /// fault (kernel-populated pages, huge pages counted as one page, file pages) and sampling
    /// lag.
    pub unexplained_bytes: i64,
    /// Releases of unknown origin, whole recording: released pages resident before memwatch
    /// began to trace the process (its pagemap, read then), or perhaps resident where nothing is
    /// known of them (a child forked while recording: an upper bound). Memory given back that no
    /// request or startup memwatch saw owns. Before schema 6 it also holds
    /// `unseen_release_bytes`.
    pub unmatched_release_bytes: i64,
    /// Released bytes memwatch never saw resident (untouched parts of thread stacks,
    /// reservations), whole recording: not memory given back. `None` before schema 6.
    pub unseen_release_bytes: Option<i64>,
    /// Resident growth origin tracking could not keep (its bound), whole recording.
    pub untracked_bytes: i64,
    /// Address space unmapped that was mapped before memwatch attached (no known origin),
    /// whole recording.
    pub vm_unmatched_release_bytes: i64,
}

impl RetainedSummary {
    /// Retained memory over `range`, reconciled with the resident set's change; also sets each
    /// endpoint's regression estimate, and which figure it takes (`regression::kept_from`).
    pub fn read(rec: &Recording, range: Range, endpoints: &mut [Endpoint]) -> Q<Option<Self>> {
        if !rec.has_origin() {
            return Ok(None);
        }
        let heap = HeapFollowing::read(rec)?;
        let mut regression = crate::views::regression::over_recording::estimate(
            rec,
            range,
            endpoints,
            heap.followed && heap.processes_not_followed == 0,
        )?;
        if let Some(r) = &mut regression {
            kept_from::choose(endpoints, r, page_size(rec)?);
        }
        let sampled_heap = super::apply_sampled_heap(rec, range, endpoints)?;
        let (from, to) = range.bounds();
        let outside = rec.outside_totals(from, to)?;
        let loss = rec.origin_loss()?;
        let (grown, released) = endpoints.iter().fold((0i64, 0i64), |(g, r), e| {
            (
                g.saturating_add(e.grown_bytes),
                r.saturating_add(e.released_bytes),
            )
        });
        let retained = grown.saturating_sub(released);
        let rss_change = rec.rss_change(from, to)?;
        let attributed = retained
            .saturating_add(outside.grown)
            .saturating_sub(outside.released)
            .saturating_sub(outside.released_from_before);
        Ok(Some(Self {
            grown_bytes: grown,
            released_bytes: released,
            retained_bytes: retained,
            outside_grown_bytes: outside.grown,
            outside_released_bytes: outside.released,
            released_from_before_bytes: outside.released_from_before,
            rss_change_bytes: rss_change,
            attributed_change_bytes: attributed,
            unexplained_bytes: rss_change.saturating_sub(attributed),
            untracked_bytes: loss.untracked_bytes,
            unmatched_release_bytes: loss.unmatched_release_bytes,
            unseen_release_bytes: loss.unseen_release_bytes,
            heap,
            origin_spans: meta_num(rec, meta::ORIGIN_SPANS)?,
            vm_unmatched_release_bytes: meta_num(rec, meta::VM_UNMATCHED_RELEASE_BYTES)? as i64,
            regression,
            sampled_heap,
        }))
    }
}
