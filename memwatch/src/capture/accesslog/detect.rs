//! Auto-detection: try each built-in format on the first lines, keep the one that parses best.

use super::error::AccessLogError;
use super::format::{Format, truncate};
use super::time::DateCache;

/// How many non-empty lines detection looks at.
pub const DETECT_SAMPLE_LINES: usize = 20;

/// Formats detection chooses from, in preference order for ties. (`nginx` has the same layout
/// as `combined`, so it cannot be told apart from lines.)
const CANDIDATES: [&str; 3] = ["combined", "common", "vhost_combined"];

/// The outcome of [`detect_format`].
#[derive(Debug, Clone)]
pub struct Detection {
    /// The chosen format; [`Format::name`] says which.
    pub format: Format,
    /// Non-empty lines looked at.
    pub sampled: usize,
    /// How many of them the chosen format parsed.
    pub parsed: usize,
}

/// Picks the built-in format that parses most of the first [`DETECT_SAMPLE_LINES`] non-empty
/// lines; among equals, the one that needs the least leniency (missing or extra trailing
/// fields), then `combined` before `common` before `vhost_combined`.
pub fn detect_format<I, L>(lines: I) -> Result<Detection, AccessLogError>
where
    I: IntoIterator<Item = L>,
    L: AsRef<[u8]>,
{
    let sample: Vec<L> = lines
        .into_iter()
        .filter(|l| !l.as_ref().iter().all(u8::is_ascii_whitespace))
        .take(DETECT_SAMPLE_LINES)
        .collect();
    let mut best: Option<(usize, usize, Format)> = None;
    for name in CANDIDATES {
        let format = Format::named(name)?;
        let mut cache = DateCache::default();
        let (mut parsed, mut exact) = (0, 0);
        for line in &sample {
            if let Ok((_, was_exact)) = format.parse_primary(line.as_ref(), &mut cache) {
                parsed += 1;
                exact += usize::from(was_exact);
            }
        }
        tracing::debug!(
            format = name,
            parsed,
            exact,
            sampled = sample.len(),
            "format detection"
        );
        let better = match &best {
            None => parsed > 0,
            Some((best_parsed, best_exact, _)) => (parsed, exact) > (*best_parsed, *best_exact),
        };
        if better {
            best = Some((parsed, exact, format));
        }
    }
    match best {
        Some((parsed, _, format)) => Ok(Detection {
            format,
            sampled: sample.len(),
            parsed,
        }),
        None => Err(AccessLogError::NoFormatDetected {
            sampled: sample.len(),
            first_line: sample
                .first()
                .map(|l| truncate(&String::from_utf8_lossy(l.as_ref()), 200))
                .unwrap_or_default(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMBINED_LINE: &str =
        r#"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 2326 "-" "curl/8""#;
    const COMMON_LINE: &str =
        r#"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 2326"#;
    const VHOST_LINE: &str = r#"example.com:443 1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 2326 "-" "curl/8""#;

    fn detected(lines: &[&str]) -> (String, usize, usize) {
        let d = detect_format(lines).unwrap();
        (d.format.name().to_owned(), d.parsed, d.sampled)
    }

    #[test]
    fn picks_each_builtin() {
        assert_eq!(detected(&[COMBINED_LINE; 3]), ("combined".into(), 3, 3));
        assert_eq!(detected(&[COMMON_LINE; 3]), ("common".into(), 3, 3));
        assert_eq!(detected(&[VHOST_LINE; 3]), ("vhost_combined".into(), 3, 3));
    }

    #[test]
    fn best_parse_rate_wins() {
        // Two vhost lines and one combined line: vhost_combined parses 2, combined 1.
        assert_eq!(
            detected(&[VHOST_LINE, COMBINED_LINE, VHOST_LINE]),
            ("vhost_combined".into(), 2, 3)
        );
        // Mostly common with one combined line: both parse all, common needs less leniency.
        assert_eq!(
            detected(&[COMMON_LINE, COMMON_LINE, COMBINED_LINE]),
            ("common".into(), 3, 3)
        );
    }

    #[test]
    fn samples_only_the_first_non_empty_lines() {
        let mut lines = vec!["", "  "];
        lines.extend([COMMON_LINE; DETECT_SAMPLE_LINES]);
        lines.extend([COMBINED_LINE; 50]);
        assert_eq!(
            detected(&lines),
            ("common".into(), DETECT_SAMPLE_LINES, DETECT_SAMPLE_LINES)
        );
    }

    #[test]
    fn nothing_parses() {
        let e = detect_format(["hello world", "[error] something"]).unwrap_err();
        assert_eq!(
            e,
            AccessLogError::NoFormatDetected {
                sampled: 2,
                first_line: "hello world".into()
            }
        );
        let e = detect_format(Vec::<&str>::new()).unwrap_err();
        assert!(matches!(
            e,
            AccessLogError::NoFormatDetected { sampled: 0, .. }
        ));
    }
}
