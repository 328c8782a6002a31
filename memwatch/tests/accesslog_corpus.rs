//! The access-log parser against real logs: `../shared/corpus/access-logs/` (see its
//! SOURCES.md). Exact parsed/rejected counts per file, which lines are rejected and why, and for
//! the crowdsec fixtures, every field crowdsec's own parser extracts.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use memwatch::capture::accesslog::{
    AccessLine, IngestCounts, LogParser, MAX_REJECT_RAW, Reject, RejectReason, detect_format,
};

/// The corpus beside the checkout, or None when it is absent: the tests then pass as skipped and
/// say so on the terminal, except under CI (`CI=true`), where the corpus is always laid beside
/// the clone and its absence is a failure.
fn corpus_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/access-logs");
    if dir.join("SOURCES.md").is_file() {
        return Some(dir);
    }
    let message = format!(
        "the access-log corpus is missing: expected {} (with SOURCES.md) beside the project \
         checkout",
        dir.display()
    );
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{message}; CI=true requires it"
    );
    // Written to the process's stderr directly, not through eprintln!, which the test harness
    // captures and hides for a passing test: a skip must be seen.
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "SKIPPED corpus test: {message}");
    None
}

/// Expected outcome for one corpus file.
struct Expect {
    file: &'static str,
    /// Format picked by detection, and how many of the sampled lines it parsed.
    detected: (&'static str, usize, usize),
    lines: u64,
    parsed: u64,
    /// Rejected lines: 1-based line number in the file, and why.
    rejects: &'static [(usize, RejectReason)],
    /// Parsed lines whose request is not a valid HTTP request (`-`, `""`, scanner garbage).
    invalid_requests: usize,
}

const EXPECTED: &[Expect] = &[
    Expect {
        file: "elastic_apache_logs.log",
        detected: ("combined", 20, 20),
        lines: 10_000,
        parsed: 9_999,
        // The User-Agent quote never closes.
        rejects: &[(8899, RejectReason::UnterminatedQuote)],
        invalid_requests: 0,
    },
    Expect {
        file: "lnav/logfile_access_log.0",
        detected: ("combined", 3, 3),
        lines: 3,
        parsed: 3,
        rejects: &[],
        invalid_requests: 0,
    },
    Expect {
        file: "lnav/logfile_access_log.1",
        detected: ("combined", 1, 1),
        lines: 1,
        parsed: 1,
        rejects: &[],
        invalid_requests: 1,
    },
    Expect {
        file: "beats/apache_access_test.log",
        // The vhost line parses through the vhost_combined fallback.
        detected: ("combined", 6, 7),
        lines: 7,
        parsed: 7,
        rejects: &[],
        invalid_requests: 2,
    },
    Expect {
        file: "beats/nginx_access_test.log",
        detected: ("combined", 5, 7),
        lines: 7,
        parsed: 5,
        // A custom nginx format with a leading X-Forwarded-For field (quoted, then bare) before
        // the client: not combined. They parse with an explicit LogFormat (see the unit tests).
        rejects: &[
            (5, RejectReason::MissingTimestamp),
            (6, RejectReason::MissingTimestamp),
        ],
        invalid_requests: 1,
    },
    Expect {
        file: "fail2ban/apache-badbots",
        detected: ("combined", 3, 4),
        lines: 4,
        parsed: 4,
        rejects: &[],
        invalid_requests: 0,
    },
    Expect {
        file: "fail2ban/nginx-bad-request",
        detected: ("combined", 8, 8),
        lines: 8,
        parsed: 8,
        rejects: &[],
        invalid_requests: 5,
    },
    Expect {
        file: "fail2ban/nginx-botsearch",
        detected: ("combined", 8, 14),
        lines: 14,
        parsed: 8,
        // nginx error-log lines, plain and through the systemd journal.
        rejects: &[
            (26, RejectReason::MissingTimestamp),
            (29, RejectReason::MissingTimestamp),
            (32, RejectReason::MissingTimestamp),
            (35, RejectReason::MissingTimestamp),
            (40, RejectReason::MissingTimestamp),
            (43, RejectReason::MissingTimestamp),
        ],
        invalid_requests: 0,
    },
    Expect {
        file: "fail2ban/php-url-fopen",
        detected: ("combined", 1, 1),
        lines: 1,
        parsed: 1,
        rejects: &[],
        invalid_requests: 0,
    },
    Expect {
        file: "crowdsec/apache2-logs__apache2-logs.log",
        detected: ("combined", 5, 9),
        lines: 9,
        parsed: 7,
        // Apache error-log lines.
        rejects: &[
            (8, RejectReason::MissingTimestamp),
            (9, RejectReason::MissingTimestamp),
        ],
        invalid_requests: 0,
    },
    Expect {
        file: "crowdsec/apache2-malformed__apache2-logs.log",
        detected: ("combined", 11, 11),
        lines: 11,
        parsed: 11,
        rejects: &[],
        invalid_requests: 11,
    },
    Expect {
        file: "crowdsec/nginx-http-malformed__nginx_http-logs.log",
        detected: ("combined", 12, 12),
        lines: 12,
        parsed: 12,
        rejects: &[],
        invalid_requests: 12,
    },
    Expect {
        file: "crowdsec/nginx_http-logs__nginx_http-logs.log",
        detected: ("combined", 4, 9),
        lines: 9,
        parsed: 8,
        // An nginx error-log line.
        rejects: &[(9, RejectReason::MissingTimestamp)],
        invalid_requests: 0,
    },
];

/// The lines of a corpus file with their 1-based numbers. fail2ban fixtures interleave their
/// own `# ...` comments and blank separators, which are not log lines.
fn log_lines(file: &str, data: &[u8]) -> Vec<(usize, Vec<u8>)> {
    let fixture_comments = file.starts_with("fail2ban/");
    let mut lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines
        .into_iter()
        .enumerate()
        .filter(|(_, l)| !(fixture_comments && (l.starts_with(b"# ") || l.is_empty())))
        .map(|(i, l)| (i + 1, l.to_vec()))
        .collect()
}

struct Outcome {
    counts: IngestCounts,
    /// Per line number: the parsed line or the reject.
    results: Vec<(usize, Result<AccessLine, Reject>)>,
}

fn run(dir: &Path, file: &str) -> Outcome {
    let data = fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    let lines = log_lines(file, &data);
    let detection = detect_format(lines.iter().map(|(_, l)| l))
        .unwrap_or_else(|e| panic!("{file}: detection failed: {e}"));
    let mut parser = LogParser::new(detection.format.clone());
    let results = lines
        .iter()
        .map(|(n, line)| (*n, parser.parse(line)))
        .collect();
    let expect = EXPECTED.iter().find(|e| e.file == file).unwrap();
    assert_eq!(
        (detection.format.name(), detection.parsed, detection.sampled),
        expect.detected,
        "{file}: detection"
    );
    Outcome {
        counts: parser.counts().clone(),
        results,
    }
}

#[test]
fn every_corpus_file_is_covered() {
    let Some(dir) = corpus_dir() else { return };
    let mut found = BTreeSet::new();
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(&dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                if rel != "SOURCES.md" && !rel.ends_with(".assert") {
                    found.insert(rel);
                }
            }
        }
    }
    let expected: BTreeSet<String> = EXPECTED.iter().map(|e| e.file.to_owned()).collect();
    assert_eq!(found, expected, "corpus files and EXPECTED differ");
}

