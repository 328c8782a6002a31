//! The per-connection incremental request parser.

use std::{borrow::Cow, fmt};

use serde::{Deserialize, Serialize};

use super::{
    MAX_CHUNK_LINE, MAX_HEAD_LEN, MAX_HEADERS, NonHttpKind,
    head::{
        HeadScan, LinePhase, RequestLine, ScanResult, clamp_to_usize, find_host_lines,
        parse_header_section,
    },
    sniff::{garbage_kind, is_h2_preface, is_tls_record_header},
};

/// Per-read information passed to [`RequestStream::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ReadMeta<T = ()> {
    /// Bytes the syscall really moved. Values below the captured length are treated as the
    /// captured length.
    pub real_len: u64,
    /// Caller's identity for this read (for example timestamp and thread id); copied into the
    /// events it causes.
    pub tag: T,
}

impl<T> ReadMeta<T> {
    /// Metadata for a read that moved `real_len` bytes.
    pub const fn new(real_len: u64, tag: T) -> Self {
        Self { real_len, tag }
    }
}

/// How much of a request head was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeadState {
    /// The whole head was captured and httparse accepted its header section.
    Complete,
    /// The request line was captured but the rest of the head was not (capture cut or head over
    /// [`MAX_HEAD_LEN`]). `host` is filled only if its header line was captured whole.
    Truncated,
    /// The whole head was captured but its header section is not valid HTTP (or has more than
    /// [`MAX_HEADERS`] lines). A server answers such a head with 4xx and usually closes.
    Invalid,
}

/// How the body of a request is delimited (RFC 9112 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyFraming {
    /// No `Content-Length` or `Transfer-Encoding`: the request has no body.
    None,
    /// `Content-Length: n` (one value, or repeated identical values).
    ContentLength(u64),
    /// `Transfer-Encoding` whose final coding is `chunked`.
    Chunked,
    /// Not known: the head was truncated or invalid, `Content-Length` values were invalid or
    /// conflicting, or `Transfer-Encoding` did not end in `chunked`.
    Unknown,
}

/// One request found by [`RequestStream`].
#[derive(Clone, PartialEq, Eq)]
pub struct ParsedRequest<T = ()> {
    /// Method token as sent (case preserved), at most [`MAX_METHOD_LEN`] bytes.
    pub method: String,
    /// Raw request target, not decoded, at most [`MAX_TARGET_LEN`] bytes.
    pub target: Vec<u8>,
    /// The target was longer than [`MAX_TARGET_LEN`] and was cut.
    pub target_truncated: bool,
    /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    /// First `Host` header value, trimmed, lossily decoded, at most [`MAX_HOST_LEN`] bytes.
    pub host: Option<String>,
    /// Head length in bytes from the first method byte through the blank line. Exact for
    /// [`HeadState::Complete`] and [`HeadState::Invalid`]; for [`HeadState::Truncated`] the number
    /// of head bytes seen (a lower bound).
    pub head_len: u64,
    /// How much of the head was seen.
    pub head: HeadState,
    /// How the body is delimited.
    pub body: BodyFraming,
    /// Offset of the first method byte in the connection's byte stream as pushed (counting
    /// uncaptured bytes, from the first push). Exact while the stream is synchronised.
    pub offset: u64,
    /// The request was found by resynchronisation after the stream lost track of request
    /// boundaries (see [`RequestStream`]); it is a heuristic match, not a proven boundary.
    pub resynced: bool,
    /// Tag of the read in which the request line started.
    pub tag: T,
}

impl<T> ParsedRequest<T> {
    /// The target as text, with invalid UTF-8 replaced.
    pub fn target_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.target)
    }
}

