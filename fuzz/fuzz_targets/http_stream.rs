//! The HTTP/1.x stream parser over arbitrary chunking of reads and writes.
//!
//! The input is a small script followed by the bytes of a connection (see [`Script::parse`]):
//! how the request bytes are cut into reads, how much of each read the probe captured, and the
//! response bytes, cut into writes. Checked, besides never panicking:
//!
//! - Fully captured reads: the same requests (and the same first loss of sync) come out whether
//!   the bytes arrive in one read or in any chunking, and each request carries the tag of the read
//!   that held its first byte.
//! - Reads whose tail was not captured: bytes seen are the real bytes; offsets only grow; targets,
//!   methods and hosts stay within their bounds; a request found before the stream first lost
//!   sync is one the fully captured stream finds at the same offset.
//! - Responses: the status read from a response's first write is the same wherever that write
//!   was cut, once the status code is in it.
//! - The correlator, driven with those reads and writes as probe events, charges each response's
//!   status to the request it answers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memwatch::{
    capture::probe::NetRecord,
    correlate::{
        Correlator,
        http::{
            MAX_HOST_LEN, MAX_METHOD_LEN, MAX_TARGET_LEN, NonHttpKind,
            response::parse_status,
            stream::{HeadState, ParsedRequest, ReadMeta, RequestStream, StreamEvent},
        },
        route::Router,
    },
    model::Row,
};
use memwatch_common::{
    EventHeader,
    net::{NetMeta, NetOp, SMALL_CAPTURE},
};

/// How the input's bytes are fed.
struct Script<'a> {
    /// Start with [`RequestStream::mid_stream`] instead of [`RequestStream::new`].
    mid_stream: bool,
    /// Read lengths, cycled (empty: one read of everything).
    chunks: Vec<usize>,
    /// Captured prefix of each read, cycled (empty: everything captured).
    caps: Vec<usize>,
    request: &'a [u8],
    response: &'a [u8],
}

impl<'a> Script<'a> {
    /// `[flags] [n] [n read lengths] [m] [m capture lengths] [request length, u16 LE] [request]
    /// [response]`. A read length byte `b` is `b + 1` bytes; a capture byte is that many bytes
    /// (0: nothing captured). Missing fields take their defaults.
    fn parse(data: &'a [u8]) -> Self {
        let mut rest = data;
        let mut byte = || {
            let (&b, tail) = rest.split_first()?;
            rest = tail;
            Some(b)
        };
        let flags = byte().unwrap_or(0);
        let n = usize::from(byte().unwrap_or(0) % 17);
        let chunks: Vec<usize> = (0..n)
            .filter_map(|_| byte().map(|b| usize::from(b) + 1))
            .collect();
        let m = usize::from(byte().unwrap_or(0) % 17);
        let caps: Vec<usize> = (0..m).filter_map(|_| byte().map(usize::from)).collect();
        let lo = byte().unwrap_or(0xff);
        let hi = byte().unwrap_or(0xff);
        let split = usize::from(u16::from_le_bytes([lo, hi])).min(rest.len());
        let (request, response) = rest.split_at(split);
        Self {
            mid_stream: flags & 1 != 0,
            chunks,
            caps,
            request,
            response,
        }
    }

    /// `bytes` cut into pieces of the script's chunk lengths, taken in turn (the rest in one
    /// piece when there are none).
    fn cut(&self, mut rest: &'a [u8]) -> Vec<&'a [u8]> {
        let mut out = Vec::new();
        let mut i = 0usize;
        while !rest.is_empty() {
            let len = nth_or_all(&self.chunks, i, rest.len());
            let (piece, tail) = rest.split_at(len);
            out.push(piece);
            rest = tail;
            i += 1;
        }
        out
    }

    /// The request bytes cut into reads: `(read, captured length)`.
    fn reads(&self) -> Vec<(&'a [u8], usize)> {
        self.cut(self.request)
            .into_iter()
            .enumerate()
            .map(|(i, read)| (read, nth_or_all(&self.caps, i, read.len())))
            .collect()
    }

    /// The response bytes cut into writes, with the same lengths as the reads.
    fn writes(&self) -> Vec<&'a [u8]> {
        self.cut(self.response)
    }

    fn stream(&self) -> RequestStream<usize> {
        if self.mid_stream {
            RequestStream::mid_stream()
        } else {
            RequestStream::new()
        }
    }
}

