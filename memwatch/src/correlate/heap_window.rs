//! When the heap probes were on: the budget (`capture::probe::heap::budget`) attaches them only
//! part of the time when following every allocation would cost more than it allows. A request
//! is followed when the probes were on as it started (and memwatch keeps them on until such
//! requests end); its resident memory is its own. A request that started while they were off
//! is *sampled out*: its memory goes to the outside-requests row, and the per-request figures
//! (kept per request) rest on the followed requests alone.

/// How many transitions are kept: enough for any request still in flight to be judged (a
/// window lasts at least a few hundred milliseconds).
const KEEP: usize = 64;

/// The probes' on/off transitions, by time (wall ns).
#[derive(Debug, Clone, Default)]
pub struct HeapWindows {
    /// `(ts_ns, on)`, in time order; before the first the probes were on.
    transitions: Vec<(i64, bool)>,
    /// Whether the probes were ever off while recording: figures are then sampled.
    sampled: bool,
}

impl HeapWindows {
    /// From `ts_ns` on, the probes are `on` (or, off: new requests are not followed).
    pub fn set(&mut self, ts_ns: i64, on: bool) {
        if self.on_at(i64::MAX) == on {
            return;
        }
        if !on {
            self.sampled = true;
        }
        self.transitions.push((ts_ns, on));
        if self.transitions.len() > KEEP {
            self.transitions.drain(..self.transitions.len() - KEEP);
        }
    }

    /// Whether a request that started at `ts_ns` is followed.
    pub fn on_at(&self, ts_ns: i64) -> bool {
        self.transitions
            .iter()
            .rev()
            .find(|&&(t, _)| t <= ts_ns)
            .is_none_or(|&(_, on)| on)
    }

    /// Whether the probes were ever off.
    pub fn sampled(&self) -> bool {
        self.sampled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_judged_by_when_they_started() {
        let mut w = HeapWindows::default();
        assert!(w.on_at(5));
        assert!(!w.sampled());
        w.set(10, false);
        w.set(20, true);
        w.set(20, true);
        w.set(30, false);
        assert!(w.on_at(9));
        assert!(!w.on_at(10));
        assert!(!w.on_at(19));
        assert!(w.on_at(20));
        assert!(w.on_at(29));
        assert!(!w.on_at(1000));
        assert!(w.sampled());
        assert_eq!(w.transitions.len(), 3);
    }
}
