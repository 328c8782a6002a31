//! The correlator's tests: hand-built event sequences in, rows out. What they share is here;
//! the tests sit in the file named as the part of the correlator they test.

mod folded;
mod requests;
mod resident;

use memwatch_common::{
    EventHeader,
    mem::MemOp,
    net::{NetMeta, NetOp},
};

use super::{Correlator, route::Router};
use crate::{
    capture::probe::NetRecord,
    model::{MemRow, RequestRow, Row},
};

const PID: u32 = 100;
const TID: u32 = 101;
const PAGE: u64 = 4096;

/// A socket event on fd 5 of thread TID at `ts` with the thread's fault counter `faults`.
fn ev(op: NetOp, ts: u64, faults: u64, data: &[u8], last_write_ns: u64) -> NetRecord<'_> {
    ev_on(5, TID, op, ts, faults, data, (last_write_ns, TID))
}

/// A socket event on `fd` of thread `tid`; `last_write` is the (time, thread) of the
/// connection's last write, carried by this boundary (time 0: none).
fn ev_on(
    fd: u32,
    tid: u32,
    op: NetOp,
    ts: u64,
    faults: u64,
    data: &[u8],
    last_write: (u64, u32),
) -> NetRecord<'_> {
    let (last_write_ns, writer) = last_write;
    NetRecord {
        meta: NetMeta {
            header: EventHeader {
                tgid: PID,
                tid,
                ts_ns: ts,
                ..EventHeader::default()
            },
            op: op as u32,
            fd,
            generation: 1,
            faults,
            bytes: data.len() as u64,
            last_write_ns,
            last_write_faults: faults,
            last_bytes_out: 300,
            last_write_tid: if last_write_ns == 0 { 0 } else { writer },
            captured: data.len() as u32,
            ..NetMeta::default()
        },
        op,
        data,
    }
}

fn correlator() -> Correlator {
    Correlator::new(Router::new(Vec::<String>::new()).unwrap(), false, PAGE)
}

fn requests(rows: &[Row]) -> Vec<&RequestRow> {
    rows.iter()
        .filter_map(|r| match r {
            Row::Request(r) => Some(r),
            _ => None,
        })
        .collect()
}

fn mmap(ts: i64, len: i64) -> MemRow {
    MemRow {
        ts_ns: ts,
        pid: PID,
        tid: TID,
        op: MemOp::Mmap,
        addr: 0,
        len: len as u64,
        new_len: 0,
        prot: 3,
        flags: 0x22,
        fd: -1,
        ret: 0x7000_0000,
        ok: true,
        vm_delta: len,
        request_id: None,
        stack: None,
    }
}

/// The bytes made resident outside any request, summed over `rows`.
fn outside_grown(rows: &[Row]) -> u64 {
    rows.iter()
        .filter_map(|r| match r {
            Row::OutsideGrowth { bytes, .. } => Some(*bytes),
            _ => None,
        })
        .sum()
}

fn releases(rows: &[Row]) -> Vec<(i64, i64, Option<&str>, u64)> {
    rows.iter()
        .filter_map(|r| match r {
            Row::Release(r) => Some((r.request_id, r.request_end_ns, r.route.as_deref(), r.bytes)),
            _ => None,
        })
        .collect()
}

/// `(route, stack, grown, released)` of every call-site row.
fn stack_rows(rows: &[Row]) -> Vec<(Option<&str>, u32, u64, u64)> {
    rows.iter()
        .filter_map(|r| match r {
            Row::StackCharge(c) => Some((c.route.as_deref(), c.stack, c.grown, c.released)),
            _ => None,
        })
        .collect()
}
