//! Running a compiled format over one line: a single forward pass, no regex, no backtracking
//! (except trying a built-in format's fallback layouts when the primary one fails).

use std::fmt;

use super::counts::IngestCounts;
use super::escape::unescape_to_string;
use super::format::{FieldStep, Format, Matcher, Slot, Step, TimeKind};
use super::line::AccessLine;
use super::request::split_request;
use super::time::{DateCache, parse_clf, parse_epoch, parse_u64};

/// Lines longer than this (without the newline) are rejected as [`RejectReason::TooLong`].
pub const MAX_LINE_LEN: usize = 64 * 1024;

/// At most this much of a rejected line is kept in [`Reject::raw`].
pub const MAX_REJECT_RAW: usize = 4 * 1024;

/// At most this many extra fields after the end of the format.
const MAX_TRAILING: usize = 32;

/// Why a line was not parsed. [`RejectReason::as_str`] is a stable snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// Nothing but whitespace.
    Empty,
    /// Longer than [`MAX_LINE_LEN`].
    TooLong,
    /// Raw bytes that are not UTF-8 (servers escape them, so the line is not theirs).
    NotUtf8,
    /// No `[` where the timestamp should start.
    MissingTimestamp,
    /// A timestamp that does not parse (bad date, time, offset, or no closing `]`).
    BadTimestamp,
    /// A status that is not a number of at most three digits.
    BadStatus,
    /// A size that is neither digits nor `-`.
    BadSize,
    /// A `%D`/`%T` duration that is neither a number nor `-`.
    BadDuration,
    /// A quoted field whose closing quote never comes.
    UnterminatedQuote,
    /// The line ended before all of the format's fields were read.
    FieldCount,
    /// Text that does not fit the format (a missing separator or quote, junk after the fields).
    UnexpectedText,
}

impl RejectReason {
    /// Every reason, in declaration order.
    pub const ALL: [RejectReason; 11] = [
        RejectReason::Empty,
        RejectReason::TooLong,
        RejectReason::NotUtf8,
        RejectReason::MissingTimestamp,
        RejectReason::BadTimestamp,
        RejectReason::BadStatus,
        RejectReason::BadSize,
        RejectReason::BadDuration,
        RejectReason::UnterminatedQuote,
        RejectReason::FieldCount,
        RejectReason::UnexpectedText,
    ];

    /// The stable snake_case name (used in counters and output).
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Empty => "empty",
            RejectReason::TooLong => "too_long",
            RejectReason::NotUtf8 => "not_utf8",
            RejectReason::MissingTimestamp => "missing_timestamp",
            RejectReason::BadTimestamp => "bad_timestamp",
            RejectReason::BadStatus => "bad_status",
            RejectReason::BadSize => "bad_size",
            RejectReason::BadDuration => "bad_duration",
            RejectReason::UnterminatedQuote => "unterminated_quote",
            RejectReason::FieldCount => "field_count",
            RejectReason::UnexpectedText => "unexpected_text",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A line that could not be parsed: why, where, and (the start of) the line itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// Why.
    pub reason: RejectReason,
    /// Byte offset in the line where parsing stopped.
    pub offset: usize,
    /// The line, lossily decoded, at most [`MAX_REJECT_RAW`] bytes, without its newline.
    pub raw: String,
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}: {:?}", self.reason, self.offset, self.raw)
    }
}

impl Reject {
    fn new(reason: RejectReason, offset: usize, line: &[u8]) -> Self {
        let kept = &line[..line.len().min(MAX_REJECT_RAW)];
        let mut raw = String::from_utf8_lossy(kept).into_owned();
        // A lossy decode may grow the text (U+FFFD is 3 bytes); cut back on a char boundary.
        let kept = crate::units::cut(&raw, MAX_REJECT_RAW).len();
        raw.truncate(kept);
        Self {
            reason,
            offset,
            raw,
        }
    }
}

type Fail = (RejectReason, usize);

impl Format {
    /// Parses one line (with or without its trailing newline).
    ///
    /// Never panics, whatever the bytes. For a stream of lines prefer [`LogParser`], which caches
    /// the date and counts outcomes.
    pub fn parse_line(&self, line: &[u8]) -> Result<AccessLine, Reject> {
        self.parse_with(line, &mut DateCache::default())
            .map(|(parsed, _exact)| parsed)
    }

