//! A small HTTP/1.x request-head parser: just enough for the demo's endpoints, strict about
//! syntax, bounded in size.

/// Longest request head accepted (431 beyond).
pub(crate) const MAX_HEAD: usize = 16 * 1024;

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    /// Method token, as sent.
    pub method: String,
    /// Raw request target (path and query).
    pub target: Vec<u8>,
    /// Minor version: 0 or 1.
    pub version: u8,
    /// The request line without its line ending, for the access log's `%r`.
    pub request_line: Vec<u8>,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
    /// Declared body length.
    pub content_length: usize,
    /// `Referer` value.
    pub referer: Option<Vec<u8>>,
    /// `User-Agent` value.
    pub user_agent: Option<Vec<u8>>,
    /// Bytes of the head, including leading empty lines and the final blank line.
    pub len: usize,
}

/// A request that cannot be served, with the status to answer it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejection {
    /// Status code (400, 431, 501).
    pub status: u16,
    /// Short explanation, sent as the body.
    pub reason: &'static str,
    /// The request line, if one was seen, for the access log.
    pub request_line: Option<Vec<u8>>,
}

/// Outcome of [`parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parse {
    /// A complete head at the start of the buffer.
    Complete(Head),
    /// Need more bytes.
    Partial,
    /// Not servable; the connection is closed after the answer.
    Reject(Rejection),
}

