//! Parsing tests over whole lines: directives, escaping, odd fields, rejects.

use std::collections::BTreeMap;

use super::*;

const CLF_TIME: &str = "[10/Oct/2000:13:55:36 -0700]";
/// 2000-10-10T20:55:36Z
const CLF_EPOCH: i64 = 971_211_336;

fn parse(format: &str, line: &str) -> AccessLine {
    let format = Format::from_name_or_log_format(format).unwrap();
    format
        .parse_line(line.as_bytes())
        .unwrap_or_else(|r| panic!("{line:?} rejected: {r}"))
}

fn reject(format: &str, line: &[u8]) -> (RejectReason, usize) {
    let format = Format::from_name_or_log_format(format).unwrap();
    match format.parse_line(line) {
        Ok(parsed) => panic!("{:?} parsed: {parsed:?}", String::from_utf8_lossy(line)),
        Err(Reject { reason, offset, .. }) => (reason, offset),
    }
}

#[test]
fn combined_line_all_fields() {
    let l = parse(
        "combined",
        r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif?a=1 HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)""#,
    );
    let AccessLine {
        client,
        ident,
        user,
        time,
        time_anchor,
        request_line,
        method,
        target,
        protocol,
        status,
        bytes,
        referer,
        user_agent,
        duration_us,
        vhost,
        fields,
        trailing,
    } = l.clone();
    assert_eq!(client.as_deref(), Some("127.0.0.1"));
    assert_eq!(ident, None);
    assert_eq!(user.as_deref(), Some("frank"));
    let time = time.unwrap();
    assert_eq!(time.timestamp(), CLF_EPOCH);
    assert_eq!(time.offset().local_minus_utc(), -7 * 3600);
    assert_eq!(time_anchor, TimeAnchor::RequestStart);
    assert_eq!(
        request_line.as_deref(),
        Some("GET /apache_pb.gif?a=1 HTTP/1.0")
    );
    assert_eq!(method.as_deref(), Some("GET"));
    assert_eq!(target.as_deref(), Some("/apache_pb.gif?a=1"));
    assert_eq!(protocol.as_deref(), Some("HTTP/1.0"));
    assert_eq!(l.http_version(), Some("1.0"));
    assert_eq!(status, Some(200));
    assert_eq!(bytes, Some(2326));
    assert_eq!(
        referer.as_deref(),
        Some("http://www.example.com/start.html")
    );
    assert_eq!(
        user_agent.as_deref(),
        Some("Mozilla/4.08 [en] (Win98; I ;Nav)")
    );
    assert_eq!(duration_us, None);
    assert_eq!(vhost, None);
    assert!(fields.is_empty());
    assert!(trailing.is_empty());
    assert!(l.has_valid_request());
}

