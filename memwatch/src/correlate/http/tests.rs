use super::{response::*, sniff::*, stream::*, *};

/// Pushes `data` as one fully captured read tagged `tag`.
fn push_all(stream: &mut RequestStream<u32>, data: &[u8], tag: u32) -> Vec<StreamEvent<u32>> {
    stream
        .push(data, ReadMeta::new(data.len() as u64, tag))
        .into_vec()
}

fn requests(events: &[StreamEvent<u32>]) -> Vec<&ParsedRequest<u32>> {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Request(r) => Some(r),
            _ => None,
        })
        .collect()
}

fn targets(events: &[StreamEvent<u32>]) -> Vec<String> {
    requests(events)
        .iter()
        .map(|r| r.target_lossy().into_owned())
        .collect()
}

const GET: &[u8] =
    b"GET /users/42?tab=posts HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n\r\n";

#[test]
fn get_with_host() {
    assert_eq!(
        classify(GET),
        Classification::Request {
            head_complete: true
        }
    );
    let mut s = RequestStream::new();
    let events = push_all(&mut s, GET, 7);
    assert_eq!(events.len(), 1);
    let r = requests(&events)[0];
    assert_eq!(r.method, "GET");
    assert_eq!(r.target, b"/users/42?tab=posts");
    assert!(!r.target_truncated);
    assert_eq!(r.version, 1);
    assert_eq!(r.host.as_deref(), Some("example.com"));
    assert_eq!(r.head_len, GET.len() as u64);
    assert_eq!(r.head, HeadState::Complete);
    assert_eq!(r.body, BodyFraming::None);
    assert_eq!(r.offset, 0);
    assert!(!r.resynced);
    assert_eq!(r.tag, 7);
    assert_eq!(s.sync_state(), SyncState::Synced);
    assert_eq!(s.requests_seen(), 1);
    assert_eq!(s.bytes_seen(), GET.len() as u64);
}

#[test]
fn http10_lf_only_and_leading_empty_lines() {
    let data = b"\r\n\nHEAD /x HTTP/1.0\nHOST:  h:8080 \n\n";
    let mut s = RequestStream::new();
    let events = push_all(&mut s, data, 0);
    let r = requests(&events)[0];
    assert_eq!((r.method.as_str(), r.version), ("HEAD", 0));
    assert_eq!(r.host.as_deref(), Some("h:8080"));
    assert_eq!(r.offset, 3);
    assert_eq!(r.head_len, data.len() as u64 - 3);
}

#[test]
fn split_byte_by_byte() {
    let data = [
        GET,
        b"POST /p HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /last HTTP/1.1\r\n\r\n",
    ]
    .concat();
    let mut s = RequestStream::new();
    let mut events = Vec::new();
    for (i, b) in data.iter().enumerate() {
        let i = u32::try_from(i).unwrap();
        events.extend(s.push(std::slice::from_ref(b), ReadMeta::new(1, i)));
    }
    assert_eq!(targets(&events), ["/users/42?tab=posts", "/p", "/last"]);
    let reqs = requests(&events);
    // Tags are those of the reads holding each request's first byte; offsets are exact.
    let second = GET.len() as u32;
    let third = second + 42;
    assert_eq!(
        reqs.iter().map(|r| r.tag).collect::<Vec<_>>(),
        [0, second, third]
    );
    assert_eq!(
        reqs.iter().map(|r| r.offset).collect::<Vec<_>>(),
        [0, u64::from(second), u64::from(third)]
    );
    assert_eq!(reqs[1].body, BodyFraming::ContentLength(3));
    assert!(events.iter().all(|e| matches!(e, StreamEvent::Request(_))));
}

#[test]
fn request_line_split_across_reads() {
    let mut s = RequestStream::new();
    assert!(push_all(&mut s, b"GE", 1).is_empty());
    assert!(push_all(&mut s, b"T /split/", 2).is_empty());
    assert!(push_all(&mut s, b"path HTTP/1.", 3).is_empty());
    assert!(push_all(&mut s, b"1\r\nHost: a\r", 4).is_empty());
    let events = push_all(&mut s, b"\n\r\n", 5);
    let r = requests(&events)[0];
    assert_eq!((r.target.as_slice(), r.tag), (b"/split/path".as_slice(), 1));
    assert_eq!(r.host.as_deref(), Some("a"));
}

