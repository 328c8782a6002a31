//! What the first bytes of a connection or request are, when they are not an HTTP/1.x request:
//! TLS, the HTTP/2 preface, binary, or malformed text. The whole-prefix classifiers are kept for
//! the tests, which use them to pin the scanner's verdicts.

#[cfg(test)]
use super::head::{HeadScan, ScanResult};
use super::{BINARY_SNIFF_LEN, H2_PREFACE, H2_PREFACE_DECISIVE, NonHttpKind};

/// What the first bytes of a connection or request are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg(test)]
pub(super) enum Classification {
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
#[cfg(test)]
pub(super) fn classify(prefix: &[u8]) -> Classification {
    classify_inner(prefix, false)
}

/// Classifies a captured prefix of a read that really moved `real_len` bytes.
///
/// When `real_len > captured.len()` the rest of the read was not copied, so a request line that
/// has not completed within `captured` never will be visible: that is
/// [`NonHttpKind::Oversized`] instead of [`Classification::Incomplete`].
#[cfg(test)]
pub(super) fn classify_capture(captured: &[u8], real_len: u64) -> Classification {
    classify_inner(captured, real_len > captured.len() as u64)
}

#[cfg(test)]
pub(super) fn classify_inner(bytes: &[u8], cut: bool) -> Classification {
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

/// What bytes that cannot start a request are.
pub(super) fn garbage_kind(bytes: &[u8]) -> NonHttpKind {
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
pub(super) fn is_tls_record_header(bytes: &[u8]) -> bool {
    matches!(bytes, [0x14..=0x17, 0x03, 0x00..=0x04, ..])
}

/// `bytes` begins with at least `PRI * HTTP/2` of the HTTP/2 preface and does not contradict it.
pub(super) fn is_h2_preface(bytes: &[u8]) -> bool {
    let n = bytes.len().min(H2_PREFACE.len());
    n >= H2_PREFACE_DECISIVE && bytes.get(..n) == H2_PREFACE.get(..n)
}

/// Control characters other than HTAB/CR/LF/FF, DEL, or invalid UTF-8 in the first
/// [`BINARY_SNIFF_LEN`] bytes. A UTF-8 sequence cut at the end of the sample is not held against
/// it.
pub(super) fn looks_binary(bytes: &[u8]) -> bool {
    let sample = bytes.get(..BINARY_SNIFF_LEN).unwrap_or(bytes);
    let control = sample
        .iter()
        .any(|&b| (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0c)) || b == 0x7f);
    control || std::str::from_utf8(sample).is_err_and(|e| e.error_len().is_some())
}