    /// Parses with the primary layout, then the fallbacks. `exact` is false if leniency was used
    /// (missing trailing headers, extra trailing fields, omitted `%l`/`%u`).
    pub(crate) fn parse_with(
        &self,
        raw: &[u8],
        cache: &mut DateCache,
    ) -> Result<(AccessLine, bool), Reject> {
        let (line, text) = prepare(raw)?;
        let mut first_failure = None;
        // Strictly first, so that a lenient reading of one layout does not win over an exact
        // reading of another (a `combined` line is a `vhost_combined` line missing `%u`).
        for allow_omission in [false, true] {
            for matcher in &self.matchers {
                match matcher.run(text, cache, allow_omission) {
                    Ok(parsed) => return Ok(parsed),
                    Err(fail) => {
                        first_failure.get_or_insert(fail);
                    }
                }
            }
        }
        let (reason, offset) = first_failure.unwrap_or((RejectReason::UnexpectedText, 0));
        Err(Reject::new(reason, offset, line))
    }

    /// Parses with the primary layout only (for detection).
    pub(crate) fn parse_primary(
        &self,
        raw: &[u8],
        cache: &mut DateCache,
    ) -> Result<(AccessLine, bool), RejectReason> {
        let (_, text) = prepare(raw).map_err(|r| r.reason)?;
        self.matchers[0]
            .run(text, cache, false)
            .map_err(|(reason, _)| reason)
    }
}

/// Strips the newline, bounds the length, checks UTF-8.
fn prepare(raw: &[u8]) -> Result<(&[u8], &str), Reject> {
    let line = raw.strip_suffix(b"\n").unwrap_or(raw);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > MAX_LINE_LEN {
        return Err(Reject::new(RejectReason::TooLong, MAX_LINE_LEN, line));
    }
    if line.iter().all(u8::is_ascii_whitespace) {
        return Err(Reject::new(RejectReason::Empty, 0, line));
    }
    match std::str::from_utf8(line) {
        Ok(text) => Ok((line, text)),
        Err(e) => Err(Reject::new(RejectReason::NotUtf8, e.valid_up_to(), line)),
    }
}

/// Parses a stream of lines with one format, caching dates and counting outcomes.
#[derive(Debug, Clone)]
pub struct LogParser {
    format: Format,
    cache: DateCache,
    counts: IngestCounts,
}

impl LogParser {
    /// A parser for `format`.
    pub fn new(format: Format) -> Self {
        Self {
            format,
            cache: DateCache::default(),
            counts: IngestCounts::default(),
        }
    }

    /// Parses and counts one line. A reject never stops the caller from parsing the next line.
    pub fn parse(&mut self, line: &[u8]) -> Result<AccessLine, Reject> {
        let result = self
            .format
            .parse_with(line, &mut self.cache)
            .map(|(parsed, _exact)| parsed);
        self.counts.record(&result);
        if let Err(reject) = &result {
            tracing::trace!(%reject, "access-log line rejected");
        }
        result
    }

    /// Lines seen so far, parsed and rejected.
    pub fn counts(&self) -> &IngestCounts {
        &self.counts
    }

    /// The format in use.
    pub fn format(&self) -> &Format {
        &self.format
    }
}

impl Matcher {
    /// One forward pass over `line`. `allow_omission`: accept a missing `%l`/`%u` before `%t`.
    pub(crate) fn run(
        &self,
        line: &str,
        cache: &mut DateCache,
        allow_omission: bool,
    ) -> Result<(AccessLine, bool), Fail> {
        let b = line.as_bytes();
        let mut out = AccessLine::empty(self.anchor);
        let mut exact = true;
        let mut pos = 0;
        let mut i = 0;
        while i < self.steps.len() {
            match &self.steps[i] {
                Step::Literal(lit) => {
                    let rest = &b[pos..];
                    if rest.starts_with(lit) {
                        pos += lit.len();
                    } else if rest.is_empty() && i >= self.optional_from {
                        // A `common` line under `combined`: the headers are simply absent.
                        exact = false;
                        break;
                    } else if lit.starts_with(rest) {
                        return Err((RejectReason::FieldCount, pos));
                    } else {
                        return Err((RejectReason::UnexpectedText, pos));
                    }
                }
                Step::Field(field) => {
                    if allow_omission && field.omittable_before_time && b.get(pos) == Some(&b'[') {
                        // `1.2.3.4 - [time]`: skip this field and the space before the time.
                        exact = false;
                        i += 2;
                        continue;
                    }
                    pos = self.read_field(i, field, line, pos, &mut out, cache)?;
                }
            }
            i += 1;
        }
        // Extra fields after the format (nginx `"$http_x_forwarded_for"` and the like).
        while pos < b.len() {
            if b[pos] != b' ' {
                return Err((RejectReason::UnexpectedText, pos));
            }
            while b.get(pos) == Some(&b' ') {
                pos += 1;
            }
            if pos == b.len() {
                break;
            }
            if out.trailing.len() == MAX_TRAILING {
                return Err((RejectReason::UnexpectedText, pos));
            }
            exact = false;
            let (start, end, next) = if b[pos] == b'"' {
                read_quoted(b, pos, None)?
            } else {
                let end = find(b, pos, b' ');
                (pos, end, end)
            };
            out.trailing
                .push(unescape_to_string(slice(line, start, end)?));
            pos = next;
        }
        Ok((out, exact))
    }