#[test]
fn pipelined_three_in_one_chunk() {
    let data = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\n\r\nDELETE /c HTTP/1.1\r\nHost: z\r\n\r\n";
    let mut s = RequestStream::new();
    let events = push_all(&mut s, data, 9);
    assert_eq!(targets(&events), ["/a", "/b", "/c"]);
    let reqs = requests(&events);
    assert_eq!(
        reqs.iter().map(|r| r.offset).collect::<Vec<_>>(),
        [0, 28, 47]
    );
    assert_eq!(reqs[2].method, "DELETE");
    assert_eq!(reqs[1].host, None);
    assert!(
        reqs.iter()
            .all(|r| r.tag == 9 && r.head == HeadState::Complete)
    );
    // Keep-alive: the next request after the response comes in a later read.
    let events = push_all(&mut s, b"GET /d HTTP/1.1\r\n\r\n", 10);
    assert_eq!(requests(&events)[0].offset, data.len() as u64);
}

#[test]
fn pipelined_last_request_cut_after_its_request_line() {
    let data =
        b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\nHost: bee\r\nAccept: */*\r\nCookie: x\r\n\r\n";
    let cut = 19 + 17 + 11 + 5; // through "Host: bee\r\n" and part of Accept
    let mut s = RequestStream::new();
    let events = s.push(&data[..cut], ReadMeta::new(data.len() as u64, 1));
    assert_eq!(targets(&events), ["/a", "/b"]);
    let b = requests(&events)[1];
    assert_eq!(b.head, HeadState::Truncated);
    assert_eq!(b.host.as_deref(), Some("bee"));
    assert_eq!(b.body, BodyFraming::Unknown);
    assert_eq!(b.head_len, (cut - 19) as u64);
    assert!(matches!(
        events.last(),
        Some(StreamEvent::LostSync {
            reason: LostReason::UncapturedHead,
            ..
        })
    ));
    assert_eq!(s.sync_state(), SyncState::Lost);
    // The next read starts with a request line: resynchronised.
    let events = push_all(&mut s, b"GET /c HTTP/1.1\r\n\r\n", 2);
    let c = requests(&events)[0];
    assert!(c.resynced);
    assert_eq!(c.offset, data.len() as u64);
    assert_eq!(s.sync_state(), SyncState::Synced);
}

#[test]
fn pipelined_last_request_line_cut_is_oversized() {
    let data = b"GET /a HTTP/1.1\r\n\r\nGET /very/long/target HTTP/1.1\r\n\r\n";
    let mut s = RequestStream::new();
    let events = s.push(&data[..25], ReadMeta::new(data.len() as u64, 1));
    assert_eq!(targets(&events), ["/a"]);
    assert_eq!(
        events[1],
        StreamEvent::NotRequest {
            kind: NonHttpKind::Oversized,
            offset: 19,
            tag: 1
        }
    );
    assert_eq!(s.sync_state(), SyncState::Lost);
}

#[test]
fn capture_ending_at_a_boundary_with_more_bytes_is_lost() {
    let mut s = RequestStream::new();
    let events = s.push(b"GET /a HTTP/1.1\r\n\r\n", ReadMeta::new(40, 3));
    assert_eq!(targets(&events), ["/a"]);
    assert_eq!(
        events[1],
        StreamEvent::LostSync {
            reason: LostReason::UncapturedBoundary,
            offset: 19,
            tag: 3
        }
    );
}

#[test]
fn tls_client_hello() {
    let hello = [
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0x8a, 0x11, 0x00,
    ];
    assert_eq!(classify(&hello), Classification::NonHttp(NonHttpKind::Tls));
    assert_eq!(
        classify(&hello[..1]),
        Classification::NonHttp(NonHttpKind::Tls)
    );
    let mut s = RequestStream::new();
    let events = s.push(&hello, ReadMeta::new(517, 0));
    assert_eq!(
        &events[..],
        [StreamEvent::NotRequest {
            kind: NonHttpKind::Tls,
            offset: 0,
            tag: 0
        }]
    );
    assert_eq!(s.sync_state(), SyncState::NotHttp(NonHttpKind::Tls));
    assert!(push_all(&mut s, GET, 1).is_empty());
    // An already-open TLS connection shows application-data records.
    let mut s = RequestStream::mid_stream();
    let events = s.push(&[0x17, 0x03, 0x03, 0x00, 0x20, 0xaa], ReadMeta::new(37, 0));
    assert!(matches!(
        events[..],
        [StreamEvent::NotRequest {
            kind: NonHttpKind::Tls,
            ..
        }]
    ));
}

#[test]
fn http2_preface() {
    assert_eq!(
        classify(H2_PREFACE),
        Classification::NonHttp(NonHttpKind::Http2)
    );
    assert_eq!(
        classify(&H2_PREFACE[..12]),
        Classification::NonHttp(NonHttpKind::Http2)
    );
    // Shorter prefixes are still valid HTTP/1.x request prefixes.
    assert_eq!(classify(&H2_PREFACE[..11]), Classification::Incomplete);
    let mut s = RequestStream::new();
    let mut events = Vec::new();
    for (i, b) in H2_PREFACE.iter().enumerate() {
        events.extend(s.push(std::slice::from_ref(b), ReadMeta::new(1, i as u32)));
    }
    assert_eq!(
        events,
        [StreamEvent::NotRequest {
            kind: NonHttpKind::Http2,
            offset: 0,
            tag: 0
        }]
    );
    assert_eq!(s.sync_state(), SyncState::NotHttp(NonHttpKind::Http2));
}

#[test]
fn h2c_upgrade_switches_protocol() {
    let mut s = RequestStream::new();
    let up =
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\r\n";
    let events = push_all(&mut s, up, 0);
    assert_eq!(targets(&events), ["/"]);
    assert!(matches!(
        events[1],
        StreamEvent::LostSync {
            reason: LostReason::ProtocolSwitch,
            ..
        }
    ));
    let events = push_all(&mut s, H2_PREFACE, 1);
    assert!(matches!(
        events[..],
        [StreamEvent::NotRequest {
            kind: NonHttpKind::Http2,
            ..
        }]
    ));
}

/// Bytes that are not text are binary, captured whole or cut. (That no input makes the parsers
/// panic, and that chunking and capture cuts change nothing they should not, is the
/// `http_stream` fuzz target's job.)
#[test]
fn binary_bytes_are_binary() {
    let noise: Vec<u8> = (0..64 * 1024).map(|i: u32| (i * 7 % 251) as u8).collect();
    assert_eq!(
        classify(&noise),
        Classification::NonHttp(NonHttpKind::Binary)
    );
    assert_eq!(
        classify_capture(&noise[..512], 64 * 1024),
        Classification::NonHttp(NonHttpKind::Binary)
    );
    assert_eq!(parse_status(&noise), None);
    assert_eq!(parse_statuses(&noise), Vec::<u16>::new());
}

#[test]
fn huge_url_with_512_byte_capture_is_oversized() {
    let target = format!("/{}", "x".repeat(16 * 1024));
    let req = format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n");
    let req = req.as_bytes();
    assert_eq!(
        classify_capture(&req[..512], req.len() as u64),
        Classification::NonHttp(NonHttpKind::Oversized)
    );
    assert_eq!(classify(&req[..512]), Classification::Incomplete);
    let mut s = RequestStream::new();
    let events = s.push(&req[..512], ReadMeta::new(req.len() as u64, 4));
    assert_eq!(
        &events[..],
        [StreamEvent::NotRequest {
            kind: NonHttpKind::Oversized,
            offset: 0,
            tag: 4
        }]
    );
    // Still HTTP: the next request resynchronises.
    let events = push_all(&mut s, b"GET /next HTTP/1.1\r\n\r\n", 5);
    assert_eq!(targets(&events), ["/next"]);
    // Fully captured, the same request is parsed with its target cut to the bound.
    let mut s = RequestStream::new();
    let events = push_all(&mut s, req, 6);
    let r = requests(&events)[0];
    assert_eq!(r.target.len(), MAX_TARGET_LEN);
    assert!(r.target_truncated);
    assert_eq!(r.head, HeadState::Complete);
    assert_eq!(r.head_len, req.len() as u64);
}

#[test]
fn head_over_the_limit_is_truncated() {
    let mut s = RequestStream::new();
    let mut events = push_all(&mut s, b"GET /big HTTP/1.1\r\nHost: h\r\n", 0);
    let filler = b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    for _ in 0..(MAX_HEAD_LEN / filler.len() + 2) {
        for b in filler {
            events.extend(push_all(&mut s, std::slice::from_ref(b), 1));
        }
    }
    assert_eq!(targets(&events), ["/big"]);
    let r = requests(&events)[0];
    assert_eq!(r.head, HeadState::Truncated);
    assert_eq!(r.host.as_deref(), Some("h"));
    assert_eq!(r.head_len, MAX_HEAD_LEN as u64);
    assert!(matches!(
        events[1],
        StreamEvent::LostSync {
            reason: LostReason::HeadTooLarge,
            ..
        }
    ));
}

#[test]
fn post_with_body_then_second_request() {
    let data = b"POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nname=GET / HTTP/1.1GET /after HTTP/1.1\r\n\r\n";
    // "name=GET / " is the 11-byte body; it must not be parsed as a request.
    let body_end = data.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4 + 11;
    let data = [&data[..body_end], b"GET /after HTTP/1.1\r\n\r\n".as_slice()].concat();
    let mut s = RequestStream::new();
    let events = push_all(&mut s, &data, 0);
    assert_eq!(targets(&events), ["/form", "/after"]);
    assert_eq!(requests(&events)[0].body, BodyFraming::ContentLength(11));
    assert_eq!(requests(&events)[1].offset, body_end as u64);
}

#[test]
fn body_in_uncaptured_bytes_keeps_sync() {
    let head = b"PUT /blob HTTP/1.1\r\nContent-Length: 100000\r\n\r\n";
    let mut s = RequestStream::new();
    // First read: head plus the start of the body, only 512 bytes captured of 60000.
    let first = [head.as_slice(), &[b'z'; 600]].concat();
    let events = s.push(&first[..512], ReadMeta::new(60_000, 0));
    assert_eq!(targets(&events), ["/blob"]);
    assert_eq!(s.sync_state(), SyncState::Synced);
    // The rest of the body: 100000 - (60000 - head.len()) bytes, again mostly uncaptured.
    let rest = 100_000 - (60_000 - head.len() as u64);
    let events = s.push(&[b'z'; 512], ReadMeta::new(rest, 1));
    assert!(events.is_empty());
    assert_eq!(s.sync_state(), SyncState::Synced);
    // The next request is found at its exact offset, not by resynchronisation.
    let events = push_all(&mut s, b"zGET /x HTTP/1.1\r\n\r\n"[1..].as_ref(), 2);
    let r = requests(&events)[0];
    assert!(!r.resynced);
    assert_eq!(r.offset, head.len() as u64 + 100_000);
}

#[test]
fn body_ending_inside_uncaptured_bytes_loses_sync() {
    let data = b"POST /p HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcdGET /hidden HTTP/1.1\r\n\r\n";
    let mut s = RequestStream::new();
    let events = s.push(&data[..40], ReadMeta::new(data.len() as u64, 0));
    assert_eq!(targets(&events), ["/p"]);
    assert_eq!(
        events[1],
        StreamEvent::LostSync {
            reason: LostReason::UncapturedBoundary,
            offset: 43,
            tag: 0
        }
    );
}

#[test]
fn chunked_body_then_request() {
    let data = b"POST /c HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n\r\n4\r\nGET \r\n3;ext=1\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\nGET /next HTTP/1.1\r\n\r\n";
    let mut s = RequestStream::new();
    let events = push_all(&mut s, data, 0);
    assert_eq!(targets(&events), ["/c", "/next"]);
    assert_eq!(requests(&events)[0].body, BodyFraming::Chunked);
    // Byte by byte gives the same.
    let mut s = RequestStream::new();
    let mut events = Vec::new();
    for b in data {
        events.extend(push_all(&mut s, std::slice::from_ref(b), 0));
    }
    assert_eq!(targets(&events), ["/c", "/next"]);
    // A chunk payload in uncaptured bytes keeps sync.
    let mut s = RequestStream::new();
    let head = b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n";
    let events = s.push(&head[..], ReadMeta::new(head.len() as u64 + 0x1000, 0));
    assert_eq!(targets(&events), ["/c"]);
    let events = push_all(&mut s, b"\r\n0\r\n\r\nGET /n HTTP/1.1\r\n\r\n", 1);
    assert_eq!(targets(&events), ["/n"]);
    assert!(!requests(&events)[0].resynced);
}

#[test]
fn bad_framing_loses_sync() {
    for (head, reason) in [
        (
            "POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n",
            LostReason::UnknownBodyLength,
        ),
        (
            "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            LostReason::UnknownBodyLength,
        ),
        (
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            LostReason::UnknownBodyLength,
        ),
        (
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            LostReason::InvalidChunk,
        ),
        (
            "CONNECT example.com:443 HTTP/1.1\r\n\r\n",
            LostReason::ProtocolSwitch,
        ),
    ] {
        let mut s = RequestStream::new();
        let events = push_all(&mut s, head.as_bytes(), 0);
        assert_eq!(requests(&events).len(), 1, "{head:?}");
        assert!(
            matches!(events[1], StreamEvent::LostSync { reason: r, .. } if r == reason),
            "{head:?}: {events:?}"
        );
    }
    // Repeated identical lengths are fine.
    let mut s = RequestStream::new();
    let events = push_all(
        &mut s,
        b"POST / HTTP/1.1\r\nContent-Length: 2, 2\r\n\r\nok",
        0,
    );
    assert_eq!(requests(&events)[0].body, BodyFraming::ContentLength(2));
    assert_eq!(s.sync_state(), SyncState::Synced);
}

#[test]
fn invalid_header_lines_are_skipped_but_broken_heads_are_invalid() {
    let mut s = RequestStream::new();
    let events = push_all(
        &mut s,
        b"GET / HTTP/1.1\r\nBad Header: x\r\nHost: ok\r\n\r\n",
        0,
    );
    let r = requests(&events)[0];
    assert_eq!(
        (r.head, r.host.as_deref()),
        (HeadState::Complete, Some("ok"))
    );

    let mut s = RequestStream::new();
    let events = push_all(&mut s, b"GET / HTTP/1.1\r\nHost: h\r\n\rX", 0);
    let r = requests(&events)[0];
    assert_eq!((r.head, r.host.as_deref()), (HeadState::Invalid, Some("h")));
    assert!(matches!(
        events[1],
        StreamEvent::LostSync {
            reason: LostReason::InvalidHead,
            ..
        }
    ));
}

/// Found by the `http_stream` fuzz target: a `Host` of invalid UTF-8 decoded to three bytes per
/// byte, past [`MAX_HOST_LEN`].
#[test]
fn non_utf8_host_stays_within_its_bound() {
    for head in [
        // Parsed by httparse, and (an invalid header section) by the fallback line scan.
        [
            b"GET / HTTP/1.1\r\nHost: ".as_slice(),
            &[0xff; 300],
            b"\r\n\r\n",
        ]
        .concat(),
        [
            b"GET / HTTP/1.1\r\nHost: ".as_slice(),
            &[0xff; 300],
            b"\r\n\x00\r\n\r\n",
        ]
        .concat(),
    ] {
        let mut s = RequestStream::new();
        let events = push_all(&mut s, &head, 0);
        let host = requests(&events)[0].host.clone().unwrap();
        assert!(host.len() <= MAX_HOST_LEN, "{} bytes", host.len());
        assert!(host.starts_with('\u{fffd}'));
    }
}

#[test]
fn non_utf8_target_is_kept_raw() {
    let mut s = RequestStream::new();
    let events = push_all(
        &mut s,
        b"GET /caf\xe9 HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx",
        0,
    );
    let r = requests(&events)[0];
    assert_eq!(r.target, b"/caf\xe9");
    assert_eq!(r.target_lossy(), "/caf\u{FFFD}");
    assert_eq!(
        (r.head, r.body),
        (HeadState::Complete, BodyFraming::ContentLength(1))
    );
    assert_eq!(s.sync_state(), SyncState::Synced);
}

#[test]
fn text_that_is_not_http() {
    assert_eq!(
        classify(b"hello there\r\n"),
        Classification::NonHttp(NonHttpKind::Malformed)
    );
    assert_eq!(
        classify(b"GET /a HTTP/2.0\r\n"),
        Classification::NonHttp(NonHttpKind::Malformed)
    );
    assert_eq!(
        classify(b"GET  / HTTP/1.1\r\n"),
        Classification::NonHttp(NonHttpKind::Malformed)
    );
    assert_eq!(
        classify(b"GET /\x00 HTTP/1.1"),
        Classification::NonHttp(NonHttpKind::Binary)
    );
    assert_eq!(
        classify("ÄÖÜ wer".as_bytes()),
        Classification::NonHttp(NonHttpKind::Malformed)
    );
    assert_eq!(classify(b""), Classification::Incomplete);
    assert_eq!(classify(b"\r\n"), Classification::Incomplete);
    assert_eq!(classify_capture(b"\r\n", 100), Classification::Incomplete);
    assert_eq!(
        classify(b"OPTIONS * HTTP/1.1"),
        Classification::Request {
            head_complete: false
        }
    );
    let long_method = [
        b"A".repeat(MAX_METHOD_LEN + 1),
        b" / HTTP/1.1\r\n\r\n".to_vec(),
    ]
    .concat();
    assert_eq!(
        classify(&long_method),
        Classification::NonHttp(NonHttpKind::Malformed)
    );

    let mut s = RequestStream::new();
    let events = push_all(&mut s, b"PING\r\n", 0);
    assert!(matches!(
        events[..],
        [StreamEvent::NotRequest {
            kind: NonHttpKind::Malformed,
            ..
        }]
    ));
    assert_eq!(s.sync_state(), SyncState::NotHttp(NonHttpKind::Malformed));

    // After a request, garbage spoils only the current position.
    let mut s = RequestStream::new();
    let events = push_all(&mut s, b"GET / HTTP/1.1\r\n\r\nnonsense here\r\n", 0);
    assert!(matches!(
        events[1],
        StreamEvent::NotRequest {
            kind: NonHttpKind::Malformed,
            offset: 18,
            ..
        }
    ));
    assert_eq!(s.sync_state(), SyncState::Lost);
}

#[test]
fn mid_stream_resyncs_on_a_plausible_request_line() {
    let mut s = RequestStream::mid_stream();
    assert_eq!(s.sync_state(), SyncState::Lost);
    // Body bytes of a request already in flight, even text ones, are skipped.
    assert!(push_all(&mut s, b"{\"a\": 1}", 0).is_empty());
    assert!(push_all(&mut s, b"lowercase /x HTTP/1.1\r\n\r\n", 1).is_empty());
    assert!(push_all(&mut s, b"GET /x", 2).is_empty());
    let events = push_all(&mut s, b"GET /y HTTP/1.1\r\n\r\n", 3);
    let r = requests(&events)[0];
    assert!(r.resynced);
    assert_eq!(r.offset, 8 + 25 + 6);
    // Synchronised again: the following request is exact.
    let events = push_all(&mut s, b"GET /z HTTP/1.1\r\n\r\n", 4);
    assert!(!requests(&events)[0].resynced);
}

#[test]
fn status_lines() {
    assert_eq!(
        parse_status(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        Some(Status {
            version: 1,
            code: 200
        })
    );
    assert_eq!(
        parse_status(b"HTTP/1.0 404 Not Found\r\n"),
        Some(Status {
            version: 0,
            code: 404
        })
    );
    // Cut inside the reason phrase or right after the code: the code is known.
    assert_eq!(
        parse_status(b"HTTP/1.1 503 Serv").map(|s| s.code),
        Some(503)
    );
    assert_eq!(parse_status(b"HTTP/1.1 204").map(|s| s.code), Some(204));
    assert_eq!(
        parse_status(b"HTTP/1.1 204\r\n\r\n").map(|s| s.code),
        Some(204)
    );
    // Broken headers after a good status line do not hide the code.
    assert_eq!(
        parse_status(b"HTTP/1.1 200 OK\r\n\x01\x02: y\r\n").map(|s| s.code),
        Some(200)
    );
    for garbage in [
        b"HTTP/1.1 20".as_slice(),
        b"HTTP/1.1 2000 OK\r\n",
        b"HTTP/2 200\r\n",
        b"HTTP/1.1 abc\r\n",
        b"<html>",
        b"",
        b"\x16\x03\x01",
    ] {
        assert_eq!(parse_status(garbage), None, "{garbage:?}");
    }
}

#[test]
fn pipelined_statuses() {
    let data = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHTTP/HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 500 Oops\r\nConnection: close\r\n\r\nbody until close HTTP/1.1 201 Created\r\n";
    assert_eq!(parse_statuses(data), [200, 404, 100, 500]);
    // A body running past the capture stops the walk.
    assert_eq!(
        parse_statuses(b"HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\nabc"),
        [200]
    );
    // Responses to HEAD: Content-Length without a body.
    assert_eq!(
            parse_statuses(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nHTTP/1.1 304 Not Modified\r\n\r\nHTTP/1.1 302 Found\r\nLoc"),
            [200, 304, 302]
        );
    assert_eq!(
        parse_statuses(b"HTTP/1.1 101 Switching Protocols\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"),
        [101]
    );
    assert_eq!(parse_statuses(b"nope"), Vec::<u16>::new());
    assert_eq!(skip_chunked(b"3\r\nabc\r\n0\r\n\r\nrest"), Some(13));
    assert_eq!(skip_chunked(b"3\r\nabcd"), None);
}

#[test]
fn names_are_stable() {
    let kinds = [
        NonHttpKind::Tls,
        NonHttpKind::Http2,
        NonHttpKind::Binary,
        NonHttpKind::Oversized,
        NonHttpKind::Malformed,
    ];
    let names: Vec<String> = kinds.iter().map(ToString::to_string).collect();
    assert_eq!(names, ["tls", "http2", "binary", "oversized", "malformed"]);
    for k in kinds {
        assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{k}\""));
    }
    assert_eq!(
        serde_json::to_string(&LostReason::UncapturedBoundary).unwrap(),
        format!("\"{}\"", LostReason::UncapturedBoundary)
    );
}

/// The kernel side reads a response's status itself when it folds the response's start
/// (`memwatch_common::net::status_code`, on the first 13 bytes). Wherever it reads a code, user
/// space's parser reads the same one from the same bytes, cut there or followed by a reason
/// phrase and the line's end.
#[test]
fn the_kernel_sides_status_reading_agrees_with_user_space() {
    use memwatch_common::net::{STATUS_LINE_HEAD, status_code};
    let bytes = b"HTP/1.0 2345\r\n\tx09";
    let mut read = 0;
    let mut heads: Vec<[u8; STATUS_LINE_HEAD]> = Vec::new();
    for code in [
        b"200", b"404", b"101", b"599", b"099", b"600", b"2x0", b"000",
    ] {
        for version in [b"1.1", b"1.0", b"2.0", b"1.2", b"1,1"] {
            for after in *bytes {
                let mut head = *b"HTTP/1.1 200 ";
                head[5..8].copy_from_slice(version);
                head[9..12].copy_from_slice(code);
                head[12] = after;
                heads.push(head);
            }
        }
    }
    // Every single-byte change of a good line.
    for at in 0..STATUS_LINE_HEAD {
        for b in *bytes {
            let mut head = *b"HTTP/1.1 200 ";
            head[at] = b;
            heads.push(head);
        }
    }
    for head in heads {
        let Some(code) = status_code(&head) else {
            continue;
        };
        read += 1;
        for tail in [b"".as_slice(), b"OK\r\n", b"\r\n", b"\n"] {
            let whole = [head.as_slice(), tail].concat();
            assert_eq!(
                parse_status(&whole).map(|s| u32::from(s.code)),
                Some(code),
                "{:?}",
                String::from_utf8_lossy(&whole)
            );
        }
    }
    assert_eq!(read, 41);
    // A status line without a reason phrase is left to user space.
    assert_eq!(status_code(b"HTTP/1.1 204\r"), None);
    assert_eq!(status_code(b"HTTP/2.0 200 "), None);
    assert_eq!(status_code(b"HTTP/1.1 200O"), None);
}
