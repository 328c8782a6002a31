//! Go's own sampled heap, for one recording ([`crate::capture::probe::go_profile`]): each
//! allocation the runtime samples is charged to the request its thread serves, weighed by
//! what it stands for at the process's sampling rate, and marked freed when the sweeper frees
//! it. The views judge what each route kept from these rows (`recording/query/heap_samples`).

use std::{collections::HashMap, num::NonZeroU64};

use memwatch_common::gc::GcEvent;

use crate::{
    capture::probe::go_profile,
    correlate::Correlator,
    model::{HeapSampleRow, Row},
};

/// What Go's sampled heap came to, for the recording.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct SampleCounts {
    /// Allocations sampled.
    pub(super) samples: u64,
    /// Of those, on a thread that served no request as it allocated (the runtime's own, or a
    /// goroutine between requests): charged to no route.
    pub(super) outside: u64,
    /// Sampled allocations freed.
    pub(super) freed: u64,
    /// Frees of objects no sample was seen for: objects with a finalizer (which has a special
    /// record too), or sampled before memwatch attached.
    pub(super) unknown_frees: u64,
}

/// The sampled allocations of every Go process that samples them.
#[derive(Debug, Default)]
pub(super) struct GoSamples {
    /// Each sampling process's rate, in bytes.
    rates: HashMap<u32, NonZeroU64>,
    /// Every process followed so far, with its rate (for the recording's meta).
    ever: Vec<(u32, NonZeroU64)>,
    /// Live samples by (process, address): their row's id.
    live: HashMap<(u32, u64), u64>,
    next_id: u64,
    pub(super) counts: SampleCounts,
}

impl GoSamples {
    /// `pid` samples one allocation in about `rate` bytes.
    pub(super) fn follow(&mut self, pid: u32, rate: NonZeroU64) {
        self.rates.insert(pid, rate);
        self.ever.push((pid, rate));
    }

    /// Whether `pid` samples its allocations (and they are followed).
    pub(super) fn samples(&self, pid: u32) -> bool {
        self.rates.contains_key(&pid)
    }

    /// Whether any process's heap was sampled.
    pub(super) fn any(&self) -> bool {
        !self.ever.is_empty()
    }

    /// The rates of the processes that sampled, for the recording's meta (`PID=RATE` each).
    pub(super) fn rates(&self) -> String {
        self.ever
            .iter()
            .map(|(pid, rate)| format!("{pid}={rate}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// `pid` is gone or exec'd: its samples go with it (its address space is gone).
    pub(super) fn forget(&mut self, pid: u32) {
        if self.rates.remove(&pid).is_some() {
            self.live.retain(|(p, _), _| *p != pid);
        }
    }

    /// A sampled allocation (`GcOp::GoSample`), stamped `ts_ns` (wall).
    pub(super) fn sampled(
        &mut self,
        ts_ns: i64,
        e: &GcEvent,
        correlator: &Correlator,
        rows: &mut Vec<Row>,
    ) {
        let pid = e.header.tgid;
        let Some(rate) = self.rates.get(&pid) else {
            return;
        };
        self.counts.samples += 1;
        self.next_id += 1;
        let id = self.next_id;
        // The same address sampled again: its last object was freed unseen.
        self.live.insert((pid, e.addr), id);
        let (request_id, method, route) = match correlator.serving_route(e.header.tid) {
            Some(served) => (Some(served.id), served.method, served.route),
            None => {
                self.counts.outside += 1;
                (None, None, None)
            }
        };
        rows.push(Row::HeapSample(Box::new(HeapSampleRow {
            id,
            ts_ns,
            pid,
            request_id,
            method,
            route,
            size: e.bytes,
            weight: go_profile::weight(e.bytes, rate.get()).round() as u64,
        })));
    }

    /// The sweeper freed an object with a special record (`GcOp::GoSampleFree`).
    pub(super) fn freed(&mut self, ts_ns: i64, e: &GcEvent, rows: &mut Vec<Row>) {
        let pid = e.header.tgid;
        if !self.rates.contains_key(&pid) {
            return;
        }
        match self.live.remove(&(pid, e.addr)) {
            Some(id) => {
                self.counts.freed += 1;
                rows.push(Row::HeapSampleFreed { id, ts_ns });
            }
            None => self.counts.unknown_frees += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memwatch_common::{event::EventHeader, gc::GcOp};

    fn event(op: GcOp, pid: u32, addr: u64, bytes: u64) -> GcEvent {
        GcEvent {
            header: EventHeader {
                tgid: pid,
                tid: pid,
                ..EventHeader::default()
            },
            op: op as u32,
            bytes,
            addr,
            ..GcEvent::default()
        }
    }

    #[test]
    fn a_sample_is_weighed_and_its_free_paired_by_address() {
        let correlator = Correlator::new(
            crate::correlate::route::Router::new(Vec::<String>::new()).unwrap(),
            false,
            4096,
        );
        let mut s = GoSamples::default();
        let mut rows = Vec::new();
        // A process that does not sample is not looked at.
        s.sampled(
            1,
            &event(GcOp::GoSample, 9, 0xc000, 4096),
            &correlator,
            &mut rows,
        );
        assert!(rows.is_empty());
        s.follow(7, NonZeroU64::new(512 * 1024).unwrap());
        s.sampled(
            2,
            &event(GcOp::GoSample, 7, 0xc000, 256 * 1024),
            &correlator,
            &mut rows,
        );
        s.freed(3, &event(GcOp::GoSampleFree, 7, 0xd000, 64), &mut rows);
        s.freed(
            4,
            &event(GcOp::GoSampleFree, 7, 0xc000, 256 * 1024),
            &mut rows,
        );
        s.freed(
            5,
            &event(GcOp::GoSampleFree, 7, 0xc000, 256 * 1024),
            &mut rows,
        );
        let [
            Row::HeapSample(sample),
            Row::HeapSampleFreed { id, ts_ns: 4 },
        ] = &rows[..]
        else {
            panic!("{rows:?}");
        };
        assert_eq!(
            (sample.id, sample.size, sample.weight, sample.request_id),
            (1, 262_144, 666_237, None)
        );
        assert_eq!(*id, 1);
        assert_eq!(
            s.counts,
            SampleCounts {
                samples: 1,
                outside: 1,
                freed: 1,
                unknown_frees: 2,
            }
        );
        assert_eq!(s.rates(), "7=524288");
        s.forget(7);
        assert!(s.any(), "said in the meta all the same");
        s.sampled(
            6,
            &event(GcOp::GoSample, 7, 0xe000, 4096),
            &correlator,
            &mut rows,
        );
        assert_eq!(rows.len(), 2, "a process gone is not looked at");
    }
}
