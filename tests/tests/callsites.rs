//! Issue 14: retained memory by call site on the page. `/api/stacks` served by `memwatch view`
//! for the call-site fixture recording (`memwatch::recording::query::stacks::fixture`), with
//! exact figures. The page's flame graph itself is tested in Chromium (`browser.rs`).

use std::time::Duration;

use memwatch::recording::{
    Writer,
    query::stacks::fixture::{self, B},
};
use memwatch_tests::{Running, Value, http_json, tempdir};

const T: Duration = Duration::from_secs(60);
const KIB: i64 = 1024;

fn view(file: &std::path::Path) -> (Running, u16) {
    let mut v = Running::start(&["view", file.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    let port = v.wait_page(T);
    (v, port)
}

/// `(depth, name, retained KiB)` of every node, depth first.
fn flat(nodes: &Value, depth: usize, out: &mut Vec<(usize, String, i64)>) {
    for n in nodes
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {nodes}"))
    {
        out.push((
            depth,
            n["name"].as_str().unwrap().to_owned(),
            n["retained_bytes"].as_i64().unwrap() / KIB,
        ));
        flat(&n["children"], depth + 1, out);
    }
}

fn tree(answer: &Value) -> Vec<(usize, String, i64)> {
    let mut out = Vec::new();
    flat(&answer["roots"], 0, &mut out);
    out
}

fn node(depth: usize, name: &str, kib: i64) -> (usize, String, i64) {
    (depth, name.to_owned(), kib)
}

#[test]
fn stacks_api_answers_the_fixture_exactly() {
    let dir = tempdir();
    let file = dir.path().join("stacks.db");
    fixture::write(&file);
    let (_server, port) = view(&file);
    // B and B+1: the fixture's requests; its release at B+2 is outside.
    let range = format!("from={}&to={}", B * 1000, (B + 1) * 1000 + 999);

    let (status, a) = http_json(port, &format!("/api/stacks?{range}&route=/a"));
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["recorded"], true);
    assert_eq!(a["retained_bytes"], 520 * KIB);
    assert_eq!(
        tree(&a),
        vec![
            node(0, "main", 512),
            node(1, "handle", 512),
            node(2, "leak_a", 512),
            node(0, "[no stack taken]", 8),
        ]
    );
    let leak_a = &a["roots"][0]["children"][0]["children"][0];
    assert_eq!(leak_a["module"], "/srv/app");
    assert_eq!(
        leak_a["routes"],
        serde_json::json!([{"grown_bytes": 512 * KIB, "method": "GET",
                            "retained_bytes": 512 * KIB, "route": "/a"}])
    );
    assert_eq!(a["roots"][1]["module"], Value::Null);

    // Every route: /b's leak_b kept 100 of its 300 KiB; growth outside requests has route "".
    let (_, all) = http_json(port, &format!("/api/stacks?{range}"));
    assert_eq!(
        tree(&all),
        vec![
            node(0, "main", 692),
            node(1, "handle", 628),
            node(2, "leak_a", 528),
            node(2, "leak_b", 100),
            node(1, "libfoo.so+0x1234", 64),
            node(0, "[no stack taken]", 8),
        ]
    );
    let leak_b = &all["roots"][0]["children"][0]["children"][1];
    assert_eq!(leak_b["grown_bytes"], 300 * KIB);
    let routes: Vec<(&str, i64)> = all["roots"][0]["children"][0]["children"][0]["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["route"].as_str().unwrap(),
                r["retained_bytes"].as_i64().unwrap() / KIB,
            )
        })
        .collect();
    assert_eq!(routes, [("/a", 512), ("", 16)]);
    assert_eq!(
        (all["folded_nodes"].as_i64(), all["from_ms"].as_i64()),
        (Some(0), Some(B * 1000))
    );

    // Without a range: the whole recording, where the release at B+2 counts.
    let (_, whole) = http_json(port, "/api/stacks?route=/b");
    assert_eq!(
        tree(&whole),
        vec![
            node(0, "main", 100),
            node(1, "handle", 100),
            node(2, "leak_b", 100)
        ]
    );
    assert_eq!(whole["grown_bytes"], 364 * KIB);

    for bad in [
        format!("from={}&to={}", B * 1000 + 1, B * 1000),
        "from=x".to_owned(),
    ] {
        let (status, err) = http_json(port, &format!("/api/stacks?{bad}"));
        assert_eq!(status, 400, "{bad}: {err}");
        assert!(err["error"].as_str().unwrap().contains("from="), "{err}");
    }
}

/// A recording made without `--stacks`: `recorded` is false and the tree empty.
#[test]
fn stacks_api_says_when_none_were_recorded() {
    let dir = tempdir();
    let file = dir.path().join("plain.db");
    Writer::create(&file, &[]).unwrap().finish().unwrap();
    let (_server, port) = view(&file);
    let (status, answer) = http_json(port, "/api/stacks");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        serde_json::json!({
            "folded_nodes": 0, "folded_retained_bytes": 0, "from_ms": null, "grown_bytes": 0,
            "recorded": false, "retained_bytes": 0, "roots": [], "routes": [],
            "routes_folded": 0, "to_ms": null,
        })
    );
}
