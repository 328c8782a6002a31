//! HTTP/1.x parsing over captured socket prefixes.
//!
//! The probe copies only a bounded prefix (default 512 bytes) of what each `read`/`recv`/`write`
//! moved, together with the real byte count. This module turns those prefixes back into HTTP
//! requests and response statuses. The bytes come from the network, so they are hostile: nothing
//! here panics on any input, every buffer and string is bounded, and the work per input byte is
//! constant (no re-scanning of a growing buffer).
//!
//! * [`classify`] / [`classify_capture`] look at the first bytes of a connection (or of a request)
//!   and say whether they are HTTP/1.x, TLS, HTTP/2, binary, an over-long head or malformed text.
//! * [`RequestStream`] is the per-connection incremental request parser: push every captured read
//!   of one connection into it, in order, and it yields the requests it can see. Its documentation
//!   says exactly what is exact and what is a heuristic.
//! * [`parse_status`] / [`parse_statuses`] read status codes from the first write of a response.
//!
//! [httparse] validates header sections, chunk-size lines and responses. The request line is
//! checked by this module's own byte scanner (with the same character classes as httparse): that
//! scanner is what keeps byte-at-a-time input linear, and unlike httparse it accepts request
//! targets that are not UTF-8, which real servers (nginx, for one) accept too.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest request head (request line + headers + blank line) that is buffered. A head still
/// incomplete after this many bytes is reported as [`HeadState::Truncated`] (request line known)
/// or [`NonHttpKind::Oversized`].
pub const MAX_HEAD_LEN: usize = 64 * 1024;
/// Longest request target kept in a [`ParsedRequest`]; longer targets are cut
/// ([`ParsedRequest::target_truncated`]).
pub const MAX_TARGET_LEN: usize = 8 * 1024;
/// Longest `Host` value kept, in bytes.
pub const MAX_HOST_LEN: usize = 255;
/// Longest accepted method token. Real methods are at most ~17 bytes; a longer first token is
/// treated as malformed text rather than buffered up to [`MAX_HEAD_LEN`].
pub const MAX_METHOD_LEN: usize = 32;
/// Most header lines accepted in one request head; more makes the head [`HeadState::Invalid`].
pub const MAX_HEADERS: usize = 256;
/// Longest chunk-size line (size plus extensions) accepted in a chunked request body.
const MAX_CHUNK_LINE: usize = 4096;
/// Most header slots used when parsing one response head.
const MAX_RESPONSE_HEADERS: usize = 96;
/// How many leading bytes [`looks_binary`] inspects.
const BINARY_SNIFF_LEN: usize = 1024;
/// The HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The shortest preface prefix that is no longer a valid HTTP/1.x request prefix (`PRI * HTTP/2`).
const H2_PREFACE_DECISIVE: usize = 12;

/// Why bytes where a request should start are not an HTTP/1.x request.
///
/// The serde/[`Display`](fmt::Display) names are stable: `tls`, `http2`, `binary`, `oversized`,
/// `malformed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NonHttpKind {
    /// A TLS record: handshake content type `0x16` followed by major version `0x03`.
    Tls,
    /// The HTTP/2 connection preface `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n` (prior knowledge / h2c).
    Http2,
    /// Bytes that are not text: control characters other than tab/CR/LF, or invalid UTF-8.
    Binary,
    /// The request head is longer than what was captured (or than [`MAX_HEAD_LEN`]) and the
    /// request line never completed within the captured bytes, so not even the method and target
    /// are known.
    Oversized,
    /// Text that is not an HTTP/1.x request line.
    Malformed,
}

impl NonHttpKind {
    /// The stable snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Tls => "tls",
            Self::Http2 => "http2",
            Self::Binary => "binary",
            Self::Oversized => "oversized",
            Self::Malformed => "malformed",
        }
    }
}

