//! Arbitrary bytes as access-log lines: every built-in format, format detection, and a few
//! LogFormats that together use every kind of directive, through [`LogParser`] (which caches
//! dates between lines) and [`Format::parse_line`]. Nothing may panic, a rejected line's text
//! stays bounded, and the counts add up. The LogFormat compiler has its own target,
//! `accesslog_format`.
#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use memwatch::capture::accesslog::{
    AccessLine, BUILTIN_NAMES, Format, LogParser, MAX_REJECT_RAW, detect_format,
};

/// LogFormats beyond the built-in ones: durations, epoch and strftime times with `begin:`/`end:`,
/// `%m %U%q %H`, `%v:%p`, headers, conditions, literals.
const SPECS: &[&str] = &[
    r#"%h %l %u %t "%r" %>s %b %D"#,
    r#"%a %{c}a %v:%p "%m %U%q %H" %s %B %T "%{X-Forwarded-For}i" %{end:msec}t"#,
    r#"%{begin:usec}t %V %>s %O %{ms}T [%{%d/%b/%Y:%H:%M:%S %z}t] "%{User-Agent}i" %!200{Referer}i 100%%"#,
    r#"%{sec}t\t%h\t%I\t%P\t"%r"\t%<s\t%{Set-Cookie}o"#,
];

thread_local! {
    /// One parser per format, made once: they keep their counts and date cache across inputs, as
    /// they do across the lines of a log.
    static PARSERS: RefCell<Vec<LogParser>> = RefCell::new(
        BUILTIN_NAMES
            .iter()
            .map(|name| Format::named(name).expect("built-in formats compile"))
            .chain(
                SPECS
                    .iter()
                    .map(|spec| Format::from_log_format(spec).expect("the specs compile")),
            )
            .map(LogParser::new)
            .collect(),
    );
}

fn touch(line: &AccessLine) {
    let _ = line.has_valid_request();
    let _ = line.http_version();
    let _ = line.client_addrs().count();
    let _ = line.approx_response_end();
}

fuzz_target!(|data: &[u8]| {
    let lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    PARSERS.with_borrow_mut(|parsers| {
        for parser in parsers {
            let before = parser.counts().clone();
            for line in &lines {
                let once = parser.format().parse_line(line);
                let cached = parser.parse(line);
                assert_eq!(
                    once.is_ok(),
                    cached.is_ok(),
                    "the date cache changes nothing"
                );
                match cached {
                    Ok(parsed) => touch(&parsed),
                    Err(reject) => assert!(reject.raw.len() <= MAX_REJECT_RAW),
                }
            }
            let counts = parser.counts();
            assert_eq!(counts.lines, before.lines + lines.len() as u64);
            assert_eq!(counts.parsed + counts.rejected_total(), counts.lines);
        }
    });
    if let Ok(detection) = detect_format(lines.iter()) {
        assert!(detection.parsed <= detection.sampled);
    }
});