#[test]
fn exact_counts_and_rejects_per_file() {
    let Some(dir) = corpus_dir() else { return };
    for expect in EXPECTED {
        let file = expect.file;
        let Outcome { counts, results } = run(&dir, file);
        assert_eq!(counts.lines, expect.lines, "{file}: lines");
        assert_eq!(counts.parsed, expect.parsed, "{file}: parsed");
        assert_eq!(
            counts.rejected_total(),
            expect.lines - expect.parsed,
            "{file}: rejected"
        );
        let mut by_reason: BTreeMap<&'static str, u64> = BTreeMap::new();
        for (_, reason) in expect.rejects {
            *by_reason.entry(reason.as_str()).or_default() += 1;
        }
        assert_eq!(counts.rejected, by_reason, "{file}: rejects by reason");

        let rejects: Vec<(usize, RejectReason)> = results
            .iter()
            .filter_map(|(n, r)| r.as_ref().err().map(|rej| (*n, rej.reason)))
            .collect();
        assert_eq!(rejects, expect.rejects, "{file}: rejected lines");
        for (n, result) in &results {
            if let Err(reject) = result {
                assert!(!reject.raw.is_empty(), "{file}:{n}: reject without text");
                assert!(reject.raw.len() <= MAX_REJECT_RAW);
                assert!(RejectReason::ALL.contains(&reject.reason));
            }
        }
        let invalid = results
            .iter()
            .filter(|(_, r)| r.as_ref().is_ok_and(|l| !l.has_valid_request()))
            .count();
        assert_eq!(invalid, expect.invalid_requests, "{file}: invalid requests");
        // Every parsed line has the fields the correlator joins on.
        for (n, result) in &results {
            if let Ok(line) = result {
                assert!(line.time.is_some(), "{file}:{n}: no time");
                assert!(line.status.is_some(), "{file}:{n}: no status");
                assert!(line.request_line.is_some(), "{file}:{n}: no request");
            }
        }
    }
}

