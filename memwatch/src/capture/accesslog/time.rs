//! Timestamps: Apache `%t` (`10/Oct/2000:13:55:36 -0700`) and epoch forms (`%{msec}t`).
//!
//! The day/month/year part goes through chrono (month names included) and is cached, since it
//! changes once a day; hours, minutes, seconds and the offset are plain digits.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, TimeZone as _};

/// Remembers the last date part seen, so most lines skip chrono's date parser.
#[derive(Debug, Default, Clone)]
pub(crate) struct DateCache {
    last: Option<([u8; 11], NaiveDate)>,
}

impl DateCache {
    fn date(&mut self, text: &[u8]) -> Option<NaiveDate> {
        let key: [u8; 11] = text.try_into().ok()?;
        if let Some((cached, date)) = &self.last
            && *cached == key
        {
            return Some(*date);
        }
        let s = std::str::from_utf8(text).ok()?;
        let date = NaiveDate::parse_from_str(s, "%d/%b/%Y").ok()?;
        self.last = Some((key, date));
        Some(date)
    }
}

/// Parses `dd/Mon/yyyy:HH:MM:SS[.fraction] ±hhmm` (the inside of `%t`'s brackets).
pub(crate) fn parse_clf(text: &[u8], cache: &mut DateCache) -> Option<DateTime<FixedOffset>> {
    // dd/Mon/yyyy:HH:MM:SS is 20 bytes.
    if text.len() < 26 || text.get(11) != Some(&b':') {
        return None;
    }
    let date = cache.date(&text[..11])?;
    let (hms, rest) = text[12..].split_at(8);
    if hms[2] != b':' || hms[5] != b':' {
        return None;
    }
    let hour = two_digits(&hms[0..2])?;
    let minute = two_digits(&hms[3..5])?;
    let second = two_digits(&hms[6..8])?;
    // Optional fraction of a second (not written by stock Apache or nginx, but harmless).
    let (nanos, rest) = match rest.split_first() {
        Some((b'.', frac)) => {
            let digits = frac.iter().take_while(|b| b.is_ascii_digit()).count();
            if digits == 0 || digits > 9 {
                return None;
            }
            let mut nanos = 0u32;
            for &d in &frac[..digits] {
                nanos = nanos * 10 + u32::from(d - b'0');
            }
            nanos *= 10u32.pow(9 - u32::try_from(digits).ok()?);
            (nanos, &frac[digits..])
        }
        _ => (0, rest),
    };
    let [b' ', sign, h1, h2, m1, m2] = *rest else {
        return None;
    };
    let off_h = two_digits(&[h1, h2])?;
    let off_m = two_digits(&[m1, m2])?;
    if off_m >= 60 {
        return None;
    }
    let off_secs = i32::try_from(off_h * 3600 + off_m * 60).ok()?;
    let offset = match sign {
        b'+' => FixedOffset::east_opt(off_secs)?,
        b'-' => FixedOffset::west_opt(off_secs)?,
        _ => return None,
    };
    let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?;
    offset.from_local_datetime(&date.and_time(time)).single()
}

/// Unit of an epoch timestamp (`%{sec}t`, `%{msec}t`, `%{usec}t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EpochUnit {
    Seconds,
    Millis,
    Micros,
}

/// Parses an integer epoch timestamp (UTC).
pub(crate) fn parse_epoch(text: &[u8], unit: EpochUnit) -> Option<DateTime<FixedOffset>> {
    let value = parse_u64(text)?;
    let value = i64::try_from(value).ok()?;
    let utc = match unit {
        EpochUnit::Seconds => DateTime::from_timestamp(value, 0)?,
        EpochUnit::Millis => DateTime::from_timestamp_millis(value)?,
        EpochUnit::Micros => DateTime::from_timestamp_micros(value)?,
    };
    Some(utc.fixed_offset())
}

fn two_digits(b: &[u8]) -> Option<u32> {
    match *b {
        [a @ b'0'..=b'9', c @ b'0'..=b'9'] => Some(u32::from(a - b'0') * 10 + u32::from(c - b'0')),
        _ => None,
    }
}

