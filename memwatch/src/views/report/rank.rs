//! How routes rank by what they keep, and how each retains memory.

use serde::{Deserialize, Serialize};

use super::Endpoint;
use crate::units::signed;

/// How a route retains memory ([`Endpoint::retention`]), spelt in the report JSON, the API and
/// a profile as its serde name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Retention {
    /// `keeps`: retained memory grows with the request count, a leak.
    Keeps,
    /// `high-water`: memory retained once and reused.
    HighWater,
    /// `none`: at most a page per request.
    None,
    /// `too-few`: it holds memory, but has too few requests to tell which of the above.
    TooFew,
    /// `unknown`: a recording without retained figures (before schema 3, or `--no-ebpf`), or a
    /// version 1 profile.
    #[default]
    Unknown,
}

impl Retention {
    /// The name the JSON and the text give it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Keeps => "keeps",
            Self::HighWater => "high-water",
            Self::None => "none",
            Self::TooFew => "too-few",
            Self::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for Retention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Ranks routes by what they keep: per further request first, then in total; routes with
/// too few requests to judge after all the others.
pub(crate) fn rank(out: &mut [Endpoint]) {
    out.sort_by(|a, b| {
        judged(b)
            .cmp(&judged(a))
            .then(b.kept_per_request_bytes.cmp(&a.kept_per_request_bytes))
            .then(b.retained_bytes.cmp(&a.retained_bytes))
            .then(b.requests.cmp(&a.requests))
            .then(a.route.cmp(&b.route))
    });
}

/// A route needs this many requests before its kept per request ranks it or calls it `keeps`:
/// a slope through one or two points is what those requests happened to hold (a 404's buffers,
/// a one-off cache fill), not what each further request keeps.
pub const MIN_REQUESTS_TO_JUDGE: u64 = 5;

/// Whether a route has enough requests for its kept per request to be judged.
pub fn judged(e: &Endpoint) -> bool {
    e.requests >= MIN_REQUESTS_TO_JUDGE
}

/// How a route retains memory: steadily per request, once, or not at all; `too-few` when it
/// holds memory but has too few requests to tell which.
pub(super) fn retention(e: &Endpoint, page: i64) -> Retention {
    let n = signed(e.requests).max(1);
    if e.retained_bytes <= page.saturating_mul(n) {
        Retention::None
    } else if !judged(e) {
        Retention::TooFew
    } else if e.kept_per_request_bytes.saturating_mul(2) >= e.retained_bytes / n
        && e.kept_per_request_bytes > page
    {
        Retention::Keeps
    } else {
        Retention::HighWater
    }
}