#[test]
fn elastic_log_matches_its_description() {
    // SOURCES.md: 669 lines with size `-`; statuses 200/206/301/304/403/404/416/500.
    let Some(dir) = corpus_dir() else { return };
    let Outcome { results, .. } = run(&dir, "elastic_apache_logs.log");
    let parsed: Vec<&AccessLine> = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .collect();
    assert_eq!(parsed.iter().filter(|l| l.bytes.is_none()).count(), 669);
    let statuses: BTreeSet<u16> = parsed.iter().filter_map(|l| l.status).collect();
    assert_eq!(
        statuses,
        BTreeSet::from([200, 206, 301, 304, 403, 404, 416, 500])
    );
    // All in UTC, May 2015.
    assert!(parsed.iter().all(|l| {
        let t = l.time.unwrap();
        t.offset().local_minus_utc() == 0 && t.format("%Y-%m").to_string() == "2015-05"
    }));
    // The cp1251 referer written as `\xe4\xe5...` is decoded (lossily, it is not UTF-8).
    let (_, line_5851) = results.iter().find(|(n, _)| *n == 5851).unwrap();
    let referer = line_5851.as_ref().unwrap().referer.as_deref().unwrap();
    assert!(referer.starts_with("http://\u{fffd}"), "{referer}");
}

/// A crowdsec expectation: line index, field, value.
type Expectation = (usize, String, String);

/// Reads `results["s01-parse"]["<parser>"][N].Evt.<Parsed|Meta>["key"] == "value"` lines.
fn crowdsec_expectations(dir: &Path, assert_file: &str, section: &str) -> Vec<Expectation> {
    let text = fs::read_to_string(dir.join(assert_file)).unwrap();
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(r#"results["s01-parse"][""#) else {
            continue;
        };
        let Some((_parser, rest)) = rest.split_once(r#""]["#) else {
            continue;
        };
        let Some((index, rest)) = rest.split_once("].Evt.") else {
            continue;
        };
        let Some(rest) = rest
            .strip_prefix(section)
            .and_then(|r| r.strip_prefix(r#"[""#))
        else {
            continue;
        };
        let (key, value) = rest
            .split_once(r#""] == "#)
            .unwrap_or_else(|| panic!("{assert_file}: cannot read {line:?}"));
        out.push((index.parse().unwrap(), key.to_owned(), go_unquote(value)));
    }
    out
}

/// Decodes a Go double-quoted string literal (the escapes these files use).
fn go_unquote(literal: &str) -> String {
    let inner = literal
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or_else(|| panic!("not a Go string: {literal:?}"));
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('"') => out.push('"'),
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            other => panic!("unexpected escape \\{other:?} in {literal:?}"),
        }
    }
    out
}