/// Parses 1 to 20 ASCII digits without overflow.
pub(crate) fn parse_u64(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 20 {
        return None;
    }
    let mut value: u64 = 0;
    for &b in text {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clf(s: &str) -> Option<DateTime<FixedOffset>> {
        parse_clf(s.as_bytes(), &mut DateCache::default())
    }

    #[test]
    fn negative_offset_converts_to_the_right_instant() {
        let t = clf("10/Oct/2000:13:55:36 -0700").unwrap();
        // 13:55:36 at UTC-7 is 20:55:36 UTC.
        assert_eq!(t.timestamp(), 971_211_336);
        assert_eq!(t.offset().local_minus_utc(), -7 * 3600);
        assert_eq!(t.to_rfc3339(), "2000-10-10T13:55:36-07:00");
    }

    #[test]
    fn half_hour_offset() {
        let t = clf("10/Oct/2000:13:55:36 +0530").unwrap();
        // 13:55:36 at UTC+5:30 is 08:25:36 UTC.
        assert_eq!(t.timestamp(), 971_166_336);
        assert_eq!(t.offset().local_minus_utc(), 5 * 3600 + 30 * 60);
    }

    #[test]
    fn same_instant_from_different_offsets() {
        let a = clf("01/Jan/2024:00:30:00 +0100").unwrap();
        let b = clf("31/Dec/2023:23:30:00 +0000").unwrap();
        assert_eq!(a.timestamp_millis(), b.timestamp_millis());
        assert_ne!(a.offset(), b.offset());
    }

    #[test]
    fn fraction_of_a_second() {
        let t = clf("10/Oct/2000:13:55:36.250 +0000").unwrap();
        assert_eq!(t.timestamp_millis(), 971_186_136_250);
    }

    #[test]
    fn cache_returns_same_results() {
        let mut cache = DateCache::default();
        let a = parse_clf(b"10/Oct/2000:13:55:36 +0000", &mut cache).unwrap();
        let b = parse_clf(b"10/Oct/2000:13:55:37 +0000", &mut cache).unwrap();
        let c = parse_clf(b"11/Oct/2000:13:55:37 +0000", &mut cache).unwrap();
        assert_eq!(b.timestamp() - a.timestamp(), 1);
        assert_eq!(c.timestamp() - b.timestamp(), 86_400);
    }

    #[test]
    fn bad_timestamps() {
        for bad in [
            "",
            "10/Oct/2000:13:55:36",
            "10/Oct/2000:13:55:36 0700",
            "10/Foo/2000:13:55:36 +0000",
            "32/Oct/2000:13:55:36 +0000",
            "10/Oct/2000:25:55:36 +0000",
            "10/Oct/2000:13:61:36 +0000",
            "10/Oct/2000:13:55:36 +2400",
            "10/Oct/2000:13:55:36 +0099",
            "10/Oct/2000 13:55:36 +0000",
            "10/Oct/2000:13:55:36 +0000x",
            "10/Oct/2000:13:55:36. +0000",
            "29/Feb/2001:13:55:36 +0000",
        ] {
            assert_eq!(clf(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn epoch_forms() {
        let t = parse_epoch(b"971186136", EpochUnit::Seconds).unwrap();
        assert_eq!(t.timestamp(), 971_186_136);
        let t = parse_epoch(b"971186136250", EpochUnit::Millis).unwrap();
        assert_eq!(t.timestamp_millis(), 971_186_136_250);
        let t = parse_epoch(b"971186136250001", EpochUnit::Micros).unwrap();
        assert_eq!(t.timestamp_micros(), 971_186_136_250_001);
        assert_eq!(
            parse_epoch(b"99999999999999999999", EpochUnit::Seconds),
            None
        );
        assert_eq!(parse_epoch(b"12a", EpochUnit::Seconds), None);
    }

    #[test]
    fn parse_u64_bounds() {
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"-1"), None);
    }
}
