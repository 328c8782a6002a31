//! HTTP/1.x parsing over captured socket prefixes.
//!
//! The probe copies only a bounded prefix (default 512 bytes) of what each `read`/`recv`/`write`
//! moved, together with the real byte count. This module turns those prefixes back into HTTP
//! requests and response statuses. The bytes come from the network, so they are hostile: nothing
//! here panics on any input, every buffer and string is bounded, and the work per input byte is
//! constant (no re-scanning of a growing buffer).
//!
//! * [`stream`]: [`RequestStream`](stream::RequestStream), the per-connection incremental request
//!   parser: push every captured read of one connection into it, in order, and it yields the
//!   requests it can see. Its documentation says exactly what is exact and what is a heuristic.
//! * [`head`]: the byte scanner for request heads, and header-section parsing.
//! * [`sniff`]: what bytes that cannot start a request are (TLS, HTTP/2, binary, malformed).
//! * [`response`]: [`parse_status`](response::parse_status) reads the status code from the first
//!   write of a response.
//!
//! [httparse] validates header sections, chunk-size lines and responses. The request line is
//! checked by this module's own byte scanner (with the same character classes as httparse): that
//! scanner is what keeps byte-at-a-time input linear, and unlike httparse it accepts request
//! targets that are not UTF-8, which real servers (nginx, for one) accept too.

pub mod head;
pub mod response;
pub mod sniff;
pub mod stream;
#[cfg(test)]
mod tests;

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
#[cfg(test)]
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