impl fmt::Display for NonHttpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the first bytes of a connection or request are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Classification {
    /// A syntactically valid HTTP/1.0 or HTTP/1.1 request line was seen (method, target and
    /// version). `head_complete` says whether the blank line ending the head was seen too; header
    /// lines are not validated here.
    Request {
        /// The whole head, up to and including the blank line, is in the bytes.
        head_complete: bool,
    },
    /// Too few bytes to decide; everything so far is a valid request prefix (this includes an
    /// empty input, leading empty lines, and a prefix of the HTTP/2 preface shorter than
    /// `PRI * HTTP/2`).
    Incomplete,
    /// Not an HTTP/1.x request.
    NonHttp(NonHttpKind),
}

/// Classifies the first bytes of a connection or of a request, assuming more bytes may follow.
///
/// Never returns [`NonHttpKind::Oversized`] unless `prefix` is longer than [`MAX_HEAD_LEN`]
/// without a complete request line; use [`classify_capture`] when the bytes are a truncated
/// capture of a longer read.
pub fn classify(prefix: &[u8]) -> Classification {
    classify_inner(prefix, false)
}

/// Classifies a captured prefix of a read that really moved `real_len` bytes.
///
/// When `real_len > captured.len()` the rest of the read was not copied, so a request line that
/// has not completed within `captured` never will be visible: that is
/// [`NonHttpKind::Oversized`] instead of [`Classification::Incomplete`].
pub fn classify_capture(captured: &[u8], real_len: u64) -> Classification {
    classify_inner(captured, real_len > captured.len() as u64)
}

