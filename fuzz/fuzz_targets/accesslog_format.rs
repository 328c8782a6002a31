//! Arbitrary text as an Apache `LogFormat` string (the first line; also tried as a built-in name),
//! compiled into a matcher that then parses the remaining lines. Neither compiling nor parsing
//! may panic, and a compiled format parses the same with and without the date cache.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memwatch::capture::accesslog::{Format, LogParser, MAX_REJECT_RAW};

fuzz_target!(|data: &[u8]| {
    let (spec, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(nl) => (&data[..nl], &data[nl + 1..]),
        None => (data, &[][..]),
    };
    let Ok(spec) = std::str::from_utf8(spec) else {
        return;
    };
    let format = match Format::from_name_or_log_format(spec) {
        Ok(format) => format,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let _ = format.name();
    let _ = format.time_anchor();
    let mut parser = LogParser::new(format.clone());
    for line in rest.split(|&b| b == b'\n') {
        let once = format.parse_line(line);
        match parser.parse(line) {
            Ok(parsed) => {
                assert!(once.is_ok(), "the date cache changes nothing");
                let _ = parsed.has_valid_request();
                let _ = parsed.client_addrs().count();
                let _ = parsed.approx_response_end();
                let _ = format!("{parsed:?}");
            }
            Err(reject) => {
                assert!(once.is_err(), "the date cache changes nothing");
                assert!(reject.raw.len() <= MAX_REJECT_RAW);
            }
        }
    }
});
