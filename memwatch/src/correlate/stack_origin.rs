//! Resident memory by call site (`--stacks`), with the origin model of requests: each page
//! carries the call site that made it resident ([`Charge::stack`]) along with its request, so a
//! release, by whatever thread whenever, is credited back to both. A request's sums per call site
//! are written when it ends; later releases as they come; growth outside any request at once.

use std::sync::Arc;

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
            let grown = StackSums {
                stack: charge.stack,
                grown: bytes,
                pages,
                ..StackSums::default()
            };
            out.push(row(ts_ns, outside(ts_ns), pid, grown));
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
        let released = StackSums {
            stack: charge.stack,
            released: bytes,
            ..StackSums::default()
        };
        if charge.request == OUTSIDE {
            out.push(row(ts_ns, outside(ts_ns), pid, released));
        } else if let Some(req) = self.inflight.get_mut(&charge.request) {
            sums_of(req, charge.stack).released += bytes;
        } else if let Some(r) = self.retained.get(&charge.request) {
            let owner = (r.end_ns, r.method.clone(), r.route.clone());
            out.push(row(ts_ns, owner, pid, released));
        }
    }

    /// A request ended: its sums per call site are written.
    pub(super) fn stack_finish(&self, req: &InFlight, out: &mut Vec<Row>) {
        let end = req.row.end_ns;
        let method: Option<Arc<str>> = req.row.method.as_deref().map(Into::into);
        let route: Option<Arc<str>> = req.row.route.as_deref().map(Into::into);
        for &s in &req.stacks {
            out.push(row(
                end,
                (end, method.clone(), route.clone()),
                req.row.pid,
                s,
            ));
        }
    }
}

/// Whose memory a row is: the request's end, method and route.
type Owner = (i64, Option<Arc<str>>, Option<Arc<str>>);

/// The owner of memory made or released outside any request: route `""`, stamped with the
/// event's own time.
fn outside(ts_ns: i64) -> Owner {
    (ts_ns, None, Some("".into()))
}

/// One call site's row at `ts_ns`.
fn row(ts_ns: i64, (req_end_ns, method, route): Owner, pid: u32, sums: StackSums) -> Row {
    let StackSums {
        stack,
        grown,
        released,
        pages,
    } = sums;
    Row::StackCharge(Box::new(StackChargeRow {
        ts_ns,
        req_end_ns,
        method,
        route,
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
