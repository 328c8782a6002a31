//! Decoding of the escapes web servers write inside log fields.
//!
//! - Apache (`ap_escape_logitem`): `\"`, `\\`, `\b \n \r \t \v`, and lowercase `\xhh` for other
//!   non-printable bytes.
//! - nginx: `"`, `\` and non-printable bytes as uppercase `\xHH` (so `"` is `\x22`).
//!
//! Both are decoded by the same function; a backslash that starts none of these is kept as is.

use std::borrow::Cow;

/// Decodes Apache and nginx log escapes. Borrows when there is nothing to decode.
///
/// The result is bytes: `\xhh` may produce any byte, including invalid UTF-8.
pub(super) fn unescape(input: &[u8]) -> Cow<'_, [u8]> {
    let Some(first) = input.iter().position(|&b| b == b'\\') else {
        return Cow::Borrowed(input);
    };
    let mut out = Vec::with_capacity(input.len());
    out.extend_from_slice(&input[..first]);
    let mut i = first;
    while i < input.len() {
        let b = input[i];
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let next = input.get(i + 1).copied();
        let simple = match next {
            Some(b'"') => Some(b'"'),
            Some(b'\\') => Some(b'\\'),
            Some(b'b') => Some(0x08),
            Some(b'n') => Some(b'\n'),
            Some(b'r') => Some(b'\r'),
            Some(b't') => Some(b'\t'),
            Some(b'v') => Some(0x0b),
            _ => None,
        };
        if let Some(decoded) = simple {
            out.push(decoded);
            i += 2;
            continue;
        }
        if next == Some(b'x')
            && let (Some(hi), Some(lo)) = (
                input.get(i + 2).copied().and_then(hex_value),
                input.get(i + 3).copied().and_then(hex_value),
            )
        {
            out.push(hi << 4 | lo);
            i += 4;
            continue;
        }
        // Not an escape we know: keep the backslash literally.
        out.push(b'\\');
        i += 1;
    }
    Cow::Owned(out)
}

/// Decodes escapes into a `String`, replacing bytes that are not UTF-8 with U+FFFD.
pub(super) fn unescape_to_string(input: &str) -> String {
    match unescape(input.as_bytes()) {
        Cow::Borrowed(_) => input.to_owned(),
        Cow::Owned(bytes) => match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        },
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_to_decode_borrows() {
        assert!(matches!(unescape(b"GET / HTTP/1.1"), Cow::Borrowed(_)));
    }

    #[test]
    fn apache_style() {
        assert_eq!(
            &*unescape(br#"say \"hi\" c:\\dir \xc3\xa9 \t"#),
            b"say \"hi\" c:\\dir \xc3\xa9 \t"
        );
        assert_eq!(unescape_to_string(r"caf\xc3\xa9"), "café");
    }

    #[test]
    fn nginx_style() {
        assert_eq!(
            &*unescape(br"say \x22hi\x22 c:\x5Cdir \xC3\xA9"),
            b"say \"hi\" c:\\dir \xc3\xa9"
        );
        assert_eq!(unescape_to_string(r"caf\xC3\xA9"), "café");
    }

    #[test]
    fn control_escapes() {
        assert_eq!(&*unescape(br"\b\n\r\t\v"), b"\x08\n\r\t\x0b");
    }

    #[test]
    fn unknown_and_truncated_escapes_are_kept() {
        assert_eq!(&*unescape(br"a\qb"), br"a\qb");
        assert_eq!(&*unescape(br"a\x4"), br"a\x4");
        assert_eq!(&*unescape(br"a\xzz"), br"a\xzz");
        assert_eq!(&*unescape(br"end\"), br"end\");
        assert_eq!(&*unescape(br"\x"), br"\x");
    }

    #[test]
    fn invalid_utf8_becomes_replacement_char() {
        assert_eq!(unescape_to_string(r"\xff\xfe"), "\u{fffd}\u{fffd}");
    }
}
