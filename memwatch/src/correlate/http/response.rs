//! Response status lines, read from the first write of a response.

use serde::{Deserialize, Serialize};

#[cfg(test)]
use super::{MAX_RESPONSE_HEADERS, head::body_framing, stream::BodyFraming};

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
#[cfg(test)]
pub(super) fn parse_statuses(prefix: &[u8]) -> Vec<u16> {
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
#[cfg(test)]
pub(super) fn skip_chunked(body: &[u8]) -> Option<usize> {
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
