//! Issue: the chart. The JSON API with exact numbers per range, its security, and the page in a
//! real browser (headless Chromium driven by playwright-core).

use std::time::Duration;

use memwatch_tests::{Running, http, http_json, phased, tempdir};

const T: Duration = Duration::from_secs(120);

fn view(file: &std::path::Path, extra: &[&str]) -> (Running, u16) {
    let mut args = vec!["view", file.to_str().unwrap(), "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let mut v = Running::start(&args);
    let port = v.wait_page(T);
    (v, port)
}

fn routes(v: &serde_json::Value) -> Vec<(String, u64)> {
    v["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["route"].as_str().unwrap().to_owned(),
                e["requests"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn api_answers_exactly_per_range() {
    let dir = tempdir();
    let (file, from, to) = phased(dir.path());
    let (server, port) = view(&file, &[]);

    let (status, all) = http_json(port, "/api/endpoints");
    assert_eq!(status, 200);
    assert_eq!(routes(&all), vec![("/leak".into(), 12), ("/".into(), 50)]);
    let leak = &all["endpoints"][0];
    assert_eq!(leak["statuses"]["200"], 12);
    assert_eq!(leak["rss_bytes_mean"], 256 * 1024, "{leak:#}");
    assert_eq!(leak["vm_bytes"], 12 * 256 * 1024);

    let (_, phase) = http_json(port, &format!("/api/endpoints?from={from}&to={to}"));
    assert_eq!(routes(&phase), vec![("/leak".into(), 12)]);
    let (_, before) = http_json(port, &format!("/api/endpoints?to={}", from - 1));
    assert_eq!(routes(&before), vec![("/".into(), 30)]);
    let (_, after) = http_json(port, &format!("/api/endpoints?from={}", to + 1));
    assert_eq!(routes(&after), vec![("/".into(), 20)]);

    let (_, reqs) = http_json(port, "/api/requests?route=/leak&method=GET&limit=5");
    assert_eq!(reqs["total"], 12);
    assert_eq!(reqs["truncated"], true);
    assert_eq!(reqs["requests"].as_array().unwrap().len(), 5);
    assert_eq!(reqs["requests"][0]["target"], "/leak?kb=256");

    let (_, summary) = http_json(port, "/api/summary");
    assert_eq!(summary["requests"], 62);
    assert_eq!(summary["live"], false);
    assert_eq!(summary["dropped_events"], 0);

    for points in [2, 10, 100, 1000] {
        for q in [String::new(), format!("&from={from}&to={to}")] {
            let (status, tl) = http_json(port, &format!("/api/timeline?points={points}{q}"));
            assert_eq!(status, 200);
            for series in ["rss", "vm"] {
                let n = tl[series]["t"].as_array().unwrap().len();
                assert!(n <= points, "{series} has {n} > {points} points");
                assert_eq!(n, tl[series]["v"].as_array().unwrap().len());
            }
            let total: u64 = ["s2xx", "s3xx", "s4xx", "s5xx", "other"]
                .iter()
                .flat_map(|c| tl["requests"][c].as_array().unwrap().iter())
                .map(|v| v.as_u64().unwrap())
                .sum();
            assert_eq!(
                total,
                if q.is_empty() { 62 } else { 12 },
                "points={points} {q}"
            );
        }
    }

    let (status, err) = http_json(port, "/api/timeline?points=abc");
    assert_eq!(status, 400);
    assert!(
        err["error"].as_str().unwrap().contains("points=\"abc\""),
        "{err}"
    );
    let (status, err) = http_json(port, &format!("/api/endpoints?from={to}&to={from}"));
    assert_eq!(status, 400, "{err}");
    let (status, head, _) = http(port, "/../../etc/passwd", &[]);
    assert_eq!(status, 404);
    assert!(
        head.contains("content-security-policy: default-src 'self'"),
        "{head}"
    );
    let (status, head, page) = http(port, "/", &[]);
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/html"));
    assert!(page.contains("/assets/app.js"));
    drop(server);
}

#[test]
fn token_is_required_when_set() {
    let dir = tempdir();
    let (file, _, _) = phased(dir.path());
    let (_server, port) = view(&file, &["--token", "s3cret"]);
    let (status, _, body) = http(port, "/api/summary", &[]);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("token"));
    let (status, _, _) = http(port, "/api/summary?token=wrong", &[]);
    assert_eq!(status, 401);
    let (status, _, _) = http(port, "/api/summary?token=s3cret", &[]);
    assert_eq!(status, 200);
    let (status, _, _) = http(port, "/api/summary", &[("Authorization", "Bearer s3cret")]);
    assert_eq!(status, 200);
}

#[test]
fn non_loopback_listen_warns() {
    let dir = tempdir();
    let (file, _, _) = phased(dir.path());
    let mut v = Running::start(&["view", file.to_str().unwrap(), "--listen", "0.0.0.0:0"]);
    let warning = v.wait_for("WARNING", T);
    assert!(warning.contains("--token"), "{warning}");
}