impl<T: fmt::Debug> fmt::Debug for ParsedRequest<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedRequest")
            .field("method", &self.method)
            .field("target", &self.target_lossy())
            .field("target_truncated", &self.target_truncated)
            .field("version", &format_args!("HTTP/1.{}", self.version))
            .field("host", &self.host)
            .field("head_len", &self.head_len)
            .field("head", &self.head)
            .field("body", &self.body)
            .field("offset", &self.offset)
            .field("resynced", &self.resynced)
            .field("tag", &self.tag)
            .finish()
    }
}

/// Why a [`RequestStream`] stopped knowing where the next request starts.
///
/// Stable snake_case serde names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LostReason {
    /// A request head continued into uncaptured bytes; its request line was known and it was
    /// reported as [`HeadState::Truncated`].
    UncapturedHead,
    /// The next request (or the end of a body) lies in uncaptured bytes.
    UncapturedBoundary,
    /// A chunk-size line or chunk terminator of a chunked body lies in uncaptured bytes.
    UncapturedChunkFraming,
    /// A head grew past [`MAX_HEAD_LEN`] with its request line known.
    HeadTooLarge,
    /// A complete head whose header section was rejected ([`HeadState::Invalid`]).
    InvalidHead,
    /// The body length is not knowable (bad `Content-Length`, non-chunked `Transfer-Encoding`).
    UnknownBodyLength,
    /// A chunked body did not follow the chunked syntax.
    InvalidChunk,
    /// `CONNECT` or an `Upgrade` request: the bytes after it may be another protocol.
    ProtocolSwitch,
}

impl LostReason {
    /// The stable snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::UncapturedHead => "uncaptured_head",
            Self::UncapturedBoundary => "uncaptured_boundary",
            Self::UncapturedChunkFraming => "uncaptured_chunk_framing",
            Self::HeadTooLarge => "head_too_large",
            Self::InvalidHead => "invalid_head",
            Self::UnknownBodyLength => "unknown_body_length",
            Self::InvalidChunk => "invalid_chunk",
            Self::ProtocolSwitch => "protocol_switch",
        }
    }
}

impl fmt::Display for LostReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one [`RequestStream::push`] found, in stream order.
///
/// Every transition from synchronised to lost (or not-HTTP) is announced by exactly one
/// [`StreamEvent::NotRequest`] or [`StreamEvent::LostSync`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent<T = ()> {
    /// A request whose request line was seen.
    Request(ParsedRequest<T>),
    /// Bytes where a request should start are not one. `Tls` and `Http2` (and `Binary` or
    /// `Malformed` before any request on a stream made with [`RequestStream::new`]) make the
    /// stream permanently not-HTTP; otherwise it is lost until resynchronised.
    NotRequest {
        /// What the bytes are.
        kind: NonHttpKind,
        /// Stream offset where the request should have started.
        offset: u64,
        /// Tag of the read in which those bytes started.
        tag: T,
    },
    /// The stream no longer knows where the next request starts. Requests until
    /// resynchronisation are not seen (and not counted: how many there were is unknowable).
    LostSync {
        /// Why.
        reason: LostReason,
        /// Stream offset of the first byte whose role is unknown.
        offset: u64,
        /// Tag of the read that caused it.
        tag: T,
    },
}

/// Synchronisation state of a [`RequestStream`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncState {
    /// The parser knows where the next byte belongs (a head, a body, a chunk).
    Synced,
    /// Request boundaries are unknown until a read starts with a plausible request line.
    Lost,
    /// The connection is not HTTP/1.x; everything pushed is ignored.
    NotHttp(NonHttpKind),
}

/// What one push found: one request most of the time, held inline (a push is made for every
/// read that starts a request, at the target's rate).
pub type StreamEvents<T> = smallvec::SmallVec<[StreamEvent<T>; 1]>;

