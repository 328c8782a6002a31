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

// ---- Real programs: call sites taken by `record --stacks` ---------------------------------

/// The call-site fixture (`fixtures/runtimes/callsites`), built once per flavour with the
/// system's C compiler into the target directory: `fp` keeps frame pointers, `nofp` does not.
fn callsites_server(flavour: &'static str) -> memwatch_tests::Server {
    use std::{collections::HashMap, path::PathBuf, process::Command, sync::Mutex};
    static BUILT: Mutex<Option<HashMap<&'static str, PathBuf>>> = Mutex::new(None);
    let out = {
        let mut built = BUILT.lock().unwrap();
        let built = built.get_or_insert_with(HashMap::new);
        built
            .entry(flavour)
            .or_insert_with(|| {
                let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
                let dir = root.join("../target/runtimes");
                std::fs::create_dir_all(&dir).unwrap();
                let out = dir.join(format!("callsites-{flavour}"));
                let fp = if flavour == "fp" {
                    "-fno-omit-frame-pointer"
                } else {
                    "-fomit-frame-pointer"
                };
                let status = Command::new("cc")
                    .args(["-O2", "-g", fp, "-o"])
                    .arg(&out)
                    .arg(root.join("fixtures/runtimes/callsites/callsites.c"))
                    .status()
                    .expect("a C compiler (cc): run `cargo xtask setup --test`");
                assert!(status.success(), "cc of the call-site fixture failed");
                out
            })
            .clone()
    };
    memwatch_tests::start_server(&mut Command::new(out))
}

/// Records `pid` with `--stacks` while `drive` runs; returns the recording's directory and path.
fn record_stacks(pid: u32, drive: impl FnOnce()) -> (tempfile::TempDir, std::path::PathBuf) {
    let (dir, out, rec) = memwatch_tests::start_recording(pid, &["--stacks"]);
    drive();
    std::thread::sleep(Duration::from_millis(300));
    memwatch_tests::stop_recording(rec);
    (dir, out)
}

/// The innermost function that retains most in an `/api/stacks` tree, summed over the leaves
/// it is in (as `go tool pprof -top` counts a function's flat bytes), and its bytes.
fn top_leaf(answer: &Value) -> (String, i64) {
    fn walk(nodes: &Value, leaves: &mut std::collections::BTreeMap<String, i64>) {
        for n in nodes.as_array().into_iter().flatten() {
            let children = &n["children"];
            let in_children: i64 = children
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| c["retained_bytes"].as_i64().unwrap_or(0))
                .sum();
            let own = n["retained_bytes"].as_i64().unwrap_or(0) - in_children;
            if own > 0 {
                *leaves
                    .entry(n["name"].as_str().unwrap_or_default().to_owned())
                    .or_default() += own;
            }
            walk(children, leaves);
        }
    }
    let mut leaves = std::collections::BTreeMap::new();
    walk(&answer["roots"], &mut leaves);
    leaves
        .into_iter()
        .max_by_key(|&(_, bytes)| bytes)
        .unwrap_or_default()
}