    /// The byte that must follow field `i` (`None`: end of format, then a space or end of line).
    fn follow(&self, i: usize) -> Option<u8> {
        match self.steps.get(i + 1)? {
            Step::Literal(lit) => lit.first().copied(),
            Step::Field(FieldStep { quoted: true, .. }) => Some(b'"'),
            Step::Field(_) => None,
        }
    }

    /// Reads field `i` at `pos`, stores it in `out`, returns the position after it.
    fn read_field(
        &self,
        i: usize,
        field: &FieldStep,
        line: &str,
        pos: usize,
        out: &mut AccessLine,
        cache: &mut DateCache,
    ) -> Result<usize, Fail> {
        let b = line.as_bytes();
        if pos >= b.len() {
            return Err((RejectReason::FieldCount, pos));
        }
        let follow = self.follow(i);
        if let Slot::Time(kind) = field.slot {
            return read_time(kind, line, pos, follow, out, cache);
        }
        let (start, end, next) = if field.quoted
            || (b[pos] == b'"' && matches!(field.slot, Slot::Client | Slot::Header(_)))
        {
            read_quoted(b, pos, follow)?
        } else {
            let end = read_token(b, pos, follow.unwrap_or(b' '), field.list);
            (pos, end, end)
        };
        let value = slice(line, start, end)?;
        store(&field.slot, value, out).map_err(|reason| (reason, start))?;
        Ok(next)
    }
}

/// Reads a time field; returns the position after it.
fn read_time(
    kind: TimeKind,
    line: &str,
    pos: usize,
    follow: Option<u8>,
    out: &mut AccessLine,
    cache: &mut DateCache,
) -> Result<usize, Fail> {
    let b = line.as_bytes();
    let (time, next) = match kind {
        TimeKind::ClfBracketed => {
            if b[pos] != b'[' {
                return Err((RejectReason::MissingTimestamp, pos));
            }
            // `[dd/Mon/yyyy:HH:MM:SS.fffffffff +hhmm]` is at most 38 bytes.
            let window = &b[pos + 1..b.len().min(pos + 40)];
            let close = window
                .iter()
                .position(|&c| c == b']')
                .ok_or((RejectReason::BadTimestamp, pos))?;
            let inner = &window[..close];
            (parse_clf(inner, cache), pos + 1 + close + 1)
        }
        TimeKind::Clf => {
            if !b[pos].is_ascii_digit() {
                return Err((RejectReason::MissingTimestamp, pos));
            }
            // The value holds one space, before the offset: `10/Oct/2000:13:55:36 -0700`.
            let space = find(b, pos, b' ');
            let end = (space + 6).min(b.len());
            (parse_clf(&b[pos..end], cache), end)
        }
        TimeKind::Epoch(unit) => {
            let end = read_token(b, pos, follow.unwrap_or(b' '), false);
            if end == pos {
                return Err((RejectReason::MissingTimestamp, pos));
            }
            (parse_epoch(&b[pos..end], unit), end)
        }
    };
    out.time = Some(time.ok_or((RejectReason::BadTimestamp, pos))?);
    Ok(next)
}