fn reject(status: u16, reason: &'static str, request_line: Option<&[u8]>) -> Parse {
    Parse::Reject(Rejection {
        status,
        reason,
        request_line: request_line.map(<[u8]>::to_vec),
    })
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Splits off the next line (without its CRLF or LF) from `buf[pos..]`; returns it and the
/// position after it.
fn next_line(buf: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let rest = buf.get(pos..)?;
    let nl = rest.iter().position(|&b| b == b'\n')?;
    let line = &rest[..nl];
    Some((line.strip_suffix(b"\r").unwrap_or(line), pos + nl + 1))
}

/// Parses the request head at the start of `buf` (CRLF or bare LF line endings; empty lines before
/// the request line are skipped). The request line is checked as soon as it is complete, and the
/// method as soon as it starts, so garbage is rejected without waiting for a blank line.
pub(crate) fn parse(buf: &[u8]) -> Parse {
    let mut start = 0;
    loop {
        match buf.get(start..) {
            Some([b'\n', ..]) => start += 1,
            Some([b'\r', b'\n', ..]) => start += 2,
            _ => break,
        }
    }
    let Some((request_line, mut pos)) = next_line(buf, start) else {
        let rest = &buf[start..];
        if rest == b"\r" {
            return Parse::Partial;
        }
        let method = rest.split(|&b| b == b' ').next().unwrap_or_default();
        if !method.iter().all(|&b| is_token(b)) || rest.first() == Some(&b' ') {
            return reject(400, "not an HTTP request", None);
        }
        if rest.len() > MAX_HEAD {
            return reject(431, "request line too long", None);
        }
        return Parse::Partial;
    };
    if pos - start > MAX_HEAD {
        return reject(431, "request line too long", None);
    }
    let mut parts = request_line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return reject(400, "malformed request line", Some(request_line));
    };
    if method.is_empty() || !method.iter().all(|&b| is_token(b)) {
        return reject(400, "malformed method", Some(request_line));
    }
    if target.is_empty() || target.iter().any(|&b| b < 0x21 || b == 0x7f) {
        return reject(400, "malformed target", Some(request_line));
    }
    let version = match version {
        b"HTTP/1.1" => 1,
        b"HTTP/1.0" => 0,
        _ => return reject(400, "unsupported HTTP version", Some(request_line)),
    };

    let mut headers: Vec<&[u8]> = Vec::new();
    loop {
        let Some((line, next)) = next_line(buf, pos) else {
            if buf.len() - start > MAX_HEAD {
                return reject(431, "request head too large", Some(request_line));
            }
            return Parse::Partial;
        };
        pos = next;
        if pos - start > MAX_HEAD {
            return reject(431, "request head too large", Some(request_line));
        }
        if line.is_empty() {
            break;
        }
        headers.push(line);
    }

    let mut saw_close = false;
    let mut saw_keep_alive = false;
    let mut content_length: Option<usize> = None;
    let mut referer = None;
    let mut user_agent = None;
    for line in headers {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return reject(400, "malformed header line", Some(request_line));
        };
        let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
        if name.is_empty() || !name.iter().all(|&b| is_token(b)) {
            return reject(400, "malformed header name", Some(request_line));
        }
        if name.eq_ignore_ascii_case(b"connection") {
            for token in value.split(|&b| b == b',').map(trim) {
                saw_close |= token.eq_ignore_ascii_case(b"close");
                saw_keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let parsed = std::str::from_utf8(value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<usize>().ok());
            match (parsed, content_length) {
                (Some(n), None) => content_length = Some(n),
                (Some(n), Some(m)) if n == m => {}
                _ => return reject(400, "bad Content-Length", Some(request_line)),
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return reject(
                501,
                "Transfer-Encoding is not supported",
                Some(request_line),
            );
        } else if name.eq_ignore_ascii_case(b"referer") {
            referer.get_or_insert_with(|| value.to_vec());
        } else if name.eq_ignore_ascii_case(b"user-agent") {
            user_agent.get_or_insert_with(|| value.to_vec());
        }
    }

    Parse::Complete(Head {
        method: String::from_utf8_lossy(method).into_owned(),
        target: target.to_vec(),
        version,
        request_line: request_line.to_vec(),
        keep_alive: !saw_close && (version == 1 || saw_keep_alive),
        content_length: content_length.unwrap_or(0),
        referer,
        user_agent,
        len: pos,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(buf: &[u8]) -> Head {
        match parse(buf) {
            Parse::Complete(h) => h,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn simple_get() {
        let h =
            head(b"GET /leak?kb=4 HTTP/1.1\r\nHost: a\r\nUser-Agent: curl/8\r\n\r\nGET / HTTP/1.1");
        assert_eq!(h.method, "GET");
        assert_eq!(h.target, b"/leak?kb=4");
        assert_eq!(h.version, 1);
        assert!(h.keep_alive);
        assert_eq!(h.user_agent.as_deref(), Some(b"curl/8".as_slice()));
        assert_eq!(h.len, 56);
    }

    #[test]
    fn partial_and_split() {
        let full = b"\r\nGET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
        for i in 0..full.len() {
            assert_eq!(parse(&full[..i]), Parse::Partial, "{i}");
        }
        let h = head(full);
        assert!(h.keep_alive);
        assert_eq!(h.len, full.len());
    }

    #[test]
    fn connection_close_and_http10_default() {
        assert!(!head(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!head(b"GET / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n").keep_alive);
        assert!(!head(b"GET / HTTP/1.0\n\n").keep_alive);
    }

    #[test]
    fn rejections() {
        for (input, status) in [
            (b"GET /\r\n\r\n".as_slice(), 400),
            (b"GET  / HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/2.0\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
            (
                b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                400,
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                501,
            ),
            (b"\x16\x03\x01\x02\x00\n", 400),
        ] {
            match parse(input) {
                Parse::Reject(r) => assert_eq!(r.status, status, "{input:?}"),
                other => panic!("{input:?}: {other:?}"),
            }
        }
        let big = [b"GET /".as_slice(), &[b'a'; MAX_HEAD + 1]].concat();
        assert!(matches!(
            parse(&big),
            Parse::Reject(Rejection { status: 431, .. })
        ));
        // Garbage is rejected before any line ending arrives.
        assert!(matches!(
            parse(b"\x16\x03\x01"),
            Parse::Reject(Rejection { status: 400, .. })
        ));
        assert_eq!(parse(b"GE"), Parse::Partial);
    }
}