/// Two routes keep memory through two functions: the top retained call site of each route is
/// its own function, in the page's API, in `report --stacks` and in the pprof file (read by
/// `go tool pprof -top`); and the stacks were taken the way the binary allows (`unwind`), with
/// `fallbacks` processes switched from frame pointers to copies.
fn own_call_sites(flavour: &'static str, unwind: &[&str], fallbacks: &str) {
    let server = callsites_server(flavour);
    let base = format!("http://127.0.0.1:{}", server.port);
    let (_dir, file) = record_stacks(server.pid(), || {
        for _ in 0..2 {
            memwatch_tests::ab_load(&format!("{base}/a?kb=512"), 10, 1, false);
            // memwatch reads the ring buffer every 50 ms: with frame pointers, the decision to
            // copy stacks instead (taken on the first 16) applies from the second round on.
            std::thread::sleep(Duration::from_millis(200));
            memwatch_tests::ab_load(&format!("{base}/b?kb=256"), 10, 1, false);
        }
    });
    let rec = memwatch::recording::Recording::open(&file).unwrap();
    let sites = rec.call_sites().unwrap();
    let ways: std::collections::BTreeSet<&str> =
        sites.unwind.values().map(String::as_str).collect();
    let want: std::collections::BTreeSet<&str> = unwind.iter().copied().collect();
    assert_eq!(ways, want, "{flavour}: stacks taken as {ways:?}");
    assert_eq!(rec.meta("stacks_lost").unwrap().as_deref(), Some("0"));
    assert_eq!(
        rec.meta("stack_fallbacks").unwrap().as_deref(),
        Some(fallbacks)
    );

    // The page's API.
    let (_view, port) = view(&file);
    for (route, function, kib) in [("/a", "keep_a", 512 * 20), ("/b", "keep_b", 256 * 20)] {
        let (status, answer) = http_json(port, &format!("/api/stacks?route={route}"));
        assert_eq!(status, 200, "{answer}");
        let (leaf, bytes) = top_leaf(&answer);
        assert_eq!(leaf, function, "{flavour} {route}: {answer:#}");
        // Most of what the route keeps is its function's (the rest: glibc's header writes
        // before the first stack of a block, folded into malloc's caller too when unwound).
        let total = answer["retained_bytes"].as_i64().unwrap();
        assert!(
            total >= kib * 1024,
            "{flavour} {route}: {total} bytes retained"
        );
        assert!(
            bytes * 2 > total,
            "{flavour} {route}: {leaf} keeps {bytes} of {total}"
        );
    }

    // report --stacks.
    let done = memwatch_tests::run(
        &[
            "report",
            file.to_str().unwrap(),
            "--stacks",
            "--format",
            "json",
        ],
        T,
    );
    assert_eq!(done.code(), 0, "{}", done.stderr);
    let report: Value = serde_json::from_str(&done.stdout).unwrap();
    for (route, function) in [("/a", "keep_a"), ("/b", "keep_b")] {
        let r = report["stacks"]["routes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["route"] == route)
            .unwrap_or_else(|| panic!("{route} in {:#}", report["stacks"]));
        assert_eq!(
            r["sites"][0]["frames"][0], function,
            "{flavour} {route}: {r:#}"
        );
        // One line for the function's stacks, however they were taken: most of the route.
        let total: i64 = r["sites"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["retained_bytes"].as_i64().unwrap())
            .sum::<i64>()
            + r["more_retained_bytes"].as_i64().unwrap();
        let top = r["sites"][0]["retained_bytes"].as_i64().unwrap();
        assert!(top * 2 > total, "{flavour} {route}: {r:#}");
    }

    // pprof, read by Go's own tool.
    for (route, function) in [("/a", "keep_a"), ("/b", "keep_b")] {
        let out = file.with_extension(format!("{}.pb.gz", &route[1..]));
        let done = memwatch_tests::run(
            &[
                "pprof",
                file.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
                "--route",
                route,
            ],
            T,
        );
        assert_eq!(done.code(), 0, "{}", done.stderr);
        let top = std::process::Command::new("go")
            .args(["tool", "pprof", "-top", "-sample_index=retained"])
            .arg(&out)
            .env("TZ", "UTC")
            .output()
            .expect("go (golang-go): run `cargo xtask setup --test`");
        let text = String::from_utf8_lossy(&top.stdout);
        // The first row after the header: `flat flat% sum% cum cum% name`.
        let first = text
            .lines()
            .skip_while(|l| !l.trim_start().starts_with("flat"))
            .nth(1)
            .unwrap_or_default();
        assert_eq!(
            first.split_whitespace().last(),
            Some(function),
            "{flavour} {route}:\n{text}"
        );
    }
}

/// Built with frame pointers, the program's stacks are first taken along them; but the first
/// pages of each block are faulted in by glibc's malloc, which has none, and those stacks stop
/// there: at an eighth of its first 16 stacks, memwatch copies the process's stacks instead.
#[test]
fn call_sites_of_a_program_with_frame_pointers() {
    own_call_sites("fp", &["dwarf", "fp"], "1");
}

#[test]
fn call_sites_of_a_program_without_frame_pointers() {
    own_call_sites("nofp", &["dwarf"], "0");
}

/// Debian's python3 keeps no frame pointers: its stacks are copied and unwound with its
/// `.eh_frame`, and reach the interpreter's own frames (libpython is linked into the binary).
#[test]
fn debian_python_stacks_reach_the_interpreter() {
    let python = std::path::Path::new("/usr/bin/python3");
    assert!(
        python.exists(),
        "Debian's python3 (package python3-minimal): run `cargo xtask setup --test`"
    );
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/runtimes/python/keep.py");
    let server = memwatch_tests::start_server(std::process::Command::new(python).arg(script));
    let base = format!("http://127.0.0.1:{}", server.port);
    let (_dir, file) = record_stacks(server.pid(), || {
        memwatch_tests::ab_load(&format!("{base}/keep?kb=256"), 30, 1, false);
    });
    let rec = memwatch::recording::Recording::open(&file).unwrap();
    let sites = rec.call_sites().unwrap();
    let mut charges = rec
        .stack_charges(i64::MIN, i64::MAX, Some("/keep"))
        .unwrap();
    charges.sort_by_key(|c| -c.retained());
    let top = charges.first().expect("call sites for /keep");
    assert!(
        top.retained() >= 30 * 256 * 1024 / 2,
        "the top call site keeps {} bytes",
        top.retained()
    );
    assert_eq!(sites.unwind[&top.stack], "dwarf");
    let frames = sites.frames_of(top.stack);
    let names: Vec<String> = frames.iter().map(|f| f.label()).collect();
    assert!(
        frames.iter().any(|f| f.module.ends_with("python3.11")
            && f.function.as_deref() == Some("_PyEval_EvalFrameDefault")),
        "{names:?}"
    );
    // Unwound to the program's start.
    assert_eq!(
        names.last().map(String::as_str),
        Some("_start"),
        "{names:?}"
    );
}
