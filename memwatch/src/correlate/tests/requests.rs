//! Requests tracked through connections and threads, and what they are charged.

use super::*;
use crate::correlate::{StateSizes, requests::MAX_HELD_ROWS};

/// Two requests on one kept-alive connection: each ends at its last write, is charged the
/// memory and faults between its read and that write, and both carry the same connection
/// number.
#[test]
fn keep_alive_requests_are_charged_exactly() {
    let mut c = Correlator::new(Router::new(Vec::<String>::new()).unwrap(), false, PAGE);
    let mut out = Vec::new();
    c.net(&ev(NetOp::Accept, 10, 0, b"", 0), 0, &mut out);
    c.net(
        &ev(
            NetOp::ReadStart,
            100,
            2,
            b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n",
            0,
        ),
        0,
        &mut out,
    );
    c.mem(mmap(150, 8192), &mut out);
    c.net(
        &ev(NetOp::WriteStart, 200, 5, b"HTTP/1.1 201 Created\r\n", 0),
        0,
        &mut out,
    );
    // Outside any request (after the last write): not charged.
    c.mem(mmap(260, 4096), &mut out);
    c.net(
        &ev(
            NetOp::ReadStart,
            300,
            7,
            b"GET /b?x=1 HTTP/1.1\r\n\r\n",
            250,
        ),
        0,
        &mut out,
    );
    c.net(
        &ev(NetOp::WriteStart, 320, 7, b"HTTP/1.1 404 Not Found\r\n", 0),
        0,
        &mut out,
    );
    c.net(&ev(NetOp::Close, 400, 9, b"", 330), 0, &mut out);

    let reqs = requests(&out);
    assert_eq!(reqs.len(), 2, "{out:#?}");
    let (a, b) = (reqs[0], reqs[1]);
    assert_eq!(
        (a.target.as_deref(), a.host.as_deref(), a.status),
        (Some("/a"), Some("h"), Some(201))
    );
    assert_eq!(
        (a.start_ns, a.first_byte_ns, a.end_ns),
        (100, Some(200), 250)
    );
    // Faults 2 -> 7: the counter at the read, and at the last write (carried by the next
    // read); the 2 before the read belong to no request.
    assert_eq!(
        (a.vm_bytes, a.mem_calls, a.faults, a.rss_bytes),
        (8192, 1, 5, 5 * PAGE as i64)
    );
    assert_eq!((b.target.as_deref(), b.status), (Some("/b?x=1"), Some(404)));
    assert_eq!(
        (b.start_ns, b.end_ns, b.vm_bytes, b.faults),
        (300, 330, 0, 2)
    );
    assert_eq!((a.conn, b.conn), (1, 1));
    assert!(a.exact && b.exact);
    assert_eq!(c.requests(), 2);
    // Without an access log to join, nothing is held for the join.
    assert!(c.take_candidates().is_empty());
}

/// A process that exits with connections open: its requests end at the exit, a head that
/// never completed is counted, and no state is left for a later process with its PID.
#[test]
fn a_process_gone_ends_its_requests_and_connections() {
    let mut c = correlator();
    let mut out = Vec::new();
    let get = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
    c.net(
        &ev_on(5, TID, NetOp::ReadStart, 100, 0, get, (0, 0)),
        0,
        &mut out,
    );
    c.net(
        &ev_on(6, TID, NetOp::ReadStart, 110, 0, b"GET /b HT", (0, 0)),
        0,
        &mut out,
    );
    assert_eq!(c.state_sizes().conns, 2);
    assert_eq!(c.state_sizes().requests, 1);
    c.process_gone(500, PID, &mut out);
    let requests: Vec<_> = out
        .iter()
        .filter_map(|r| match r {
            Row::Request(r) => Some((r.target.as_deref().map(str::to_owned), r.end_ns)),
            _ => None,
        })
        .collect();
    assert_eq!(requests, [(Some("/a".to_owned()), 500)]);
    let incomplete = out
        .iter()
        .filter(|r| {
            matches!(
                r,
                Row::NonHttp {
                    kind: "incomplete",
                    ..
                }
            )
        })
        .count();
    assert_eq!(incomplete, 1);
    assert_eq!(
        c.state_sizes(),
        StateSizes {
            threads: 1,
            ..StateSizes::default()
        }
    );
}