/// Incremental HTTP/1.x request parser for one connection's read side.
///
/// Push every read of the connection, in order, with [`push`](Self::push): the captured bytes and
/// the real length the syscall returned. Heads split across reads in any way (down to one byte per
/// read) are reassembled; several pipelined requests in one read all come out, in order.
///
/// # What is exact
///
/// While [synchronised](SyncState::Synced) the parser tracks the byte stream exactly: it reads
/// each head to its blank line and then skips the body by its framing, `Content-Length` or
/// `chunked`, so the next head is found where it really starts. Uncaptured bytes (the part of a
/// read beyond the capture prefix) are counted, not guessed: when they fall entirely inside a body
/// or chunk payload of known length, the parser stays synchronised across them, because it knows
/// how many body bytes remain. Every request whose request line lies in captured bytes while
/// synchronised is reported, with [`ParsedRequest::offset`] its exact stream position.
///
/// # What is not
///
/// * A head cut by the capture: when its request line was captured, the request is reported as
///   [`HeadState::Truncated`] with what is known; otherwise as [`NonHttpKind::Oversized`]. Either
///   way the parser is then lost (the end of the head is unseen).
/// * A boundary inside uncaptured bytes (a body that ends in the uncaptured rest of a read, a
///   pipelined request that starts there): lost ([`LostReason::UncapturedBoundary`]). The requests
///   in that stretch are invisible and are not counted.
/// * Bodies whose length is unknowable, `CONNECT` and `Upgrade`: lost (see [`LostReason`]).
///
/// When lost, the parser resynchronises heuristically: a later read whose captured bytes begin
/// (after optional empty lines) with a complete request line whose method is upper-case letters,
/// `-` or `_` is taken as a new request ([`ParsedRequest::resynced`]). Server reads normally start
/// at request boundaries on keep-alive connections, so this catches the next request after a
/// response; a read that starts with only part of a request line does not resynchronise.
///
/// # Connection start
///
/// [`new`](Self::new) is for streams seen from their first byte: TLS, the HTTP/2 preface, binary
/// or malformed bytes before the first request make the stream permanently not-HTTP.
/// [`mid_stream`](Self::mid_stream) is for connections already open when tracing started: the
/// parser starts lost, and only a read that starts with a TLS record header (before any request)
/// or with the HTTP/2 preface makes it not-HTTP.
///
/// Memory: at most one partial head ([`MAX_HEAD_LEN`]) or chunk line is buffered between pushes.
#[derive(Clone)]
pub struct RequestStream<T = ()> {
    state: State,
    /// Captured bytes not yet consumed: a partial head or chunk-size line between pushes.
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    buf_offset: u64,
    /// Real bytes pushed so far.
    total: u64,
    /// Scanner for the head that starts at `buf[0]` (between pushes) while in `State::Head`.
    scan: HeadScan,
    /// Tag of the read in which the current head's request line started.
    head_tag: Option<T>,
    /// The current head was found by resynchronisation.
    resynced: bool,
    /// The current message switches protocol once its body ends.
    switch_after_body: bool,
    requests: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Body { remaining: u64 },
    ChunkSize { scanned: usize },
    ChunkData { remaining: u64 },
    ChunkDataEnd { seen_cr: bool },
    Trailers { phase: LinePhase, seen: usize },
    Lost,
    NotHttp(NonHttpKind),
}

impl<T> fmt::Debug for RequestStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestStream")
            .field("state", &self.state)
            .field("buffered", &self.buf.len())
            .field("buf_offset", &self.buf_offset)
            .field("bytes_seen", &self.total)
            .field("requests", &self.requests)
            .field("resynced", &self.resynced)
            .field("switch_after_body", &self.switch_after_body)
            .finish_non_exhaustive()
    }
}

impl<T: Clone> Default for RequestStream<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Clone> RequestStream<T> {
    /// A parser for a connection seen from its first byte.
    pub fn new() -> Self {
        Self {
            state: State::Head,
            buf: Vec::new(),
            buf_offset: 0,
            total: 0,
            scan: HeadScan::new(),
            head_tag: None,
            resynced: false,
            switch_after_body: false,
            requests: 0,
        }
    }