/// The `i`-th of `lengths`, taken in turn, at most `whole`; `whole` when there are none.
fn nth_or_all(lengths: &[usize], i: usize, whole: usize) -> usize {
    lengths
        .get(i % lengths.len().max(1))
        .copied()
        .unwrap_or(whole)
        .min(whole)
}

/// What a stream event says, without the tag and the non-HTTP kind (the kind is read from the
/// bytes at hand when the scanner gives up, so it may legitimately depend on the chunking).
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Request(ParsedRequest<()>),
    NotRequest { offset: u64 },
    Lost { offset: u64, reason: String },
}

fn seen(event: &StreamEvent<usize>) -> Seen {
    match event {
        StreamEvent::Request(r) => Seen::Request(untagged(r)),
        StreamEvent::NotRequest { offset, .. } => Seen::NotRequest { offset: *offset },
        StreamEvent::LostSync { reason, offset, .. } => Seen::Lost {
            offset: *offset,
            reason: reason.to_string(),
        },
    }
}

fn untagged(r: &ParsedRequest<usize>) -> ParsedRequest<()> {
    ParsedRequest {
        method: r.method.clone(),
        target: r.target.clone(),
        target_truncated: r.target_truncated,
        version: r.version,
        host: r.host.clone(),
        head_len: r.head_len,
        head: r.head,
        body: r.body,
        offset: r.offset,
        resynced: r.resynced,
        tag: (),
    }
}

/// The events up to and including the first that is not a request: after it the stream is lost,
/// and where it resynchronises depends on where reads start, by design.
fn until_lost(events: &[StreamEvent<usize>]) -> Vec<Seen> {
    let mut out = Vec::new();
    for e in events {
        out.push(seen(e));
        if !matches!(e, StreamEvent::Request(_)) {
            break;
        }
    }
    out
}

/// Pushes the reads (captured prefix, real length, tagged with their index) and checks the
/// invariants that hold for any input.
fn push_reads(
    mut stream: RequestStream<usize>,
    reads: &[(&[u8], usize)],
) -> Vec<StreamEvent<usize>> {
    let mut events = Vec::new();
    let mut real = 0u64;
    for (i, &(read, cap)) in reads.iter().enumerate() {
        real += read.len() as u64;
        events.extend(stream.push(&read[..cap], ReadMeta::new(read.len() as u64, i)));
        assert_eq!(stream.bytes_seen(), real, "bytes seen are the real bytes");
    }
    let mut last: Option<u64> = None;
    let mut requests = 0u64;
    for e in &events {
        if let StreamEvent::Request(r) = e {
            requests += 1;
            assert!(last.is_none_or(|l| r.offset > l), "offsets only grow");
            last = Some(r.offset);
            assert!(r.target.len() <= MAX_TARGET_LEN);
            assert!(r.method.len() <= MAX_METHOD_LEN);
            assert!(r.host.as_ref().is_none_or(|h| h.len() <= MAX_HOST_LEN));
            assert!(
                r.offset + r.head_len <= real,
                "a head lies in the bytes pushed"
            );
            assert!(r.tag < reads.len());
        }
    }
    assert_eq!(stream.requests_seen(), requests);
    events
}

/// Index of the read holding stream offset `offset`.
fn read_at(reads: &[(&[u8], usize)], offset: u64) -> usize {
    let mut start = 0u64;
    for (i, (read, _)) in reads.iter().enumerate() {
        let end = start + read.len() as u64;
        if offset < end {
            return i;
        }
        start = end;
    }
    reads.len()
}

fn check_requests(script: &Script<'_>) {
    let reads = script.reads();
    let full: Vec<(&[u8], usize)> = reads.iter().map(|&(r, _)| (r, r.len())).collect();
    let chunked = push_reads(script.stream(), &full);
    for e in &chunked {
        if let StreamEvent::Request(r) = e {
            assert_eq!(
                r.tag,
                read_at(&full, r.offset),
                "tag of the first byte's read"
            );
        }
    }
    if !script.mid_stream && !script.request.is_empty() {
        // From the connection's first byte, the reads' boundaries change nothing.
        let whole = push_reads(script.stream(), &[(script.request, script.request.len())]);
        assert_eq!(
            until_lost(&whole),
            until_lost(&chunked),
            "same requests in any chunking"
        );
    }

    // Uncaptured tails: a request found before the stream first lost sync is exactly one of the
    // full stream's. (After a loss, a resynchronisation is a heuristic, and so is everything the
    // stream finds from there on.)
    let cut = push_reads(script.stream(), &reads);
    let before_loss = if script.mid_stream {
        0
    } else {
        cut.iter()
            .position(|e| !matches!(e, StreamEvent::Request(_)))
            .unwrap_or(cut.len())
    };
    let found: Vec<ParsedRequest<()>> = chunked
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Request(r) => Some(untagged(r)),
            _ => None,
        })
        .collect();
    for e in &cut[..before_loss] {
        if let StreamEvent::Request(r) = e
            && r.head == HeadState::Complete
        {
            assert!(
                found.iter().any(|f| f.offset == r.offset
                    && f.method == r.method
                    && f.target == r.target
                    && f.host == r.host),
                "a request found with uncaptured bytes is one of the fully captured stream's: \
                 {r:?}, full stream {found:?}"
            );
        }
    }
}

