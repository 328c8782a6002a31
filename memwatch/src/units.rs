//! Units: nanoseconds per second, the one conversion between the nanoseconds every timestamp
//! is kept in and the seconds rollups and people read; byte counts as text for people (used by
//! the views and the live status line), and text from outside cut to a bound; and counts moved
//! between signed and unsigned without wrapping, for figures read from a file that may be
//! corrupt.

/// Nanoseconds in a second. Every timestamp memwatch keeps is in nanoseconds; the recording's
/// rollups key them by the second (`ns.div_euclid(NS_PER_SEC)`).
pub const NS_PER_SEC: i64 = 1_000_000_000;

/// A count read as signed: 0 when negative.
pub fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// A count as signed, for arithmetic with byte figures: `i64::MAX` when larger.
pub fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary: how text
/// from traffic, logs and traced processes is bounded everywhere.
pub fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Human-readable signed byte count.
pub fn bytes(b: i64) -> String {
    let sign = if b < 0 { "-" } else { "" };
    let v = b.unsigned_abs() as f64;
    if v >= 1024.0 * 1024.0 * 1024.0 {
        format!("{sign}{:.2} GiB", v / (1024.0 * 1024.0 * 1024.0))
    } else if v >= 1024.0 * 1024.0 {
        format!("{sign}{:.1} MiB", v / (1024.0 * 1024.0))
    } else if v >= 1024.0 {
        format!("{sign}{:.1} KiB", v / 1024.0)
    } else {
        format!("{sign}{v} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_keeps_whole_characters() {
        assert_eq!(cut("abc", 5), "abc");
        assert_eq!(cut("abcdef", 3), "abc");
        // é is two bytes: a cut through it keeps the characters before it.
        assert_eq!(cut("aéé", 4), "aé");
        assert_eq!(cut("éé", 1), "");
    }
}
