//! Resident memory by call site (`--stacks`), with the origin model of requests: each page
//! carries the call site that made it resident ([`Charge::stack`]) along with its request, so a
//! release, by whatever thread whenever, is credited back to both. A request's sums per call site
//! are written when it ends; later releases as they come; growth outside any request at once.

use super::{Charge, Correlator, InFlight, origin::OUTSIDE};
use crate::model::{Row, StackChargeRow};

/// One call site's sums within one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct StackSums {
    pub(super) stack: u32,
    pub(super) grown: u64,
    /// Released before the request ended.
    pub(super) released: u64,
    pub(super) pages: u64,
}

impl Correlator {
    /// Charges growth to call sites too, from now on (`record --stacks`).
    #[must_use]
    pub fn with_stacks(mut self, on: bool) -> Self {
        self.stacks = on;
        self
    }

    /// Thread `tid`'s growth from now on comes from call site `stack` (`None`: the stack was
    /// lost; its growth has no call site).
    pub fn set_stack(&mut self, tid: u32, stack: Option<u32>) {
        self.threads.entry(tid).or_default().stack = stack.unwrap_or(0);
    }

    pub(super) fn stack_of(&self, tid: u32) -> u32 {
        self.threads.get(&tid).map_or(0, |t| t.stack)
    }

    fn pages(&self, bytes: u64) -> u64 {
        bytes.div_ceil(self.page_size.max(1) as u64)
    }

    /// `bytes` made resident (or handed over) under `charge`.
    pub(super) fn charge_stack(
        &mut self,
        charge: Charge,
        ts_ns: i64,
        pid: u32,
        bytes: u64,
        out: &mut Vec<Row>,
    ) {
        if !self.stacks || bytes == 0 {
            return;
        }
        let pages = self.pages(bytes);
        if charge.request == OUTSIDE {
            out.push(outside_row(ts_ns, pid, charge.stack, (bytes, 0, pages)));
            return;
        }
        if let Some(req) = self.inflight.get_mut(&charge.request) {
            let sums = sums_of(req, charge.stack);
            sums.grown += bytes;
            sums.pages += pages;
        }
    }

    /// `bytes` of `charge` released.
    pub(super) fn credit_stack(
        &mut self,
        charge: Charge,
        ts_ns: i64,
        pid: u32,
        bytes: u64,
        out: &mut Vec<Row>,
    ) {
        if !self.stacks || bytes == 0 {
            return;
        }
        let row = |req_end_ns, method, route| {
            Row::StackCharge(Box::new(StackChargeRow {
                ts_ns,
                req_end_ns,
                method,
                route,
                pid,
                stack: charge.stack,
                grown: 0,
                released: bytes,
                pages: 0,
            }))
        };
        if charge.request == OUTSIDE {
            out.push(outside_row(ts_ns, pid, charge.stack, (0, bytes, 0)));
        } else if let Some(req) = self.inflight.get_mut(&charge.request) {
            sums_of(req, charge.stack).released += bytes;
        } else if let Some(r) = self.retained.get(&charge.request) {
            out.push(row(r.end_ns, r.method.clone(), r.route.clone()));
        }
    }

    /// A request ended: its sums per call site are written.
    pub(super) fn stack_finish(&self, req: &InFlight, out: &mut Vec<Row>) {
        for s in &req.stacks {
            out.push(Row::StackCharge(Box::new(StackChargeRow {
                ts_ns: req.row.end_ns,
                req_end_ns: req.row.end_ns,
                method: req.row.method.as_deref().map(Into::into),
                route: req.row.route.as_deref().map(Into::into),
                pid: req.row.pid,
                stack: s.stack,
                grown: s.grown,
                released: s.released,
                pages: s.pages,
            })));
        }
    }
}

/// A row of memory made resident (`grown`, `pages`) or released outside any request: route `""`,
/// stamped with the event's own second.
fn outside_row(ts_ns: i64, pid: u32, stack: u32, (grown, released, pages): (u64, u64, u64)) -> Row {
    Row::StackCharge(Box::new(StackChargeRow {
        ts_ns,
        req_end_ns: ts_ns,
        method: None,
        route: Some("".into()),
        pid,
        stack,
        grown,
        released,
        pages,
    }))
}

fn sums_of(req: &mut InFlight, stack: u32) -> &mut StackSums {
    match req.stacks.iter().position(|s| s.stack == stack) {
        Some(i) => &mut req.stacks[i],
        None => {
            req.stacks.push(StackSums {
                stack,
                ..StackSums::default()
            });
            let last = req.stacks.len() - 1;
            &mut req.stacks[last]
        }
    }
}