fn check_statuses(script: &Script<'_>) {
    let response = script.response;
    let Some(status) = parse_status(response) else {
        return;
    };
    // The first write may end anywhere: before the code is complete there is no status, from
    // then on it is the whole response's.
    let known = (0..=response.len().min(1024))
        .find(|&cut| parse_status(&response[..cut]).is_some())
        .unwrap_or(response.len());
    let first_write = script.writes().first().map_or(0, |w| w.len());
    for cut in (known..response.len().min(known + 80)).chain([first_write.max(known)]) {
        assert_eq!(
            parse_status(&response[..cut]),
            Some(status),
            "the status does not depend on where the first write ends ({cut} bytes)"
        );
    }
}

fn event(op: NetOp, ts: u64, data: &[u8], real: usize) -> NetRecord<'_> {
    NetRecord {
        meta: NetMeta {
            header: EventHeader {
                tgid: 100,
                tid: 101,
                ts_ns: ts,
                ..EventHeader::default()
            },
            op: op as u32,
            fd: 5,
            generation: 1,
            bytes: real as u64,
            captured: u32::try_from(data.len()).unwrap_or(u32::MAX),
            ..NetMeta::default()
        },
        op,
        data,
    }
}

fn check_correlator(script: &Script<'_>) {
    let Ok(router) = Router::new(Vec::<String>::new()) else {
        return;
    };
    let mut c = Correlator::new(router, false, 4096);
    let mut rows = Vec::new();
    let mut ts = 1u64;
    if !script.mid_stream {
        c.net(&event(NetOp::Accept, ts, b"", 0), 0, &mut rows);
    }
    for (i, &(read, cap)) in script.reads().iter().enumerate() {
        ts += 1;
        let op = if i == 0 {
            NetOp::ReadStart
        } else {
            NetOp::ReadMore
        };
        c.net(&event(op, ts, &read[..cap], read.len()), 0, &mut rows);
    }
    // The probe sends a response's first write, and every later write that starts with `HTTP/`,
    // with at most SMALL_CAPTURE bytes.
    let mut starts = Vec::new();
    for (i, write) in script.writes().into_iter().enumerate() {
        if i == 0 || write.starts_with(b"HTTP/") {
            ts += 1;
            let captured = &write[..write.len().min(SMALL_CAPTURE)];
            c.net(
                &event(NetOp::WriteStart, ts, captured, write.len()),
                0,
                &mut rows,
            );
            starts.push(parse_status(captured).map(|s| s.code));
        }
    }
    ts += 1;
    c.net(&event(NetOp::Close, ts, b"", 0), 0, &mut rows);
    c.finish_all(&mut rows);
    let mut requests: Vec<_> = rows
        .iter()
        .filter_map(|r| match r {
            Row::Request(r) => Some((r.id, r.status)),
            _ => None,
        })
        .collect();
    requests.sort_unstable();
    assert_eq!(c.requests(), requests.len() as u64);
    // A connection found not to be HTTP/1.x (TLS, HTTP/2, binary) is ignored from then on, its
    // responses too.
    let ignored = rows.iter().any(|r| {
        matches!(r, Row::NonHttp { kind, .. }
            if [NonHttpKind::Tls, NonHttpKind::Http2, NonHttpKind::Binary]
                .iter()
                .any(|k| k.as_str() == *kind))
    });
    if ignored {
        return;
    }
    for (i, (_, status)) in requests.iter().enumerate() {
        assert_eq!(
            *status,
            starts.get(i).copied().flatten(),
            "request {i} answered by write {i}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let script = Script::parse(data);
    check_requests(&script);
    check_statuses(&script);
    check_correlator(&script);
});
