//! Arbitrary bytes through the access-log parser: every built-in format, detection, and the
//! LogFormat compiler (the first line is compiled as a LogFormat, the rest parsed with it).
//! Nothing may panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use memwatch::capture::accesslog::{BUILTIN_NAMES, Format, LogParser, detect_format};

static BUILTIN: OnceLock<Vec<Format>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let builtin = BUILTIN.get_or_init(|| {
        BUILTIN_NAMES
            .iter()
            .map(|name| Format::named(name).expect("built-in formats compile"))
            .collect()
    });
    for format in builtin {
        let _ = format.parse_line(data);
    }
    let _ = detect_format(data.split(|&b| b == b'\n'));

    let (spec, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(nl) => (&data[..nl], &data[nl + 1..]),
        None => (data, &[][..]),
    };
    if let Ok(spec) = std::str::from_utf8(spec)
        && let Ok(format) = Format::from_log_format(spec)
    {
        let mut parser = LogParser::new(format);
        for line in rest.split(|&b| b == b'\n') {
            let _ = parser.parse(line);
        }
    }
});