    /// Back to [`new`](Self::new)'s state, keeping the buffer's room: a keep-alive connection
    /// starts a parser per request, and would otherwise allocate the buffer for each.
    pub fn restart(&mut self) {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        *self = Self::new();
        self.buf = buf;
    }

    /// A parser for a connection that was already open: it starts lost and resynchronises on the
    /// first read that begins with a request line.
    pub fn mid_stream() -> Self {
        Self {
            state: State::Lost,
            ..Self::new()
        }
    }

    /// Whether the parser knows where the next request starts.
    #[cfg(test)]
    pub(super) fn sync_state(&self) -> SyncState {
        match self.state {
            State::Lost => SyncState::Lost,
            State::NotHttp(kind) => SyncState::NotHttp(kind),
            _ => SyncState::Synced,
        }
    }

    /// Whether the bytes buffered are the start of a head still incomplete.
    pub fn partial_head(&self) -> bool {
        self.state == State::Head && !self.buf.is_empty()
    }

    /// Requests reported so far.
    pub fn requests_seen(&self) -> u64 {
        self.requests
    }

    /// Real bytes pushed so far (captured or not).
    pub fn bytes_seen(&self) -> u64 {
        self.total
    }

    /// Feeds one read: `captured` is the copied prefix, `meta.real_len` what the read returned.
    pub fn push(&mut self, captured: &[u8], meta: ReadMeta<T>) -> StreamEvents<T> {
        let mut out = StreamEvents::new();
        let captured_len = captured.len() as u64;
        let ReadMeta { real_len, tag } = meta;
        let gap = real_len.saturating_sub(captured_len);
        let push_start = self.total;
        self.total = self.total.saturating_add(captured_len).saturating_add(gap);

        match self.state {
            State::NotHttp(_) => return out,
            State::Lost => {
                self.buf.clear();
                self.buf_offset = push_start;
                if !self.try_resync(captured, &tag, &mut out) {
                    self.buf_offset = self.total;
                    return out;
                }
            }
            _ => {}
        }

        self.buf.extend_from_slice(captured);
        let mut cur = 0usize;
        while self.step(&mut cur, &tag, &mut out) {}
        if gap > 0 {
            self.apply_gap(gap, cur, &tag, &mut out);
        }
        match self.state {
            State::Lost | State::NotHttp(_) => self.buf.clear(),
            _ => {
                self.buf.drain(..cur.min(self.buf.len()));
            }
        }
        self.buf_offset = self.total.saturating_sub(self.buf.len() as u64);
        out
    }

