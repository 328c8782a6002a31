//! Ingestion counters: lines seen, parsed, and rejected per reason.

use std::collections::BTreeMap;

use super::line::AccessLine;
use super::parse::Reject;

/// How many lines were read, parsed, and rejected (by [`RejectReason::as_str`] name).
///
/// [`RejectReason::as_str`]: super::RejectReason::as_str
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct IngestCounts {
    /// Lines seen (parsed + rejected).
    pub lines: u64,
    /// Lines parsed.
    pub parsed: u64,
    /// Rejected lines per reason.
    pub rejected: BTreeMap<&'static str, u64>,
}

impl IngestCounts {
    /// Counts one outcome.
    pub fn record(&mut self, result: &Result<AccessLine, Reject>) {
        self.lines += 1;
        match result {
            Ok(_) => self.parsed += 1,
            Err(reject) => *self.rejected.entry(reject.reason.as_str()).or_default() += 1,
        }
    }

    /// Rejected lines, all reasons together.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}