#[test]
fn debug_shows_present_fields_only() {
    let l = parse(
        "common",
        &format!(r#"::1 - - {CLF_TIME} "GET / HTTP/1.1" 404 -"#),
    );
    assert_eq!(
        format!("{l:?}"),
        r#"AccessLine { client: "::1", time: 2000-10-10T13:55:36-07:00 (RequestStart), request_line: "GET / HTTP/1.1", method: "GET", target: "/", protocol: "HTTP/1.1", status: 404 }"#
    );
}

#[test]
fn each_directive() {
    let format = r#"%h %a %l %u %t "%r" %m %U%q %H %>s %s %b %B %O %D %T %v %V %p %P %k %I %S "%{Referer}i" "%{User-Agent}i" "%{X-Forwarded-For}i" "%{Content-Type}o" %{HOME}e %{note}n %{sid}C %X %{c}a %%"#;
    let line = format!(
        r#"10.0.0.9 10.0.0.8 ident bob {CLF_TIME} "POST /form?x=1 HTTP/2.0" PUT /path?q=2 HTTP/1.1 201 200 512 600 700 1500 2 example.com www.example.com 443 1234 3 100 800 "https://ref/" "agent/1" "1.1.1.1, 2.2.2.2" "text/html" /root abc s1 + 10.0.0.7 %"#
    );
    let l = parse(format, &line);
    assert_eq!(l.client.as_deref(), Some("10.0.0.9"));
    assert_eq!(l.ident.as_deref(), Some("ident"));
    assert_eq!(l.user.as_deref(), Some("bob"));
    assert_eq!(l.time.unwrap().timestamp(), CLF_EPOCH);
    assert_eq!(l.request_line.as_deref(), Some("POST /form?x=1 HTTP/2.0"));
    // %r comes first, then %m %U%q %H overwrite its parts.
    assert_eq!(l.method.as_deref(), Some("PUT"));
    assert_eq!(l.target.as_deref(), Some("/path?q=2"));
    assert_eq!(l.protocol.as_deref(), Some("HTTP/1.1"));
    assert_eq!(l.status, Some(201));
    assert_eq!(l.bytes, Some(512));
    assert_eq!(l.duration_us, Some(1500));
    assert_eq!(l.vhost.as_deref(), Some("example.com"));
    assert_eq!(l.referer.as_deref(), Some("https://ref/"));
    assert_eq!(l.user_agent.as_deref(), Some("agent/1"));
    let expected: BTreeMap<String, String> = [
        ("%a", "10.0.0.8"),
        ("%s", "200"),
        ("%B", "600"),
        ("%O", "700"),
        ("%T", "2"),
        ("%V", "www.example.com"),
        ("%p", "443"),
        ("%P", "1234"),
        ("%k", "3"),
        ("%I", "100"),
        ("%S", "800"),
        ("%{X-Forwarded-For}i", "1.1.1.1, 2.2.2.2"),
        ("%{Content-Type}o", "text/html"),
        ("%{HOME}e", "/root"),
        ("%{note}n", "abc"),
        ("%{sid}C", "s1"),
        ("%X", "+"),
        ("%{c}a", "10.0.0.7"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(l.fields, expected);
    assert!(l.trailing.is_empty());
}

#[test]
fn individual_request_directives() {
    let l = parse(
        r#"%h "%m %U%q %H" %>s"#,
        r#"1.2.3.4 "GET /a?b=c HTTP/1.1" 200"#,
    );
    assert_eq!(
        (
            l.method.as_deref(),
            l.target.as_deref(),
            l.protocol.as_deref()
        ),
        (Some("GET"), Some("/a?b=c"), Some("HTTP/1.1"))
    );
    assert_eq!(l.request_line, None);
    let l = parse("%h %U %q", "1.2.3.4 /a ?b");
    assert_eq!(l.target.as_deref(), Some("/a"));
    assert_eq!(l.fields.get("%q").map(String::as_str), Some("?b"));
}

#[test]
fn durations() {
    let d = |format: &str, value: &str| parse(format, &format!("1.2.3.4 {value}")).duration_us;
    assert_eq!(d("%h %D", "1234"), Some(1234));
    assert_eq!(d("%h %D", "-"), None);
    assert_eq!(d("%h %T", "3"), Some(3_000_000));
    assert_eq!(d("%h %T", "0.125"), Some(125_000));
    assert_eq!(d("%h %{s}T", "2"), Some(2_000_000));
    assert_eq!(d("%h %{ms}T", "15"), Some(15_000));
    assert_eq!(d("%h %{ms}T", "1.5"), Some(1_500));
    assert_eq!(d("%h %{us}T", "77"), Some(77));
    assert_eq!(
        reject("%h %D", b"1.2.3.4 1.5"),
        (RejectReason::BadDuration, 8)
    );
    assert_eq!(
        reject("%h %T", b"1.2.3.4 abc"),
        (RejectReason::BadDuration, 8)
    );
    assert_eq!(
        reject("%h %D", b"1.2.3.4 99999999999999999999"),
        (RejectReason::BadDuration, 8)
    );
}

#[test]
fn brief_example_format_with_duration() {
    let l = parse(
        r#"%h %l %u %t "%r" %>s %b %D"#,
        &format!(r#"10.1.1.1 - - {CLF_TIME} "GET /slow HTTP/1.1" 200 12 2500000"#),
    );
    assert_eq!(l.duration_us, Some(2_500_000));
    assert_eq!(
        l.approx_response_end().unwrap().timestamp_millis(),
        CLF_EPOCH * 1000 + 2_500
    );
}

#[test]
fn nginx_time_marks_the_response_end() {
    let line = format!(r#"10.1.1.1 - - {CLF_TIME} "GET / HTTP/1.1" 200 12 "-" "-""#);
    let l = parse("nginx", &line);
    assert_eq!(l.time_anchor, TimeAnchor::ResponseEnd);
    assert_eq!(l.approx_response_end().unwrap().timestamp(), CLF_EPOCH);
    let l = parse("%h %{end:msec}t %D", "1.2.3.4 971211336250 100");
    assert_eq!(l.time_anchor, TimeAnchor::ResponseEnd);
    assert_eq!(l.time.unwrap().timestamp_millis(), 971_211_336_250);
    assert_eq!(
        l.approx_response_end().unwrap().timestamp_millis(),
        971_211_336_250
    );
}

#[test]
fn time_forms() {
    let l = parse("%h %{sec}t", "1.2.3.4 971211336");
    assert_eq!(l.time.unwrap().timestamp(), CLF_EPOCH);
    let l = parse("%h %{usec}t", "1.2.3.4 971211336000001");
    assert_eq!(l.time.unwrap().timestamp_micros(), 971_211_336_000_001);
    let l = parse(
        r#"%h %{%d/%b/%Y:%H:%M:%S %z}t "%r""#,
        r#"1.2.3.4 10/Oct/2000:13:55:36 -0700 "GET / HTTP/1.1""#,
    );
    assert_eq!(l.time.unwrap().timestamp(), CLF_EPOCH);
    assert_eq!(l.method.as_deref(), Some("GET"));
}

#[test]
fn offsets_convert_to_the_right_instant() {
    let at = |stamp: &str| {
        let l = parse(
            "common",
            &format!(r#"1.2.3.4 - - [{stamp}] "GET / HTTP/1.1" 200 1"#),
        );
        let t = l.time.unwrap();
        (t.timestamp(), t.offset().local_minus_utc())
    };
    // 2000-10-10T13:55:36 local.
    assert_eq!(at("10/Oct/2000:13:55:36 -0700"), (CLF_EPOCH, -25_200));
    assert_eq!(at("10/Oct/2000:13:55:36 +0530"), (971_166_336, 19_800));
    assert_eq!(at("10/Oct/2000:13:55:36 +0000"), (971_186_136, 0));
    assert_eq!(at("10/Oct/2000:13:55:36 -0930"), (971_220_336, -34_200));
    assert_eq!(at("10/Oct/2000:13:55:36 +1345"), (971_136_636, 49_500));
}

#[test]
fn apache_escaping() {
    let l = parse(
        "combined",
        &format!(
            r#"1.2.3.4 - - {CLF_TIME} "GET /q\"x\" HTTP/1.1" 200 1 "http://r/\\path" "caf\xc3\xa9 \"quoted\" \x01""#
        ),
    );
    assert_eq!(l.target.as_deref(), Some("/q\"x\""));
    // The raw request keeps the escapes.
    assert_eq!(l.request_line.as_deref(), Some(r#"GET /q\"x\" HTTP/1.1"#));
    assert_eq!(l.referer.as_deref(), Some("http://r/\\path"));
    assert_eq!(l.user_agent.as_deref(), Some("café \"quoted\" \u{1}"));
}

#[test]
fn nginx_escaping() {
    let l = parse(
        "combined",
        &format!(
            r#"1.2.3.4 - - {CLF_TIME} "GET /q\x22x\x22 HTTP/1.1" 200 1 "http://r/\x5Cpath" "caf\xC3\xA9 \x22quoted\x22""#
        ),
    );
    assert_eq!(l.target.as_deref(), Some("/q\"x\""));
    assert_eq!(l.referer.as_deref(), Some("http://r/\\path"));
    assert_eq!(l.user_agent.as_deref(), Some("café \"quoted\""));
}

#[test]
fn escaped_backslash_before_closing_quote() {
    let l = parse(
        "combined",
        &format!(r#"1.2.3.4 - - {CLF_TIME} "GET / HTTP/1.1" 200 1 "-" "ends with \\""#),
    );
    assert_eq!(l.user_agent.as_deref(), Some("ends with \\"));
}

#[test]
fn raw_quote_inside_a_field() {
    // Not written by Apache or nginx, but by some proxies: the quote is not followed by a space.
    let l = parse(
        "combined",
        &format!(r#"1.2.3.4 - - {CLF_TIME} "GET / HTTP/1.1" 200 1 "-" "a"b""#),
    );
    assert_eq!(l.user_agent.as_deref(), Some(r#"a"b"#));
}

#[test]
fn ipv6_client() {
    let l = parse(
        "combined",
        &format!(r#"2001:db8::1 - - {CLF_TIME} "GET / HTTP/1.1" 200 1 "-" "-""#),
    );
    assert_eq!(l.client.as_deref(), Some("2001:db8::1"));
    assert_eq!(l.referer, None);
    assert_eq!(l.user_agent, None);
}

#[test]
fn forwarded_for_list_as_client() {
    let l = parse(
        "combined",
        &format!(
            r#"2a03:0:10ff::8000, 10.0.0.1, 127.0.0.1 - - {CLF_TIME} "GET / HTTP/1.1" 200 1 "-" "-""#
        ),
    );
    assert_eq!(
        l.client.as_deref(),
        Some("2a03:0:10ff::8000, 10.0.0.1, 127.0.0.1")
    );
    assert_eq!(
        l.client_addrs().collect::<Vec<_>>(),
        ["2a03:0:10ff::8000", "10.0.0.1", "127.0.0.1"]
    );
    assert_eq!(l.ident, None);
}

#[test]
fn forwarded_for_prefix_needs_its_own_log_format() {
    let format = r#"%{X-Forwarded-For}i %h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i""#;
    let quoted = format!(
        r#""10.5.102.222, 199.96.1.1" 10.2.1.185 - - {CLF_TIME} "GET /x HTTP/1.1" 200 5 "-" "CloudFront""#
    );
    let l = parse(format, &quoted);
    assert_eq!(
        l.fields.get("%{X-Forwarded-For}i").map(String::as_str),
        Some("10.5.102.222, 199.96.1.1")
    );
    assert_eq!(l.client.as_deref(), Some("10.2.1.185"));
    let bare = format!(
        r#"2a03::8000, 10.225.192.17 10.2.2.121 - - {CLF_TIME} "GET /x HTTP/1.1" 404 5 "-" "bot""#
    );
    let l = parse(format, &bare);
    assert_eq!(
        l.fields.get("%{X-Forwarded-For}i").map(String::as_str),
        Some("2a03::8000, 10.225.192.17")
    );
    assert_eq!(l.client.as_deref(), Some("10.2.2.121"));
    // Under plain combined, these lines do not parse.
    assert_eq!(
        reject("combined", bare.as_bytes()),
        (RejectReason::MissingTimestamp, 39)
    );
}

#[test]
fn dash_request_and_size() {
    let l = parse(
        "combined",
        &format!(r#"::1 - - {CLF_TIME} "-" 408 - "-" "-""#),
    );
    assert_eq!(l.request_line.as_deref(), Some("-"));
    assert_eq!((&l.method, &l.target, &l.protocol), (&None, &None, &None));
    assert!(!l.has_valid_request());
    assert_eq!(l.status, Some(408));
    assert_eq!(l.bytes, None);
}

#[test]
fn empty_request() {
    let l = parse(
        "combined",
        &format!(r#"127.0.0.1 - - {CLF_TIME} "" 400 0 "-" "-""#),
    );
    assert_eq!(l.request_line.as_deref(), Some(""));
    assert_eq!(l.method, None);
    assert_eq!(l.bytes, Some(0));
}

#[test]
fn binary_garbage_request() {
    for garbage in [
        r"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
        r"\x16\x03\x01\x01 \x02",
        r"Gh0st\xAD\x00\x00\x00\xE0\x00\x00\x00x\x9CKS``\x98\x5C",
        r"\x03\x00\x00/*\xE0\x00\x00\x00\x00\x00Cookie: mstshash=Administr",
        "HELP",
    ] {
        let l = parse(
            "combined",
            &format!(r#"1.2.3.4 - - {CLF_TIME} "{garbage}" 400 226 "-" "-""#),
        );
        assert_eq!(l.request_line.as_deref(), Some(garbage));
        assert_eq!(l.method, None, "{garbage}");
        assert_eq!(l.target, None);
        assert_eq!(l.status, Some(400));
    }
}

#[test]
fn extra_trailing_fields() {
    let l = parse(
        "combined",
        &format!(
            r#"1.2.3.4 - - {CLF_TIME} "GET / HTTP/1.1" 200 1 "-" "ua" "10.0.0.1, 10.0.0.2" 0.004 "\x22x\x22""#
        ),
    );
    assert_eq!(l.user_agent.as_deref(), Some("ua"));
    assert_eq!(l.trailing, ["10.0.0.1, 10.0.0.2", "0.004", "\"x\""]);
    let l = parse(
        "combined",
        &format!(r#"1.2.3.4 - - {CLF_TIME} "GET / HTTP/1.1" 200 1 "-" "ua"   "#),
    );
    assert!(l.trailing.is_empty());
}

#[test]
fn common_line_in_a_combined_log() {
    let l = parse(
        "combined",
        &format!(r#"1.2.3.4 - - {CLF_TIME} "GET / HTTP/1.1" 200 1513"#),
    );
    assert_eq!(l.bytes, Some(1513));
    assert_eq!(l.referer, None);
    // Referer present, user agent missing.
    let l = parse(
        "combined",
        &format!(r#"1.2.3.4 - - {CLF_TIME} "GET / HTTP/1.1" 200 1513 "http://r/""#),
    );
    assert_eq!(l.referer.as_deref(), Some("http://r/"));
    assert_eq!(l.user_agent, None);
}

#[test]
fn vhost_lines() {
    let l = parse(
        "vhost_combined",
        &format!(
            r#"website.com:443 1.2.3.4 - - {CLF_TIME} "GET /x HTTP/1.1" 403 6963 "abc.com" "ua""#
        ),
    );
    assert_eq!(l.vhost.as_deref(), Some("website.com"));
    assert_eq!(l.fields.get("%p").map(String::as_str), Some("443"));
    assert_eq!(l.client.as_deref(), Some("1.2.3.4"));
    assert_eq!(l.bytes, Some(6963));
    // Without the port (Debian's other_vhosts uses %v:%p, some configs only %v).
    let l = parse(
        "vhost_combined",
        &format!(r#"www.crowdsec.net 1.2.3.4 - - {CLF_TIME} "GET /x HTTP/1.1" 500 803 "-" "ua""#),
    );
    assert_eq!(l.vhost.as_deref(), Some("www.crowdsec.net"));
    assert!(l.fields.is_empty());
    // A combined log falls back to vhost_combined for such a line.
    let l = parse(
        "combined",
        &format!(r#"example.org:80 1.2.3.4 - - {CLF_TIME} "GET /x HTTP/1.1" 500 803 "-" "ua""#),
    );
    assert_eq!(l.vhost.as_deref(), Some("example.org"));
    assert_eq!(l.client.as_deref(), Some("1.2.3.4"));
    // But a custom LogFormat does not fall back.
    let (reason, _) = reject(
        r#"%h %l %u %t "%r" %>s %b"#,
        format!(r#"example.org:80 1.2.3.4 - - {CLF_TIME} "GET /x HTTP/1.1" 500 803"#).as_bytes(),
    );
    assert_eq!(reason, RejectReason::MissingTimestamp);
}

#[test]
fn missing_ident_before_time() {
    let l = parse(
        "combined",
        &format!(r#"192.168.1.1 - {CLF_TIME} "GET /api/test HTTP/1.1" 200 100 "-" "curl/7.68.0""#),
    );
    assert_eq!(l.user, None);
    assert_eq!(l.target.as_deref(), Some("/api/test"));
}

#[test]
fn status_and_size_values() {
    let line = |status: &str, size: &str| {
        format!(r#"1.2.3.4 - - {CLF_TIME} "GET / HTTP/1.1" {status} {size}"#)
    };
    assert_eq!(parse("common", &line("499", "0")).status, Some(499));
    assert_eq!(parse("common", &line("-", "0")).status, None);
    assert_eq!(
        parse("common", &line("200", "18446744073709551615")).bytes,
        Some(u64::MAX)
    );
    assert_eq!(
        reject("common", line("2000", "1").as_bytes()),
        (RejectReason::BadStatus, 58)
    );
    assert_eq!(
        reject("common", line("OK", "1").as_bytes()),
        (RejectReason::BadStatus, 58)
    );
    assert_eq!(
        reject("common", line("200", "1k").as_bytes()),
        (RejectReason::BadSize, 62)
    );
    assert_eq!(
        reject("common", line("200", "18446744073709551616").as_bytes()),
        (RejectReason::BadSize, 62)
    );
}

#[test]
fn truncated_lines() {
    let full = format!(r#"1.2.3.4 - - {CLF_TIME} "GET /x HTTP/1.1" 200 1234 "-" "agent""#);
    // Cut inside the time, the request, after the status, inside the user agent.
    let cases = [
        (20, RejectReason::BadTimestamp, 12),
        (12, RejectReason::FieldCount, 12),
        (11, RejectReason::FieldCount, 11),
        (50, RejectReason::UnterminatedQuote, 41),
        (60, RejectReason::FieldCount, 60),
        (61, RejectReason::FieldCount, 61),
        (73, RejectReason::UnterminatedQuote, 72),
    ];
    for (cut, reason, offset) in cases {
        let line = &full.as_bytes()[..cut];
        assert_eq!(
            reject("combined", line),
            (reason, offset),
            "{:?}",
            String::from_utf8_lossy(line)
        );
    }
}

#[test]
fn rejects_with_reasons() {
    assert_eq!(reject("combined", b""), (RejectReason::Empty, 0));
    assert_eq!(reject("combined", b"  \r\n"), (RejectReason::Empty, 0));
    assert_eq!(
        reject(
            "combined",
            b"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] \"\xff\" 200 1"
        ),
        (RejectReason::NotUtf8, 42)
    );
    assert_eq!(
        reject(
            "combined",
            b"1.2.3.4 - - 10/Oct/2000:13:55:36 -0700 \"GET / HTTP/1.1\" 200 1"
        ),
        (RejectReason::MissingTimestamp, 12)
    );
    assert_eq!(
        reject(
            "combined",
            b"1.2.3.4 - - [10/Oct/2000:13:55:36] \"GET / HTTP/1.1\" 200 1"
        ),
        (RejectReason::BadTimestamp, 12)
    );
    assert_eq!(
        reject(
            "combined",
            b"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] GET / 200 1"
        ),
        (RejectReason::UnexpectedText, 41)
    );
    assert_eq!(
        reject(
            "combined",
            b"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\"junk"
        ),
        (RejectReason::UnterminatedQuote, 68)
    );
    assert_eq!(
        reject(
            "combined",
            b"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\" \"unterminated"
        ),
        (RejectReason::UnterminatedQuote, 72)
    );
    assert_eq!(
        reject(
            "combined",
            b"[Thu Oct 13 12:24:49.880562 2022] [auth_basic:error] [pid 10:tid 1] [client 1.2.3.4:5] AH01618"
        ),
        (RejectReason::MissingTimestamp, 12)
    );
}

#[test]
fn too_long_line_keeps_a_bounded_raw_text() {
    let mut line = format!(r#"1.2.3.4 - - {CLF_TIME} "GET /"#).into_bytes();
    line.resize(MAX_LINE_LEN + 1, b'a');
    let format = Format::named("combined").unwrap();
    let r = format.parse_line(&line).unwrap_err();
    assert_eq!(r.reason, RejectReason::TooLong);
    assert_eq!(r.raw.len(), MAX_REJECT_RAW);
    // At the limit it is parsed (and fails for another reason).
    line.truncate(MAX_LINE_LEN);
    assert_eq!(
        format.parse_line(&line).unwrap_err().reason,
        RejectReason::UnterminatedQuote
    );
}

#[test]
fn reject_raw_text_is_bounded_even_when_lossy() {
    let mut line = vec![0xff_u8; 3000];
    line.extend_from_slice(b" - - ");
    let r = Format::named("combined")
        .unwrap()
        .parse_line(&line)
        .unwrap_err();
    assert_eq!(r.reason, RejectReason::NotUtf8);
    assert!(r.raw.len() <= MAX_REJECT_RAW);
    assert!(r.raw.starts_with('\u{fffd}'));
}

#[test]
fn crlf_and_newline_are_stripped() {
    let l = parse(
        "common",
        &format!("1.2.3.4 - - {CLF_TIME} \"GET / HTTP/1.1\" 200 1\r\n"),
    );
    assert_eq!(l.bytes, Some(1));
}

#[test]
fn parser_counts_by_reason() {
    let mut parser = LogParser::new(Format::named("common").unwrap());
    let good = format!(r#"1.2.3.4 - - {CLF_TIME} "GET / HTTP/1.1" 200 1"#);
    let lines: [&[u8]; 5] = [
        good.as_bytes(),
        b"garbage",
        good.as_bytes(),
        b"",
        b"also garbage",
    ];
    for line in lines {
        let _ = parser.parse(line);
    }
    let counts = parser.counts();
    assert_eq!(counts.lines, 5);
    assert_eq!(counts.parsed, 2);
    assert_eq!(counts.rejected_total(), 3);
    let expected: BTreeMap<&str, u64> = [("empty", 1), ("field_count", 2)].into();
    assert_eq!(counts.rejected, expected);
    assert_eq!(parser.format().name(), "common");
}

#[test]
fn reason_names_are_stable_and_unique() {
    let names: Vec<&str> = RejectReason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(
        names,
        [
            "empty",
            "too_long",
            "not_utf8",
            "missing_timestamp",
            "bad_timestamp",
            "bad_status",
            "bad_size",
            "bad_duration",
            "unterminated_quote",
            "field_count",
            "unexpected_text",
        ]
    );
    for reason in RejectReason::ALL {
        assert_eq!(
            serde_json::to_string(&reason).unwrap(),
            format!("\"{}\"", reason.as_str())
        );
    }
}

#[test]
fn hostile_inputs_do_not_panic() {
    let formats: Vec<Format> = BUILTIN_NAMES
        .iter()
        .map(|n| Format::named(n).unwrap())
        .chain([Format::from_log_format(
            r#"%v:%p %h %{X}i %t "%r" %>s %b %D %T %{msec}t %{%d/%b/%Y:%H:%M:%S %z}t"#,
        )
        .unwrap()])
        .collect();
    let seeds: Vec<Vec<u8>> = vec![
        b"\"".to_vec(),
        b"\\".to_vec(),
        b"[".to_vec(),
        b"a [".to_vec(),
        b"a b [".to_vec(),
        b"a b c [".to_vec(),
        b"a b c [10/Oct/2000:13:55:36 -0700".to_vec(),
        b"a b c [10/Oct/2000:13:55:36 -0700] \"\\".to_vec(),
        b"a b c [10/Oct/2000:13:55:36 -0700] \"\\\"".to_vec(),
        b"a b c [10/Oct/2000:13:55:36 -0700] \"x\" 1 1 \"\\x".to_vec(),
        b"a:1 b c d [10/Oct/2000:13:55:36 -0700] \"x\" 1 1 \"".to_vec(),
        "é é é [é] \"é\" é é \"é\" \"é\"".as_bytes().to_vec(),
        b"a, b, c,".to_vec(),
        b"a, ".to_vec(),
        vec![b' '; 100],
        vec![b'"'; 100],
        vec![b','; 100],
    ];
    for seed in &seeds {
        for cut in 0..=seed.len() {
            for f in &formats {
                let _ = f.parse_line(&seed[..cut]);
            }
        }
    }
    for spec in ["%", "%{", "%{}", "%{a", "%>", "%!", "\\", "%{é}é", "é%"] {
        let _ = Format::from_log_format(spec);
    }
}