#[test]
fn candidates_are_offered_only_when_joining() {
    let mut c =
        Correlator::new(Router::new(Vec::<String>::new()).unwrap(), false, PAGE).joining(true);
    let mut out = Vec::new();
    c.net(
        &ev(NetOp::ReadStart, 100, 0, b"GET /a HTTP/1.1\r\n\r\n", 0),
        0,
        &mut out,
    );
    c.net(
        &ev(NetOp::WriteStart, 200, 0, b"HTTP/1.1 200 OK\r\n", 0),
        0,
        &mut out,
    );
    let cands = c.take_candidates();
    assert_eq!(cands.len(), 1);
    assert_eq!(
        (cands[0].target.as_str(), cands[0].status, cands[0].start_ns),
        ("/a", 200, 100)
    );
    // A connection first seen at a read (accepted before attach) still gets a number.
    c.finish_all(&mut out);
    assert_eq!(requests(&out)[0].conn, 1);
}

/// An event loop: one thread reads a second request before the first is answered. Both
/// are marked approximate, and memory from then on goes to the request read last.
#[test]
fn an_event_loop_thread_makes_its_requests_approximate() {
    let mut c = correlator();
    let mut out = Vec::new();
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\n\r\n").into_bytes();
    c.net(
        &ev_on(5, TID, NetOp::ReadStart, 100, 0, &get("/a"), (0, 0)),
        0,
        &mut out,
    );
    c.mem(mmap(110, 4096), &mut out);
    c.net(
        &ev_on(6, TID, NetOp::ReadStart, 120, 1, &get("/b"), (0, 0)),
        0,
        &mut out,
    );
    c.mem(mmap(130, 8192), &mut out);
    let ok = b"HTTP/1.1 200 OK\r\n";
    c.net(
        &ev_on(6, TID, NetOp::WriteStart, 140, 3, ok, (0, 0)),
        0,
        &mut out,
    );
    c.net(
        &ev_on(5, TID, NetOp::WriteStart, 150, 3, ok, (0, 0)),
        0,
        &mut out,
    );
    c.net(
        &ev_on(6, TID, NetOp::Close, 200, 3, b"", (145, TID)),
        0,
        &mut out,
    );
    c.net(
        &ev_on(5, TID, NetOp::Close, 210, 3, b"", (155, TID)),
        0,
        &mut out,
    );
    let reqs = requests(&out);
    assert_eq!(reqs.len(), 2, "{out:#?}");
    let (b, a) = (reqs[0], reqs[1]);
    assert_eq!(
        (a.target.as_deref(), b.target.as_deref()),
        (Some("/a"), Some("/b"))
    );
    assert!(!a.exact && !b.exact, "both are approximate");
    // /a had the thread until /b was read; /b has it from then on.
    assert_eq!((a.vm_bytes, a.faults), (4096, 1));
    assert_eq!((b.vm_bytes, b.faults), (8192, 2));
    assert_eq!((a.conn, b.conn), (1, 2));
}

/// A response written by another thread than the one that read the request: the request
/// is approximate, and the writer's faults up to its last write are charged to it.
#[test]
fn a_response_written_by_another_thread_is_charged_and_approximate() {
    const WRITER: u32 = 202;
    let mut c = correlator();
    let mut out = Vec::new();
    let get = b"GET /w HTTP/1.1\r\n\r\n";
    c.net(
        &ev_on(5, TID, NetOp::ReadStart, 100, 10, get, (0, 0)),
        0,
        &mut out,
    );
    // The writer thread's counter stands at 40 when it starts the response...
    let ok = b"HTTP/1.1 200 OK\r\n";
    c.net(
        &ev_on(5, WRITER, NetOp::WriteStart, 200, 40, ok, (0, 0)),
        0,
        &mut out,
    );
    // ...and at 43 at its last write, which the close carries (seen on the reader's thread).
    let mut close = ev_on(5, TID, NetOp::Close, 400, 10, b"", (300, WRITER));
    close.meta.last_write_faults = 43;
    c.net(&close, 0, &mut out);
    let reqs = requests(&out);
    assert_eq!(reqs.len(), 1, "{out:#?}");
    let r = reqs[0];
    assert!(!r.exact);
    assert_eq!((r.tid, r.status, r.end_ns), (TID, Some(200), 300));
    assert_eq!(
        r.faults, 3,
        "the writer's faults between its first and last write"
    );
    assert_eq!(r.rss_bytes, 3 * PAGE as i64);
}

