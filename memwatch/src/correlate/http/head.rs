//! The request-head scanner: finds the request line and the end of the head in any split of the
//! bytes, in constant work per byte, and reads the header section with httparse.

use super::stream::{BodyFraming, HeadState, ParsedRequest};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LinePhase {
    LineStart,
    Line,
    BlankCr,
}
use super::{MAX_HEAD_LEN, MAX_HEADERS, MAX_HOST_LEN, MAX_METHOD_LEN, MAX_TARGET_LEN};

/// Clamps a remaining byte count to what is available.
pub(super) fn clamp_to_usize(remaining: u64, avail: usize) -> usize {
    usize::try_from(remaining).map_or(avail, |r| r.min(avail))
}

/// Result of [`HeadScan::advance`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ScanResult {
    /// All bytes so far are a valid head prefix.
    NeedMore,
    /// The head ends at this index (exclusive), after its blank line.
    HeadEnd(usize),
    /// The bytes cannot start an HTTP/1.x request.
    Invalid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ScanPhase {
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
pub(super) struct HeadScan {
    /// Bytes examined.
    pub(super) pos: usize,
    pub(super) phase: ScanPhase,
    /// Index of the first method byte.
    pub(super) line_start: usize,
    /// Index of the space after the method.
    pub(super) method_end: usize,
    /// Index of the space after the target.
    pub(super) target_end: usize,
    /// Index just after the request line's LF.
    pub(super) line_end: Option<usize>,
    /// LF-terminated header lines seen (not counting the blank line).
    pub(super) header_lines: usize,
}

impl HeadScan {
    pub(super) const fn new() -> Self {
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
    pub(super) fn started(&self) -> bool {
        !matches!(self.phase, ScanPhase::Leading | ScanPhase::LeadingCr)
    }

    /// Method, target and the 8 version bytes were seen (the line ending may be missing).
    pub(super) fn request_line_known(&self) -> bool {
        match self.phase {
            ScanPhase::Version => self.pos.saturating_sub(self.target_end + 1) == 8,
            ScanPhase::VersionCr | ScanPhase::Headers(_) => true,
            _ => false,
        }
    }

    /// [`MAX_HEAD_LEN`] bytes were examined without finding the end of the head.
    pub(super) fn too_large(&self) -> bool {
        self.pos >= MAX_HEAD_LEN
    }

    pub(super) fn method<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        buf.get(self.line_start..self.method_end)
            .unwrap_or_default()
    }

    pub(super) fn advance(&mut self, buf: &[u8]) -> ScanResult {
        let limit = buf.len().min(MAX_HEAD_LEN);
        while self.pos < limit {
            if self.phase == ScanPhase::Headers(LinePhase::Line) {
                // Inside a header line only its LF matters: jump to it rather than step through
                // every byte (most of a browser's head is such lines).
                let rest = buf.get(self.pos..limit).unwrap_or_default();
                match memchr::memchr(b'\n', rest) {
                    Some(at) => {
                        self.pos += at + 1;
                        self.header_lines += 1;
                        self.phase = ScanPhase::Headers(LinePhase::LineStart);
                        continue;
                    }
                    None => {
                        self.pos = limit;
                        break;
                    }
                }
            }
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
pub(super) fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Bytes httparse accepts in a request target.
pub(super) fn is_uri_byte(b: u8) -> bool {
    matches!(b, 0x21..=0x7e | 0x80..=0xff)
}

/// The request line of a head, borrowed from the buffer.
#[derive(Debug, Clone, Copy)]
pub(super) struct RequestLine<'a> {
    pub(super) method: &'a [u8],
    pub(super) target: &'a [u8],
    pub(super) version: u8,
}

impl<'a> RequestLine<'a> {
    /// The request line located by `scan` in `head` (the buffer `scan` ran over).
    pub(super) fn from_scan(scan: &HeadScan, head: &'a [u8]) -> Self {
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
    pub(super) fn to_request<T>(self, tag: T) -> ParsedRequest<T> {
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
pub(super) struct HeaderInfo {
    pub(super) host: Option<String>,
    pub(super) framing: BodyFraming,
    pub(super) upgrade: bool,
}

/// Parses the complete head `head` (as scanned by `scan`) with httparse, leniently: invalid
/// header lines are skipped as nginx does. `None` when httparse rejects the head or ends it
/// elsewhere than the scanner did.
pub(super) fn parse_header_section(
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
    // Held inline for a usual head's count of headers: this runs for every request.
    let mut headers: smallvec::SmallVec<[httparse::Header<'_>; 16]> =
        smallvec::smallvec![httparse::EMPTY_HEADER; scan.header_lines];
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
pub(super) fn body_framing(headers: &[httparse::Header<'_>]) -> BodyFraming {
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
pub(super) fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &b| {
        let digit = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        acc.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// Strips optional whitespace (SP, HTAB) from both ends.
pub(super) fn trim_ows(s: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| matches!(b, b' ' | b'\t');
    let start = s.iter().position(|b| !is_ows(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !is_ows(b)).map_or(start, |e| e + 1);
    s.get(start..end).unwrap_or_default()
}

/// At most `max` bytes of `bytes` as text, invalid UTF-8 replaced. The bound is on the text: a
/// replacement character takes three bytes, so the decoded text is cut again (on a character
/// boundary).
pub(super) fn bounded_lossy(bytes: &[u8], max: usize) -> String {
    let mut text = String::from_utf8_lossy(bytes.get(..max).unwrap_or(bytes)).into_owned();
    text.truncate(crate::units::cut(&text, max).len());
    text
}

/// The first `Host` value among the complete (LF-terminated) header lines of `lines`, without
/// validating anything else. Used for heads httparse cannot (or did not get to) parse.
pub(super) fn find_host_lines(lines: &[u8]) -> Option<String> {
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
