//! Responses whose start the kernel side folded into the connection's next event: the request
//! gets the same figures as from a start sent on its own, and the fold never moves a thread.

use super::*;
use crate::capture::probe::conns::{ConnId, FoldedResponse};

const GET_A: &[u8] = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
const GET_B: &[u8] = b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n";

/// `rec` carrying a folded response start at `ns` with `status`.
fn with_fold(mut rec: NetRecord<'_>, ns: u64, status: u32) -> NetRecord<'_> {
    rec.meta.response_ns = ns;
    rec.meta.response_status = status;
    rec
}

/// `(target, status, start, first byte, end, vm bytes, faults)` of a request row.
type Figures<'a> = (
    Option<&'a str>,
    Option<u16>,
    i64,
    Option<i64>,
    i64,
    i64,
    u64,
);

/// `(target, status, first byte, end)` of a request row.
type Response<'a> = (Option<&'a str>, Option<u16>, Option<i64>, i64);

fn responses(out: &[Row]) -> Vec<Response<'_>> {
    requests(out)
        .iter()
        .map(|r| (r.target.as_deref(), r.status, r.first_byte_ns, r.end_ns))
        .collect()
}

/// A start held for connection `fd` of PID (generation 1).
fn held(fd: u32, first_write_ns: u64, status: u16) -> FoldedResponse {
    FoldedResponse {
        conn: ConnId {
            pid: PID,
            fd,
            generation: 1,
        },
        first_write_ns,
        status,
    }
}

fn figures(out: &[Row]) -> Vec<Figures<'_>> {
    requests(out)
        .iter()
        .map(|r| {
            (
                r.target.as_deref(),
                r.status,
                r.start_ns,
                r.first_byte_ns,
                r.end_ns,
                r.vm_bytes,
                r.faults,
            )
        })
        .collect()
}

/// Two keep-alive requests, each with memory between its read and its last write, their
/// response starts sent (`sent`) or folded into the next read and the close. The rows are equal.
#[test]
fn a_folded_start_gives_the_same_request_as_a_sent_one() {
    let run = |fold: bool| {
        let mut c = correlator();
        let mut out = Vec::new();
        c.net(&ev(NetOp::Accept, 10, 0, b"", 0), 0, &mut out);
        c.net(&ev(NetOp::ReadStart, 100, 2, GET_A, 0), 0, &mut out);
        c.mem(mmap(150, 8192), &mut out);
        if !fold {
            c.net(
                &ev(NetOp::WriteStart, 200, 5, b"HTTP/1.1 201 Created\r\n", 0),
                0,
                &mut out,
            );
        }
        c.mem(mmap(220, 4096), &mut out);
        let next = ev(NetOp::ReadStart, 300, 7, GET_B, 250);
        let next = if fold {
            with_fold(next, 200, 201)
        } else {
            next
        };
        c.net(&next, 0, &mut out);
        if !fold {
            c.net(
                &ev(NetOp::WriteStart, 320, 7, b"HTTP/1.1 404 Not Found\r\n", 0),
                0,
                &mut out,
            );
        }
        let close = ev(NetOp::Close, 400, 9, b"", 330);
        let close = if fold {
            with_fold(close, 320, 404)
        } else {
            close
        };
        c.net(&close, 0, &mut out);
        out
    };
    let (sent, folded) = (run(false), run(true));
    let expected = [
        (Some("/a"), Some(201), 100, Some(200), 250, 8192 + 4096, 5),
        (Some("/b"), Some(404), 300, Some(320), 330, 0, 2),
    ];
    assert_eq!(figures(&sent), expected);
    assert_eq!(figures(&folded), expected);
}

/// The kernel side folds a start only when the writer already serves the request, so applying
/// one later never moves a thread: an event loop that read A, wrote A's response (folded), then
/// read B keeps serving B when A's fold arrives on another thread's close of A.
#[test]
fn a_folded_start_never_moves_a_thread() {
    let mut c = correlator();
    let mut out = Vec::new();
    c.net(
        &ev_on(5, TID, NetOp::ReadStart, 100, 0, GET_A, (0, 0)),
        0,
        &mut out,
    );
    c.net(
        &ev_on(6, TID, NetOp::ReadStart, 200, 0, GET_B, (0, 0)),
        0,
        &mut out,
    );
    let close_a = ev_on(5, TID + 1, NetOp::Close, 300, 0, b"", (150, TID));
    c.net(&with_fold(close_a, 120, 200), 0, &mut out);
    c.mem(mmap(310, 4096), &mut out);
    // B had no response: it ends at its close.
    c.net(
        &ev_on(6, TID, NetOp::Close, 400, 0, b"", (0, 0)),
        0,
        &mut out,
    );
    let got: Vec<_> = requests(&out)
        .iter()
        .map(|r| {
            (
                r.target.as_deref(),
                r.status,
                r.first_byte_ns,
                r.end_ns,
                r.vm_bytes,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (Some("/a"), Some(200), Some(120), 150, 0),
            (Some("/b"), None, None, 400, 4096)
        ]
    );
}

/// A pipelined start sent on its own brings the fold of the response before it first: the
/// first response ends where the second starts, and each has its status.
#[test]
fn a_fold_comes_before_the_event_that_carries_it() {
    let mut c = correlator();
    let mut out = Vec::new();
    let both = [GET_A, GET_B].concat();
    c.net(&ev(NetOp::ReadStart, 100, 0, &both, 0), 0, &mut out);
    let second = ev(NetOp::WriteStart, 300, 0, b"HTTP/1.1 404 Not Found\r\n", 0);
    c.net(&with_fold(second, 200, 200), 0, &mut out);
    c.net(&ev(NetOp::Close, 400, 0, b"", 350), 0, &mut out);
    assert_eq!(
        responses(&out),
        [
            (Some("/a"), Some(200), Some(200), 300),
            (Some("/b"), Some(404), Some(300), 350)
        ]
    );
}

/// At stop, the starts the kernel side still holds are applied before the open requests end:
/// a request idle on its kept-alive connection keeps its status and ends at its first byte, as
/// when the start was sent. A fold for an unknown connection, or a status of 0, changes nothing.
#[test]
fn folds_still_held_at_stop_are_applied() {
    let mut c = correlator();
    let mut out = Vec::new();
    c.net(&ev(NetOp::ReadStart, 100, 0, GET_A, 0), 0, &mut out);
    c.net(
        &ev_on(6, TID, NetOp::ReadStart, 110, 0, GET_B, (0, 0)),
        0,
        &mut out,
    );
    let held = [held(5, 150, 200), held(6, 160, 0), held(9, 170, 500)];
    // Where the kernel side is asked: the two connections whose request awaits a response.
    let mut awaiting = c.awaiting_conns(Some(PID));
    awaiting.sort_unstable_by_key(|c| c.fd);
    assert_eq!(
        awaiting
            .iter()
            .map(|c| (c.fd, c.generation))
            .collect::<Vec<_>>(),
        [(5, 1), (6, 1)]
    );
    assert!(c.awaiting_conns(Some(PID + 1)).is_empty());
    c.folded_responses(&held, 1000, &mut out);
    c.finish_all(&mut out);
    assert_eq!(
        responses(&out),
        [
            (Some("/a"), Some(200), Some(1150), 1150),
            (Some("/b"), None, Some(1160), 1160)
        ]
    );
}