/// A request that holds more memory rows than MAX_HELD_ROWS writes them early and keeps
/// their charge; rows after its end are still not its own.
#[test]
fn held_memory_rows_are_flushed_early_and_keep_their_charge() {
    let mut c = correlator();
    let mut out = Vec::new();
    c.net(
        &ev(NetOp::ReadStart, 100, 0, b"GET /big HTTP/1.1\r\n\r\n", 0),
        0,
        &mut out,
    );
    for i in 0..MAX_HELD_ROWS + 5 {
        c.mem(mmap(101 + i as i64, 4096), &mut out);
    }
    let early = out.iter().filter(|r| matches!(r, Row::Mem(_))).count();
    assert_eq!(
        early, MAX_HELD_ROWS,
        "one full batch written before the request ended"
    );
    assert!(requests(&out).is_empty());
    let end = 101 + MAX_HELD_ROWS as u64 + 10;
    c.net(
        &ev(NetOp::WriteStart, end - 5, 0, b"HTTP/1.1 200 OK\r\n", 0),
        0,
        &mut out,
    );
    c.net(&ev(NetOp::Close, end + 50, 0, b"", end), 0, &mut out);
    let reqs = requests(&out);
    assert_eq!(reqs.len(), 1);
    let calls = MAX_HELD_ROWS as u64 + 5;
    assert_eq!(reqs[0].mem_calls, calls);
    assert_eq!(reqs[0].vm_bytes, calls as i64 * 4096);
    let charged = out
        .iter()
        .filter(|r| matches!(r, Row::Mem(m) if m.request_id == Some(reqs[0].id)))
        .count();
    assert_eq!(charged as u64, calls, "every row names its request");
}

/// While the heap probes are off (their budget spent), a request that starts is sampled
/// out: its growth goes to the outside row and it is not waited for; one that started
/// while they were on is followed and holds its memory.
#[test]
fn requests_that_start_while_the_heap_probes_are_off_are_sampled_out() {
    let p = PAGE;
    let mut c = correlator().following_heap();
    let mut out = Vec::new();
    c.net(
        &ev_on(
            5,
            TID,
            NetOp::ReadStart,
            100,
            0,
            b"GET /a HTTP/1.1\r\n\r\n",
            (0, TID),
        ),
        0,
        &mut out,
    );
    c.heap_probes(150, false);
    assert_eq!(c.followed_in_flight(), 1);
    c.net(
        &ev_on(
            6,
            TID + 1,
            NetOp::ReadStart,
            200,
            0,
            b"GET /b HTTP/1.1\r\n\r\n",
            (0, TID + 1),
        ),
        0,
        &mut out,
    );
    assert_eq!(c.followed_in_flight(), 1, "/b is sampled out");
    c.grow(210, PID, TID, 10 * p, 2 * p, 210, &mut out);
    c.grow(211, PID, TID + 1, 20 * p, 3 * p, 211, &mut out);
    c.finish_all(&mut out);
    let reqs = requests(&out);
    let a = reqs
        .iter()
        .find(|r| r.route.as_deref() == Some("/a"))
        .unwrap();
    let b = reqs
        .iter()
        .find(|r| r.route.as_deref() == Some("/b"))
        .unwrap();
    assert_eq!((a.sampled_out, a.grown), (false, 2 * p));
    assert_eq!((b.sampled_out, b.grown), (true, 0));
    let outside = outside_grown(&out);
    assert_eq!(outside, 3 * p);
    assert!(c.heap_sampled());
}