fn classify_inner(bytes: &[u8], cut: bool) -> Classification {
    let mut scan = HeadScan::new();
    match scan.advance(bytes) {
        ScanResult::HeadEnd(_) => Classification::Request {
            head_complete: true,
        },
        ScanResult::Invalid => Classification::NonHttp(garbage_kind(bytes)),
        ScanResult::NeedMore if scan.request_line_known() => Classification::Request {
            head_complete: false,
        },
        ScanResult::NeedMore if (cut || scan.too_large()) && scan.started() => {
            Classification::NonHttp(NonHttpKind::Oversized)
        }
        ScanResult::NeedMore => Classification::Incomplete,
    }
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinePhase {
    LineStart,
    Line,
    BlankCr,
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

    /// A parser for a connection that was already open: it starts lost and resynchronises on the
    /// first read that begins with a request line.
    pub fn mid_stream() -> Self {
        Self {
            state: State::Lost,
            ..Self::new()
        }
    }

    /// Whether the parser knows where the next request starts.
    pub fn sync_state(&self) -> SyncState {
        match self.state {
            State::Lost => SyncState::Lost,
            State::NotHttp(kind) => SyncState::NotHttp(kind),
            _ => SyncState::Synced,
        }
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
    pub fn push(&mut self, captured: &[u8], meta: ReadMeta<T>) -> Vec<StreamEvent<T>> {
        let mut out = Vec::new();
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
    fn step(&mut self, cur: &mut usize, tag: &T, out: &mut Vec<StreamEvent<T>>) -> bool {
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
    fn apply_gap(&mut self, gap: u64, cur: usize, tag: &T, out: &mut Vec<StreamEvent<T>>) {
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
    fn try_resync(&mut self, captured: &[u8], tag: &T, out: &mut Vec<StreamEvent<T>>) -> bool {
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
    fn finish_head(&mut self, cur: usize, end: usize, tag: &T, out: &mut Vec<StreamEvent<T>>) {
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
    fn head_cut(&mut self, cur: usize, reason: LostReason, tag: &T, out: &mut Vec<StreamEvent<T>>) {
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
    fn end_of_message(&mut self, at: usize, tag: &T, out: &mut Vec<StreamEvent<T>>) {
        if std::mem::take(&mut self.switch_after_body) {
            self.lose(LostReason::ProtocolSwitch, at, tag, out);
        } else {
            self.state = State::Head;
            self.scan = HeadScan::new();
            self.head_tag = None;
        }
    }

    fn lose(&mut self, reason: LostReason, at: usize, tag: &T, out: &mut Vec<StreamEvent<T>>) {
        let offset = self.offset_of(at);
        self.lose_at(reason, offset, tag, out);
    }

    fn lose_at(&mut self, reason: LostReason, offset: u64, tag: &T, out: &mut Vec<StreamEvent<T>>) {
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

/// Clamps a remaining byte count to what is available.
fn clamp_to_usize(remaining: u64, avail: usize) -> usize {
    usize::try_from(remaining).map_or(avail, |r| r.min(avail))
}

/// Result of [`HeadScan::advance`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScanResult {
    /// All bytes so far are a valid head prefix.
    NeedMore,
    /// The head ends at this index (exclusive), after its blank line.
    HeadEnd(usize),
    /// The bytes cannot start an HTTP/1.x request.
    Invalid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScanPhase {
    /// Empty lines before the request line (RFC 9112 §2.2 lets servers skip them).
    Leading,
    LeadingCr,
    Method,
    Target,
    Version,
    VersionCr,
    Headers(LinePhase),
}

/// Incremental scanner for one request head. It looks at every byte once: call
/// [`advance`](Self::advance) again with the same buffer grown at its end.
///
/// It checks the request line with httparse's character classes (token method, target of
/// `0x21..=0x7e` and `0x80..=0xff`, `HTTP/1.0` or `HTTP/1.1`, CRLF or LF) and only finds the end
/// of the header section; the header lines themselves are left to httparse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HeadScan {
    /// Bytes examined.
    pos: usize,
    phase: ScanPhase,
    /// Index of the first method byte.
    line_start: usize,
    /// Index of the space after the method.
    method_end: usize,
    /// Index of the space after the target.
    target_end: usize,
    /// Index just after the request line's LF.
    line_end: Option<usize>,
    /// LF-terminated header lines seen (not counting the blank line).
    header_lines: usize,
}

impl HeadScan {
    const fn new() -> Self {
        Self {
            pos: 0,
            phase: ScanPhase::Leading,
            line_start: 0,
            method_end: 0,
            target_end: 0,
            line_end: None,
            header_lines: 0,
        }
    }

    /// The first method byte was seen.
    fn started(&self) -> bool {
        !matches!(self.phase, ScanPhase::Leading | ScanPhase::LeadingCr)
    }

    /// Method, target and the 8 version bytes were seen (the line ending may be missing).
    fn request_line_known(&self) -> bool {
        match self.phase {
            ScanPhase::Version => self.pos.saturating_sub(self.target_end + 1) == 8,
            ScanPhase::VersionCr | ScanPhase::Headers(_) => true,
            _ => false,
        }
    }

    /// [`MAX_HEAD_LEN`] bytes were examined without finding the end of the head.
    fn too_large(&self) -> bool {
        self.pos >= MAX_HEAD_LEN
    }

    fn method<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        buf.get(self.line_start..self.method_end)
            .unwrap_or_default()
    }

    fn advance(&mut self, buf: &[u8]) -> ScanResult {
        let limit = buf.len().min(MAX_HEAD_LEN);
        while self.pos < limit {
            let i = self.pos;
            let Some(&b) = buf.get(i) else { break };
            self.pos += 1;
            self.phase = match self.phase {
                ScanPhase::Leading => match b {
                    b'\n' => ScanPhase::Leading,
                    b'\r' => ScanPhase::LeadingCr,
                    _ => {
                        self.line_start = i;
                        if !is_token(b) {
                            return ScanResult::Invalid;
                        }
                        ScanPhase::Method
                    }
                },
                ScanPhase::LeadingCr if b == b'\n' => ScanPhase::Leading,
                ScanPhase::Method if b == b' ' => {
                    self.method_end = i;
                    ScanPhase::Target
                }
                ScanPhase::Method if is_token(b) && i - self.line_start < MAX_METHOD_LEN => {
                    ScanPhase::Method
                }
                ScanPhase::Target if b == b' ' && i > self.method_end + 1 => {
                    self.target_end = i;
                    ScanPhase::Version
                }
                ScanPhase::Target if is_uri_byte(b) => ScanPhase::Target,
                ScanPhase::Version => {
                    let k = i - self.target_end - 1;
                    match b {
                        b'\r' if k == 8 => ScanPhase::VersionCr,
                        b'\n' if k == 8 => {
                            self.line_end = Some(i + 1);
                            ScanPhase::Headers(LinePhase::LineStart)
                        }
                        b'0' | b'1' if k == 7 => ScanPhase::Version,
                        _ if b"HTTP/1.".get(k) == Some(&b) => ScanPhase::Version,
                        _ => return ScanResult::Invalid,
                    }
                }
                ScanPhase::VersionCr if b == b'\n' => {
                    self.line_end = Some(i + 1);
                    ScanPhase::Headers(LinePhase::LineStart)
                }
                ScanPhase::Headers(line) => match (line, b) {
                    // A CR at a line start not followed by LF: httparse rejects the head; end it
                    // here and let the header parser report it as invalid.
                    (LinePhase::LineStart | LinePhase::BlankCr, b'\n')
                    | (LinePhase::BlankCr, _) => {
                        return ScanResult::HeadEnd(i + 1);
                    }
                    (LinePhase::LineStart, b'\r') => ScanPhase::Headers(LinePhase::BlankCr),
                    (_, b'\n') => {
                        self.header_lines += 1;
                        ScanPhase::Headers(LinePhase::LineStart)
                    }
                    _ => ScanPhase::Headers(LinePhase::Line),
                },
                _ => return ScanResult::Invalid,
            };
        }
        ScanResult::NeedMore
    }
}

/// `tchar` (RFC 9110 §5.6.2), as httparse's method check.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Bytes httparse accepts in a request target.
fn is_uri_byte(b: u8) -> bool {
    matches!(b, 0x21..=0x7e | 0x80..=0xff)
}

/// The request line of a head, borrowed from the buffer.
#[derive(Debug, Clone, Copy)]
struct RequestLine<'a> {
    method: &'a [u8],
    target: &'a [u8],
    version: u8,
}

impl<'a> RequestLine<'a> {
    /// The request line located by `scan` in `head` (the buffer `scan` ran over).
    fn from_scan(scan: &HeadScan, head: &'a [u8]) -> Self {
        let target = head
            .get(scan.method_end + 1..scan.target_end)
            .unwrap_or_default();
        let version = match head.get(scan.target_end + 8) {
            Some(b'0') => 0,
            _ => 1,
        };
        Self {
            method: scan.method(head),
            target,
            version,
        }
    }

    /// A request with this line and placeholder values for everything else.
    fn to_request<T>(self, tag: T) -> ParsedRequest<T> {
        let target_truncated = self.target.len() > MAX_TARGET_LEN;
        let target = self
            .target
            .get(..MAX_TARGET_LEN)
            .unwrap_or(self.target)
            .to_vec();
        ParsedRequest {
            method: String::from_utf8_lossy(self.method).into_owned(),
            target,
            target_truncated,
            version: self.version,
            host: None,
            head_len: 0,
            head: HeadState::Truncated,
            body: BodyFraming::Unknown,
            offset: 0,
            resynced: false,
            tag,
        }
    }
}

/// What the header section of a complete head says.
#[derive(Debug)]
struct HeaderInfo {
    host: Option<String>,
    framing: BodyFraming,
    upgrade: bool,
}

/// Parses the complete head `head` (as scanned by `scan`) with httparse, leniently: invalid
/// header lines are skipped as nginx does. `None` when httparse rejects the head or ends it
/// elsewhere than the scanner did.
fn parse_header_section(
    head: &[u8],
    scan: &HeadScan,
    line: &RequestLine<'_>,
) -> Option<HeaderInfo> {
    // httparse insists on a UTF-8 target; substitute a neutral request line for one that is not.
    let substitute: Vec<u8>;
    let input: &[u8] = if std::str::from_utf8(line.target).is_ok() {
        head
    } else {
        let rest = head.get(scan.line_end?..)?;
        substitute = [b"GET / HTTP/1.1\r\n".as_slice(), rest].concat();
        &substitute
    };
    let mut headers = vec![httparse::EMPTY_HEADER; scan.header_lines];
    let mut request = httparse::Request::new(&mut headers);
    let mut config = httparse::ParserConfig::default();
    config.ignore_invalid_headers_in_requests(true);
    match config.parse_request(&mut request, input) {
        Ok(httparse::Status::Complete(n)) if n == input.len() => {}
        _ => return None,
    }
    let headers = &*request.headers;
    let host = headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("host"))
        .map(|h| bounded_lossy(trim_ows(h.value), MAX_HOST_LEN));
    let upgrade = headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("upgrade") && !trim_ows(h.value).is_empty());
    Some(HeaderInfo {
        host,
        framing: body_framing(headers),
        upgrade,
    })
}

/// Body framing from a message's headers (RFC 9112 §6.1–6.3): `Transfer-Encoding` overrides
/// `Content-Length`; a transfer coding list must end in `chunked`; `Content-Length` values must
/// all be the same decimal number.
fn body_framing(headers: &[httparse::Header<'_>]) -> BodyFraming {
    let mut te_seen = false;
    let mut te_last: Option<&[u8]> = None;
    let mut length: Option<u64> = None;
    let mut length_bad = false;
    for h in headers {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            te_seen = true;
            for coding in h.value.split(|&b| b == b',').map(trim_ows) {
                if !coding.is_empty() {
                    te_last = Some(coding);
                }
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            for value in h.value.split(|&b| b == b',').map(trim_ows) {
                match parse_decimal(value) {
                    Some(n) if length.is_none_or(|l| l == n) => length = Some(n),
                    _ => length_bad = true,
                }
            }
        }
    }
    if te_seen {
        if te_last.is_some_and(|c| c.eq_ignore_ascii_case(b"chunked")) {
            BodyFraming::Chunked
        } else {
            BodyFraming::Unknown
        }
    } else if length_bad {
        BodyFraming::Unknown
    } else {
        length.map_or(BodyFraming::None, BodyFraming::ContentLength)
    }
}

/// A non-empty string of ASCII digits as a `u64`; `None` on anything else or overflow.
fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &b| {
        let digit = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        acc.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// Strips optional whitespace (SP, HTAB) from both ends.
fn trim_ows(s: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| matches!(b, b' ' | b'\t');
    let start = s.iter().position(|b| !is_ows(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !is_ows(b)).map_or(start, |e| e + 1);
    s.get(start..end).unwrap_or_default()
}

/// At most `max` bytes of `bytes` as text, invalid UTF-8 replaced.
fn bounded_lossy(bytes: &[u8], max: usize) -> String {
    String::from_utf8_lossy(bytes.get(..max).unwrap_or(bytes)).into_owned()
}

/// The first `Host` value among the complete (LF-terminated) header lines of `lines`, without
/// validating anything else. Used for heads httparse cannot (or did not get to) parse.
fn find_host_lines(lines: &[u8]) -> Option<String> {
    let mut rest = lines;
    for _ in 0..=MAX_HEADERS {
        let nl = rest.iter().position(|&b| b == b'\n')?;
        let line = rest.get(..nl).unwrap_or_default();
        rest = rest.get(nl + 1..).unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return None;
        }
        if let Some((name, value)) = line.split_at_checked(5)
            && name.eq_ignore_ascii_case(b"host:")
        {
            return Some(bounded_lossy(trim_ows(value), MAX_HOST_LEN));
        }
    }
    None
}

/// What bytes that cannot start a request are.
fn garbage_kind(bytes: &[u8]) -> NonHttpKind {
    if matches!(bytes, [0x16] | [0x16, 0x03, ..]) {
        NonHttpKind::Tls
    } else if is_h2_preface(bytes) {
        NonHttpKind::Http2
    } else if looks_binary(bytes) {
        NonHttpKind::Binary
    } else {
        NonHttpKind::Malformed
    }
}

/// A TLS record header: content type change_cipher_spec, alert, handshake or application_data,
/// version 3.0 to 3.4 (TLS 1.3 records say 3.3).
fn is_tls_record_header(bytes: &[u8]) -> bool {
    matches!(bytes, [0x14..=0x17, 0x03, 0x00..=0x04, ..])
}

/// `bytes` begins with at least `PRI * HTTP/2` of the HTTP/2 preface and does not contradict it.
fn is_h2_preface(bytes: &[u8]) -> bool {
    let n = bytes.len().min(H2_PREFACE.len());
    n >= H2_PREFACE_DECISIVE && bytes.get(..n) == H2_PREFACE.get(..n)
}

/// Control characters other than HTAB/CR/LF/FF, DEL, or invalid UTF-8 in the first
/// [`BINARY_SNIFF_LEN`] bytes. A UTF-8 sequence cut at the end of the sample is not held against
/// it.
fn looks_binary(bytes: &[u8]) -> bool {
    let sample = bytes.get(..BINARY_SNIFF_LEN).unwrap_or(bytes);
    let control = sample
        .iter()
        .any(|&b| (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0c)) || b == 0x7f);
    control || std::str::from_utf8(sample).is_err_and(|e| e.error_len().is_some())
}

/// A response status line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Status {
    /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    /// Status code, 100..=999 as sent.
    pub code: u16,
}

/// Reads the status line at the start of a response write (`HTTP/1.1 200 OK` → 200).
///
/// The headers are not needed and not checked. The status line need not be complete: a capture
/// that cuts it inside the reason phrase still gives the code. `None` when the bytes do not start
/// with `HTTP/1.x NNN`.
pub fn parse_status(prefix: &[u8]) -> Option<Status> {
    let mut response = httparse::Response::new(&mut []);
    let result = response.parse(prefix);
    let line_ok = match result {
        // The status line is complete, or cut after the code: either way the code is sound.
        Ok(_) => true,
        // Errors after a complete status line come from the (unprovided) header slots.
        Err(_) => response.reason.is_some(),
    };
    match (line_ok, response.version, response.code) {
        (true, Some(version), Some(code)) => Some(Status { version, code }),
        _ => None,
    }
}

/// Status codes of every response that starts in `prefix`, in order: several responses in one
/// write happen with pipelining.
///
/// A response after the first is found only if the bytes before it (head and body) are in
/// `prefix`: bodies are skipped by `Content-Length` or by walking the chunks. The walk stops at a
/// body delimited by connection close, a body that runs past `prefix`, `101 Switching
/// Protocols`, or anything unparseable. Interim `1xx` responses are included.
///
/// Responses to `HEAD` carry `Content-Length` without a body and the request method is not known
/// here: when the bytes after the declared body do not start a response but the bytes right after
/// the head do, the head is taken as bodiless.
pub fn parse_statuses(prefix: &[u8]) -> Vec<u16> {
    let mut out = Vec::new();
    let mut rest = prefix;
    while !rest.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let mut config = httparse::ParserConfig::default();
        config
            .ignore_invalid_headers_in_responses(true)
            .allow_obsolete_multiline_headers_in_responses(true);
        let head_len = match config.parse_response(&mut response, rest) {
            Ok(httparse::Status::Complete(n)) => n,
            _ => {
                // Incomplete or unparseable head: the status is still usable if its line is.
                if let Some(status) = parse_status(rest) {
                    out.push(status.code);
                }
                break;
            }
        };
        let Some(code) = response.code else { break };
        out.push(code);
        let after_head = rest.get(head_len..).unwrap_or_default();
        let body_len = match code {
            101 => break,
            100..=199 | 204 | 304 => Some(0),
            _ => match body_framing(response.headers) {
                BodyFraming::None | BodyFraming::Unknown => break,
                BodyFraming::ContentLength(n) => usize::try_from(n).ok(),
                BodyFraming::Chunked => skip_chunked(after_head),
            },
        };
        let after_body = body_len.and_then(|n| after_head.get(n..));
        rest = match after_body {
            Some(next) if next.is_empty() || next.starts_with(b"HTTP/") => next,
            _ if after_head.starts_with(b"HTTP/1.") => after_head,
            _ => break,
        };
    }
    out
}

/// Length of the chunked body at the start of `body` (through the trailer section), if all of it
/// is there.
fn skip_chunked(body: &[u8]) -> Option<usize> {
    let mut pos = 0usize;
    loop {
        let rest = body.get(pos..)?;
        let httparse::Status::Complete((line, size)) = httparse::parse_chunk_size(rest).ok()?
        else {
            return None;
        };
        pos = pos.checked_add(line)?;
        if size == 0 {
            break;
        }
        pos = pos.checked_add(usize::try_from(size).ok()?)?;
        if body.get(pos..pos.checked_add(2)?)? != b"\r\n" {
            return None;
        }
        pos += 2;
    }
    // Trailer section: header lines until an empty line.
    loop {
        let rest = body.get(pos..)?;
        let nl = rest.iter().position(|&b| b == b'\n')?;
        let line = rest.get(..nl).unwrap_or_default();
        pos += nl + 1;
        if line.is_empty() || line == b"\r" {
            return Some(pos);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pushes `data` as one fully captured read tagged `tag`.
    fn push_all(stream: &mut RequestStream<u32>, data: &[u8], tag: u32) -> Vec<StreamEvent<u32>> {
        stream.push(data, ReadMeta::new(data.len() as u64, tag))
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

    /// xorshift64: deterministic bytes without a rand dependency.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }

        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next().to_le_bytes()[3]).collect()
        }
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
        let data = b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\nHost: bee\r\nAccept: */*\r\nCookie: x\r\n\r\n";
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
            events,
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
        let up = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\r\n";
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

    #[test]
    fn random_bytes_are_binary_and_never_panic() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let noise = rng.bytes(64 * 1024);
        assert_eq!(
            classify(&noise),
            Classification::NonHttp(NonHttpKind::Binary)
        );
        assert_eq!(
            classify_capture(&noise[..512], 64 * 1024),
            Classification::NonHttp(NonHttpKind::Binary)
        );
        let _ = parse_status(&noise);
        let _ = parse_statuses(&noise);
        // Streams fed random chunks, random caps and random real lengths, from both starts.
        for stream_kind in 0..2 {
            let mut s: RequestStream<u32> = if stream_kind == 0 {
                RequestStream::new()
            } else {
                RequestStream::mid_stream()
            };
            let mut pos = 0usize;
            while pos < noise.len() {
                let n = 1 + rng.below(700) as usize;
                let chunk = &noise[pos..(pos + n).min(noise.len())];
                pos += n;
                let real = chunk.len() as u64 + rng.below(3) * rng.below(5000);
                let _ = s.push(chunk, ReadMeta::new(real, 0));
            }
            let _ = s.push(&[], ReadMeta::new(0, 0));
            let _ = s.push(&[], ReadMeta::new(u64::MAX, 0));
        }
    }

    #[test]
    fn mutated_requests_never_panic_and_offsets_only_grow() {
        let mut rng = XorShift(42);
        let base = [
            GET,
            b"POST /up HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
            b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nT: 1\r\n\r\n",
            b"GET /\xff\xfe HTTP/1.0\r\n\r\n",
        ]
        .concat();
        for _ in 0..300 {
            let mut data = base.repeat(3);
            for _ in 0..rng.below(6) {
                let i = rng.below(data.len() as u64) as usize;
                data[i] = rng.next().to_le_bytes()[0];
            }
            let mut s = RequestStream::new();
            let mut last = 0u64;
            let mut pos = 0usize;
            while pos < data.len() {
                let n = 1 + rng.below(90) as usize;
                let end = (pos + n).min(data.len());
                let cap = (end - pos).min(1 + rng.below(120) as usize);
                for e in s.push(&data[pos..pos + cap], ReadMeta::new((end - pos) as u64, 0)) {
                    if let StreamEvent::Request(r) = e {
                        assert!(r.offset >= last, "offsets go backwards");
                        assert!(r.target.len() <= MAX_TARGET_LEN);
                        last = r.offset;
                    }
                }
                pos = end;
            }
            assert_eq!(s.bytes_seen(), data.len() as u64);
        }
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
            events,
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
}