/// Stores a field's text (quotes removed, escapes still in) into the line.
fn store(slot: &Slot, value: &str, out: &mut AccessLine) -> Result<(), RejectReason> {
    let absent = value == "-" || value.is_empty();
    let text = || (!absent).then(|| unescape_to_string(value));
    match slot {
        Slot::Client => out.client = text(),
        Slot::Ident => out.ident = text(),
        Slot::User => out.user = text(),
        // Read by `read_time`, never stored from text.
        Slot::Time(_) => {}
        Slot::Request => {
            out.request_line = Some(value.to_owned());
            if let Some(parts) = split_request(value) {
                out.method = Some(parts.method);
                out.target = Some(parts.target);
                out.protocol = parts.protocol;
            }
        }
        Slot::Method => out.method = text(),
        Slot::UrlPath | Slot::UrlPathQuery => out.target = text(),
        Slot::Protocol => out.protocol = text(),
        Slot::Status => {
            out.status = match value {
                "-" => None,
                _ if value.len() <= 3 => {
                    let n = parse_u64(value.as_bytes()).ok_or(RejectReason::BadStatus)?;
                    Some(u16::try_from(n).map_err(|_| RejectReason::BadStatus)?)
                }
                _ => return Err(RejectReason::BadStatus),
            };
        }
        Slot::Bytes => {
            out.bytes = match value {
                "-" => None,
                _ => Some(parse_u64(value.as_bytes()).ok_or(RejectReason::BadSize)?),
            };
        }
        Slot::DurationMicros => {
            out.duration_us = match value {
                "-" => None,
                _ => Some(parse_u64(value.as_bytes()).ok_or(RejectReason::BadDuration)?),
            };
        }
        Slot::DurationScaled(micros_per_unit) => {
            out.duration_us = match value {
                "-" => None,
                _ => Some(
                    parse_scaled(value.as_bytes(), *micros_per_unit)
                        .ok_or(RejectReason::BadDuration)?,
                ),
            };
        }
        Slot::Vhost => out.vhost = text(),
        Slot::VhostPort => {
            if !absent {
                let (host, port) = split_host_port(value);
                out.vhost = Some(unescape_to_string(host));
                if let Some(port) = port {
                    out.fields.insert("%p".to_owned(), port.to_owned());
                }
            }
        }
        Slot::Referer => out.referer = text(),
        Slot::UserAgent => out.user_agent = text(),
        Slot::Header(key) | Slot::Other(key) => {
            if let Some(text) = text() {
                out.fields.insert(key.clone(), text);
            }
        }
    }
    Ok(())
}

/// `host:443` → (`host`, `443`); `host`, `::1` and `[::1]` keep no port.
fn split_host_port(value: &str) -> (&str, Option<&str>) {
    match value.rsplit_once(':') {
        Some((host, port))
            if !port.is_empty()
                && port.len() <= 5
                && port.bytes().all(|b| b.is_ascii_digit())
                && (!host.contains(':') || host.ends_with(']')) =>
        {
            (host, Some(port))
        }
        _ => (value, None),
    }
}

/// `12` or `0.123` units → microseconds, given microseconds per unit.
fn parse_scaled(text: &[u8], micros_per_unit: u64) -> Option<u64> {
    let (int, frac) = match text.iter().position(|&b| b == b'.') {
        Some(dot) => (&text[..dot], Some(&text[dot + 1..])),
        None => (text, None),
    };
    let mut micros = parse_u64(int)?.checked_mul(micros_per_unit)?;
    if let Some(frac) = frac {
        let frac = &frac[..frac.len().min(9)];
        let digits = u32::try_from(frac.len()).ok()?;
        let value = parse_u64(frac)?;
        micros = micros.checked_add(value * micros_per_unit / 10u64.pow(digits))?;
    }
    Some(micros)
}

/// A quoted field at `pos`: returns (content start, content end, position after the quote).
///
/// The closing quote is the first unescaped `"` followed by `follow` (or a space when the field
/// ends the format) or by the end of the line, so a raw quote inside a field does not end it.
fn read_quoted(b: &[u8], pos: usize, follow: Option<u8>) -> Result<(usize, usize, usize), Fail> {
    if pos >= b.len() {
        return Err((RejectReason::FieldCount, pos));
    }
    if b[pos] != b'"' {
        return Err((RejectReason::UnexpectedText, pos));
    }
    let want = follow.unwrap_or(b' ');
    let mut j = pos + 1;
    while let Some(offset) = b[j..].iter().position(|&c| c == b'"' || c == b'\\') {
        j += offset;
        if b[j] == b'\\' {
            j += 2;
            if j >= b.len() {
                break;
            }
            continue;
        }
        let after = j + 1;
        if after == b.len() || b[after] == want {
            return Ok((pos + 1, j, after));
        }
        j = after;
    }
    Err((RejectReason::UnterminatedQuote, pos))
}

/// An unquoted token from `pos` up to `stop` (or the end); a list (`a, b, c`) continues past
/// `", "` when `stop` is a space.
fn read_token(b: &[u8], pos: usize, stop: u8, list: bool) -> usize {
    let mut end = find(b, pos, stop);
    if list && stop == b' ' {
        while end > pos && end < b.len() && b[end - 1] == b',' {
            end = find(b, end + 1, b' ');
        }
    }
    end
}

/// Index of the first `byte` at or after `from`, or the end.
fn find(b: &[u8], from: usize, byte: u8) -> usize {
    b[from..]
        .iter()
        .position(|&c| c == byte)
        .map_or(b.len(), |p| from + p)
}

fn slice(line: &str, start: usize, end: usize) -> Result<&str, Fail> {
    line.get(start..end)
        .ok_or((RejectReason::UnexpectedText, start))
}