/// Our value for a crowdsec field name; `None` if the name is not an access-log field.
fn our_value(line: &AccessLine, key: &str) -> Option<Option<String>> {
    let value = match key {
        "verb" => line.method.clone(),
        // crowdsec's `request` is the target of a valid request, else the raw request text.
        "request" if line.has_valid_request() => line.target.clone(),
        "request" | "rawrequest" => line.request_line.clone(),
        "http_version" | "httpversion" => line.http_version().map(str::to_owned),
        "status" | "response" => line.status.map(|s| s.to_string()),
        "body_bytes_sent" | "bytes" => line.bytes.map(|b| b.to_string()),
        "remote_addr" | "clientip" => line.client.clone(),
        "remote_user" | "auth" => line.user.clone(),
        "ident" => line.ident.clone(),
        "http_user_agent" => line.user_agent.clone(),
        "http_referer" | "referrer" => line.referer.clone(),
        "target_fqdn" => line.vhost.clone(),
        "port" => line.fields.get("%p").cloned(),
        "time_local" | "timestamp" => line
            .time
            .map(|t| t.format("%d/%b/%Y:%H:%M:%S %z").to_string()),
        _ => return None,
    };
    Some(value)
}

#[test]
fn crowdsec_fields_match() {
    let Some(dir) = corpus_dir() else { return };
    let pairs = [
        (
            "crowdsec/apache2-logs__apache2-logs.log",
            "crowdsec/apache2-logs__parser.assert",
        ),
        (
            "crowdsec/apache2-malformed__apache2-logs.log",
            "crowdsec/apache2-malformed__parser.assert",
        ),
        (
            "crowdsec/nginx-http-malformed__nginx_http-logs.log",
            "crowdsec/nginx-http-malformed__parser.assert",
        ),
        (
            "crowdsec/nginx_http-logs__nginx_http-logs.log",
            "crowdsec/nginx_http-logs__parser.assert",
        ),
    ];
    let ignored = ["message", "program"];
    let mut compared_fields = 0;
    let mut access_lines = 0;
    for (log, assert_file) in pairs {
        let Outcome { results, .. } = run(&dir, log);
        let log_types: BTreeMap<usize, String> = crowdsec_expectations(&dir, assert_file, "Meta")
            .into_iter()
            .filter(|(_, key, _)| key == "log_type")
            .map(|(i, _, v)| (i, v))
            .collect();
        assert_eq!(
            log_types.len(),
            results.len(),
            "{assert_file}: log_type per line"
        );
        let parsed = crowdsec_expectations(&dir, assert_file, "Parsed");
        for (index, (n, result)) in results.iter().enumerate() {
            let where_ = format!("{log}:{n}");
            match log_types[&index].as_str() {
                "http_access-log" => {
                    access_lines += 1;
                    let line = result
                        .as_ref()
                        .unwrap_or_else(|r| panic!("{where_}: crowdsec parses it, we reject: {r}"));
                    for (_, key, expected) in parsed.iter().filter(|(i, _, _)| *i == index) {
                        let Some(ours) = our_value(line, key) else {
                            assert!(
                                ignored.contains(&key.as_str()),
                                "{where_}: unknown crowdsec field {key}"
                            );
                            continue;
                        };
                        // crowdsec keeps `-`; we say absent.
                        let expected = (expected != "-").then(|| expected.clone());
                        assert_eq!(ours, expected, "{where_}: {key}");
                        compared_fields += 1;
                    }
                }
                "http_error-log" => {
                    assert!(
                        result.is_err(),
                        "{where_}: an error-log line parsed as access"
                    );
                }
                other => panic!("{where_}: log_type {other}"),
            }
        }
    }
    assert_eq!(access_lines, 7 + 11 + 12 + 8);
    assert_eq!(compared_fields, 356);
}