    /// Processes captured bytes from `buf[*cur..]`; returns whether to call again.
    fn step(&mut self, cur: &mut usize, tag: &T, out: &mut StreamEvents<T>) -> bool {
        let avail = self.buf.len().saturating_sub(*cur);
        match self.state {
            State::Lost | State::NotHttp(_) => false,
            State::Head => {
                if avail == 0 {
                    return false;
                }
                let head = self.buf.get(*cur..).unwrap_or_default();
                let result = self.scan.advance(head);
                if self.head_tag.is_none() && self.scan.started() {
                    self.head_tag = Some(tag.clone());
                }
                match result {
                    ScanResult::HeadEnd(end) => {
                        self.finish_head(*cur, end, tag, out);
                        *cur += end;
                        true
                    }
                    ScanResult::Invalid => {
                        let kind = garbage_kind(head.get(self.scan.line_start..).unwrap_or(head));
                        let offset = self.offset_of(*cur + self.scan.line_start);
                        let tag = self.take_head_tag(tag);
                        out.push(StreamEvent::NotRequest { kind, offset, tag });
                        self.state = if matches!(kind, NonHttpKind::Tls | NonHttpKind::Http2)
                            || self.requests == 0
                        {
                            State::NotHttp(kind)
                        } else {
                            State::Lost
                        };
                        false
                    }
                    ScanResult::NeedMore => {
                        if self.scan.too_large() {
                            self.head_cut(*cur, LostReason::HeadTooLarge, tag, out);
                        }
                        false
                    }
                }
            }
            State::Body { remaining } => {
                if avail == 0 {
                    return false;
                }
                let n = clamp_to_usize(remaining, avail);
                *cur += n;
                let remaining = remaining - n as u64;
                if remaining == 0 {
                    self.end_of_message(*cur, tag, out);
                    true
                } else {
                    self.state = State::Body { remaining };
                    false
                }
            }
            State::ChunkSize { scanned } => {
                let line = self.buf.get(*cur..).unwrap_or_default();
                let window = line.get(scanned..).unwrap_or_default();
                match window.iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        let end = scanned + i + 1;
                        let parsed = line.get(..end).map(httparse::parse_chunk_size);
                        match parsed {
                            Some(Ok(httparse::Status::Complete((used, size)))) if used == end => {
                                *cur += end;
                                self.state = if size == 0 {
                                    State::Trailers {
                                        phase: LinePhase::LineStart,
                                        seen: 0,
                                    }
                                } else {
                                    State::ChunkData { remaining: size }
                                };
                                true
                            }
                            _ => {
                                self.lose(LostReason::InvalidChunk, *cur, tag, out);
                                false
                            }
                        }
                    }
                    None if line.len() > MAX_CHUNK_LINE => {
                        self.lose(LostReason::InvalidChunk, *cur, tag, out);
                        false
                    }
                    None => {
                        self.state = State::ChunkSize {
                            scanned: line.len(),
                        };
                        false
                    }
                }
            }
            State::ChunkData { remaining } => {
                if avail == 0 {
                    return false;
                }
                let n = clamp_to_usize(remaining, avail);
                *cur += n;
                let remaining = remaining - n as u64;
                self.state = if remaining == 0 {
                    State::ChunkDataEnd { seen_cr: false }
                } else {
                    State::ChunkData { remaining }
                };
                remaining == 0
            }
            State::ChunkDataEnd { seen_cr } => {
                let Some(&b) = self.buf.get(*cur) else {
                    return false;
                };
                *cur += 1;
                match (seen_cr, b) {
                    (false, b'\r') => self.state = State::ChunkDataEnd { seen_cr: true },
                    (_, b'\n') => self.state = State::ChunkSize { scanned: 0 },
                    _ => {
                        self.lose(LostReason::InvalidChunk, *cur - 1, tag, out);
                        return false;
                    }
                }
                true
            }
            State::Trailers {
                mut phase,
                mut seen,
            } => {
                while let Some(&b) = self.buf.get(*cur) {
                    *cur += 1;
                    seen += 1;
                    phase = match (phase, b) {
                        (LinePhase::LineStart | LinePhase::BlankCr, b'\n') => {
                            self.end_of_message(*cur, tag, out);
                            return true;
                        }
                        (LinePhase::LineStart, b'\r') => LinePhase::BlankCr,
                        (LinePhase::BlankCr, _) => {
                            self.lose(LostReason::InvalidChunk, *cur - 1, tag, out);
                            return false;
                        }
                        (_, b'\n') => LinePhase::LineStart,
                        _ => LinePhase::Line,
                    };
                    if seen > MAX_HEAD_LEN {
                        self.lose(LostReason::InvalidChunk, *cur, tag, out);
                        return false;
                    }
                }
                self.state = State::Trailers { phase, seen };
                false
            }
        }
    }

    /// Handles `gap` uncaptured bytes after all captured bytes were processed (`buf[cur..]` is
    /// what is left unconsumed).
    fn apply_gap(&mut self, gap: u64, cur: usize, tag: &T, out: &mut StreamEvents<T>) {
        match self.state {
            State::Lost | State::NotHttp(_) => {}
            State::Head => {
                if self.scan.request_line_known() {
                    self.head_cut(cur, LostReason::UncapturedHead, tag, out);
                } else if self.scan.started() {
                    let offset = self.offset_of(cur + self.scan.line_start);
                    let tag = self.take_head_tag(tag);
                    out.push(StreamEvent::NotRequest {
                        kind: NonHttpKind::Oversized,
                        offset,
                        tag,
                    });
                    self.state = State::Lost;
                } else {
                    // Only empty lines (or nothing) so far: the next request starts in the gap.
                    self.lose(LostReason::UncapturedBoundary, self.buf.len(), tag, out);
                }
            }
            State::Body { remaining } => {
                if gap < remaining {
                    self.state = State::Body {
                        remaining: remaining - gap,
                    };
                } else if gap == remaining {
                    self.end_of_message(self.buf.len(), tag, out);
                } else {
                    let boundary = self.offset_of(self.buf.len()).saturating_add(remaining);
                    self.lose_at(LostReason::UncapturedBoundary, boundary, tag, out);
                }
            }
            State::ChunkData { remaining } => {
                if gap < remaining {
                    self.state = State::ChunkData {
                        remaining: remaining - gap,
                    };
                } else {
                    // Even `gap == remaining` is fine only if the terminator is in the next read;
                    // a larger gap hides the terminator and the next size line.
                    if gap == remaining {
                        self.state = State::ChunkDataEnd { seen_cr: false };
                    } else {
                        let at = self.offset_of(self.buf.len()).saturating_add(remaining);
                        self.lose_at(LostReason::UncapturedChunkFraming, at, tag, out);
                    }
                }
            }
            State::ChunkSize { .. } | State::ChunkDataEnd { .. } | State::Trailers { .. } => {
                self.lose(LostReason::UncapturedChunkFraming, cur, tag, out);
            }
        }
    }

    /// In the lost state, decides whether this read starts a request. Returns true when the
    /// stream is synchronised again (state `Head`, nothing buffered).
    fn try_resync(&mut self, captured: &[u8], tag: &T, out: &mut StreamEvents<T>) -> bool {
        let not_http = if self.requests == 0 && is_tls_record_header(captured) {
            Some(NonHttpKind::Tls)
        } else if is_h2_preface(captured) {
            Some(NonHttpKind::Http2)
        } else {
            None
        };
        if let Some(kind) = not_http {
            out.push(StreamEvent::NotRequest {
                kind,
                offset: self.buf_offset,
                tag: tag.clone(),
            });
            self.state = State::NotHttp(kind);
            return false;
        }
        let mut scan = HeadScan::new();
        if scan.advance(captured) == ScanResult::Invalid || !scan.request_line_known() {
            return false;
        }
        let method = scan.method(captured);
        let plausible = !method.is_empty()
            && method.len() <= 20
            && method
                .iter()
                .all(|b| b.is_ascii_uppercase() || matches!(b, b'-' | b'_'));
        if plausible {
            self.state = State::Head;
            self.scan = HeadScan::new();
            self.head_tag = None;
            self.resynced = true;
            self.switch_after_body = false;
        }
        plausible
    }

    /// A complete head `buf[cur..cur + end]`: report it and move to its body.
    fn finish_head(&mut self, cur: usize, end: usize, tag: &T, out: &mut StreamEvents<T>) {
        let scan = self.scan;
        self.scan = HeadScan::new();
        let tag = self.take_head_tag(tag);
        let resynced = std::mem::take(&mut self.resynced);
        let offset = self.offset_of(cur + scan.line_start);
        let head = self.buf.get(cur..cur + end).unwrap_or_default();
        let line = RequestLine::from_scan(&scan, head);

        let parsed = if scan.header_lines > MAX_HEADERS {
            None
        } else {
            parse_header_section(head, &scan, &line)
        };
        let (head_state, host, framing, upgrade) = match parsed {
            Some(h) => (HeadState::Complete, h.host, h.framing, h.upgrade),
            None => (
                HeadState::Invalid,
                find_host_lines(head.get(scan.line_end.unwrap_or(0)..).unwrap_or_default()),
                BodyFraming::Unknown,
                false,
            ),
        };
        let event_tag = tag.clone();
        out.push(StreamEvent::Request(ParsedRequest {
            head_len: (end - scan.line_start.min(end)) as u64,
            head: head_state,
            host,
            body: framing,
            offset,
            resynced,
            ..line.to_request(tag)
        }));
        self.requests += 1;
        self.switch_after_body = upgrade || line.method.eq_ignore_ascii_case(b"CONNECT");

        let after = cur + end;
        match framing {
            BodyFraming::None | BodyFraming::ContentLength(0) => {
                self.end_of_message(after, &event_tag, out);
            }
            BodyFraming::ContentLength(n) => self.state = State::Body { remaining: n },
            BodyFraming::Chunked => self.state = State::ChunkSize { scanned: 0 },
            BodyFraming::Unknown => {
                let reason = if head_state == HeadState::Invalid {
                    LostReason::InvalidHead
                } else {
                    LostReason::UnknownBodyLength
                };
                self.lose(reason, after, &event_tag, out);
            }
        }
    }

    /// The head starting at `buf[cur]` cannot be completed: report what is known and get lost.
    fn head_cut(&mut self, cur: usize, reason: LostReason, tag: &T, out: &mut StreamEvents<T>) {
        let scan = self.scan;
        self.scan = HeadScan::new();
        let head_tag = self.take_head_tag(tag);
        let resynced = std::mem::take(&mut self.resynced);
        let offset = self.offset_of(cur + scan.line_start);
        let head = self.buf.get(cur..).unwrap_or_default();
        let head = head.get(..MAX_HEAD_LEN.min(head.len())).unwrap_or(head);
        if scan.request_line_known() {
            let line = RequestLine::from_scan(&scan, head);
            let host = scan
                .line_end
                .and_then(|e| head.get(e..))
                .and_then(find_host_lines);
            out.push(StreamEvent::Request(ParsedRequest {
                head_len: (head.len() - scan.line_start.min(head.len())) as u64,
                head: HeadState::Truncated,
                host,
                body: BodyFraming::Unknown,
                offset,
                resynced,
                ..line.to_request(head_tag)
            }));
            self.requests += 1;
            let reason_offset = self.offset_of(cur + head.len());
            self.lose_at(reason, reason_offset, tag, out);
        } else {
            out.push(StreamEvent::NotRequest {
                kind: NonHttpKind::Oversized,
                offset,
                tag: head_tag,
            });
            self.state = State::Lost;
        }
    }

    /// The current message (head and body) ended at `buf[at]`.
    fn end_of_message(&mut self, at: usize, tag: &T, out: &mut StreamEvents<T>) {
        if std::mem::take(&mut self.switch_after_body) {
            self.lose(LostReason::ProtocolSwitch, at, tag, out);
        } else {
            self.state = State::Head;
            self.scan = HeadScan::new();
            self.head_tag = None;
        }
    }

    fn lose(&mut self, reason: LostReason, at: usize, tag: &T, out: &mut StreamEvents<T>) {
        let offset = self.offset_of(at);
        self.lose_at(reason, offset, tag, out);
    }

    fn lose_at(&mut self, reason: LostReason, offset: u64, tag: &T, out: &mut StreamEvents<T>) {
        out.push(StreamEvent::LostSync {
            reason,
            offset,
            tag: tag.clone(),
        });
        self.state = State::Lost;
        self.scan = HeadScan::new();
        self.head_tag = None;
        self.resynced = false;
        self.switch_after_body = false;
    }

    fn take_head_tag(&mut self, current: &T) -> T {
        self.head_tag.take().unwrap_or_else(|| current.clone())
    }

    /// Stream offset of `buf[i]`.
    fn offset_of(&self, i: usize) -> u64 {
        self.buf_offset.saturating_add(i as u64)
    }
}
