//! Splitting a logged request line (`%r`) into method, target and protocol.
//!
//! Scanners send anything: TLS handshakes, RAT beacons, `"-"`, `""`. A request line is valid only
//! if its method is an upper-case token and its protocol (when present) is `HTTP/x[.y]`; anything
//! else is kept raw with no method/target/protocol.

use super::escape::unescape;

/// The parts of a valid request line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestParts {
    pub method: String,
    pub target: String,
    /// `None` for an HTTP/0.9-style `GET /path`.
    pub protocol: Option<String>,
}

/// Longest method accepted (`VERSION-CONTROL` and friends are 15).
const MAX_METHOD_LEN: usize = 32;

/// Splits a request line as logged (escapes still in it). `None` if it is not a valid request.
pub(crate) fn split_request(raw: &str) -> Option<RequestParts> {
    let decoded = unescape(raw.as_bytes());
    let line: &[u8] = &decoded;
    let first_space = line.iter().position(|&b| b == b' ')?;
    let method = &line[..first_space];
    if method.is_empty()
        || method.len() > MAX_METHOD_LEN
        || !method
            .iter()
            .all(|&b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return None;
    }
    let rest = &line[first_space + 1..];
    // The protocol is the last word if it looks like one; a target may hold raw spaces.
    let (target, protocol) = match rest.iter().rposition(|&b| b == b' ') {
        Some(last_space) if is_protocol(&rest[last_space + 1..]) => {
            (&rest[..last_space], Some(&rest[last_space + 1..]))
        }
        _ if is_protocol(rest) => return None,
        _ => (rest, None),
    };
    if target.is_empty() || target.iter().any(|&b| b.is_ascii_control()) {
        return None;
    }
    // HTTP/0.9 requests have no protocol and must have an origin-form target.
    if protocol.is_none() && (target[0] != b'/' || target.contains(&b' ')) {
        return None;
    }
    Some(RequestParts {
        // The method is ASCII by the check above.
        method: String::from_utf8_lossy(method).into_owned(),
        target: String::from_utf8_lossy(target).into_owned(),
        protocol: protocol.map(|p| String::from_utf8_lossy(p).into_owned()),
    })
}

/// `HTTP/` followed by a digit, optionally `.digit`.
pub(crate) fn is_protocol(word: &[u8]) -> bool {
    match word.strip_prefix(b"HTTP/") {
        Some([major]) => major.is_ascii_digit(),
        Some([major, b'.', minor]) => major.is_ascii_digit() && minor.is_ascii_digit(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(raw: &str) -> Option<(String, String, Option<String>)> {
        split_request(raw).map(|p| (p.method, p.target, p.protocol))
    }

    #[test]
    fn ordinary_request() {
        assert_eq!(
            parts("GET /a/b?x=1 HTTP/1.1"),
            Some(("GET".into(), "/a/b?x=1".into(), Some("HTTP/1.1".into())))
        );
        assert_eq!(
            parts("PRI * HTTP/2.0"),
            Some(("PRI".into(), "*".into(), Some("HTTP/2.0".into())))
        );
        assert_eq!(
            parts("GET / HTTP/2"),
            Some(("GET".into(), "/".into(), Some("HTTP/2".into())))
        );
    }

    #[test]
    fn connect_and_absolute_targets() {
        assert_eq!(
            parts("CONNECT 123.123.123.123 HTTP/1.1"),
            Some((
                "CONNECT".into(),
                "123.123.123.123".into(),
                Some("HTTP/1.1".into())
            ))
        );
        assert_eq!(
            parts("GET http://example.com/ HTTP/1.0").map(|p| p.1),
            Some("http://example.com/".into())
        );
    }

    #[test]
    fn raw_space_in_target_is_kept() {
        assert_eq!(parts("GET /a b HTTP/1.1").map(|p| p.1), Some("/a b".into()));
    }

    #[test]
    fn escaped_target_is_decoded() {
        assert_eq!(
            parts(r#"GET /say\"hi\" HTTP/1.1"#).map(|p| p.1),
            Some("/say\"hi\"".into())
        );
        assert_eq!(
            parts(r"GET /caf\xC3\xA9 HTTP/1.1").map(|p| p.1),
            Some("/café".into())
        );
    }

    #[test]
    fn http09() {
        assert_eq!(parts("GET /"), Some(("GET".into(), "/".into(), None)));
        assert_eq!(parts("GET x"), None);
    }

    #[test]
    fn garbage_is_not_a_request() {
        for raw in [
            "",
            "-",
            "HELP",
            "batman",
            " / HTTP/1.1",
            "GET",
            "GET ",
            "GET  HTTP/1.1",
            "get / HTTP/1.1",
            "GET HTTP/1.1",
            r"\x16\x03\x01\x01 \x02",
            r"\x16\x03\x01",
            r"Gh0st\xAD\x00\x00\x00\xE0\x00",
            "lv|'|'|VHJvamFuX0M0NkY2RTk=|'|'|MARK|'|'|Win XP|'|'|No",
            r"\x03\x00\x00/*\xE0\x00\x00\x00\x00\x00Cookie: mstshash=Administr",
            r"GET /\x00 HTTP/1.1",
        ] {
            assert_eq!(parts(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn protocol_shapes() {
        assert!(is_protocol(b"HTTP/1.1"));
        assert!(is_protocol(b"HTTP/2"));
        assert!(!is_protocol(b"HTTP/"));
        assert!(!is_protocol(b"HTTP/1.10"));
        assert!(!is_protocol(b"http/1.1"));
    }
}
