//! Issue: the chart. The page in headless Chromium (Debian's), driven by playwright-core from
//! `tests/e2e/page.test.mjs`: range selection, drill-down, retained memory by route, live
//! updates, hostile data as text; and (issue 14) the icicle of retained memory by call site.
//! `cargo xtask setup --test` installs Chromium and the e2e npm packages.

use std::{
    path::Path,
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use memwatch::recording::query::stacks::fixture;
use memwatch_tests::{Running, bin, hit, phased, start_server, tempdir};

const T: Duration = Duration::from_secs(120);

fn view(args: &[&str]) -> (Running, String) {
    let mut v = Running::start(args);
    let port = v.wait_page(T);
    (v, format!("http://127.0.0.1:{port}"))
}

#[test]
fn page_in_headless_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let e2e = root.join("e2e");
    assert!(
        e2e.join("node_modules/playwright-core").is_dir(),
        "tests/e2e/node_modules is missing: run `cargo xtask setup --test` (it runs npm ci there)"
    );
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: run `cargo xtask setup --test`"
    );
    let dir = tempdir();

    // Offline: a recording with a /leak phase between two / phases.
    let (file, leak_from, leak_to) = phased(dir.path());
    let (_offline, offline_url) =
        view(&["view", file.to_str().unwrap(), "--listen", "127.0.0.1:0"]);

    // Hostile data in the retained-memory legend: the same recording with /leak renamed to HTML
    // in the rollups and rows the chart reads (rows over a range of seconds, the rollups over
    // longer ones).
    let hostile = dir.path().join("hostile-route.db");
    std::fs::copy(&file, &hostile).unwrap();
    rusqlite::Connection::open(&hostile)
        .unwrap()
        .execute_batch(
            "UPDATE request_rollup SET route = '/<img src=x onerror=alert(1)>'
             WHERE route = '/leak';
             UPDATE request_kinds SET route = '/<img src=x onerror=alert(1)>'
             WHERE route = '/leak';",
        )
        .unwrap();
    let (_hostile, hostile_url) =
        view(&["view", hostile.to_str().unwrap(), "--listen", "127.0.0.1:0"]);

    // Call sites: the fixture recording, and the same with a hostile function, module and route.
    let stacks = dir.path().join("stacks.db");
    fixture::write(&stacks);
    let (_stacks, stacks_url) =
        view(&["view", stacks.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    let hostile_stacks = dir.path().join("hostile-stacks.db");
    std::fs::copy(&stacks, &hostile_stacks).unwrap();
    rusqlite::Connection::open(&hostile_stacks)
        .unwrap()
        .execute_batch(
            "UPDATE frames SET function = '<img src=x onerror=alert(1)>',
                               module = '/srv/<script>window.__xss=1</script>'
             WHERE function = 'leak_a';
             UPDATE stack_rollup SET route = '/<img src=x onerror=alert(1)>' WHERE route = '/a';",
        )
        .unwrap();
    let (_hostile_stacks, hostile_stacks_url) = view(&[
        "view",
        hostile_stacks.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);

    // Hostile data: a log whose URL and User-Agent are HTML.
    let log = dir.path().join("xss.log");
    std::fs::write(
        &log,
        "127.0.0.1 - - [25/Nov/2026:02:00:00 +0000] \"GET /<img src=x onerror=alert(1)> HTTP/1.1\" \
         404 10 \"-\" \"<script>window.__xss=1</script>\"\n",
    )
    .unwrap();
    let (_xss, xss_url) = view(&[
        "view",
        "--access-log",
        log.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);

    // Live: the demo server under a bounded load while `serve` records it.
    let demo = start_server(Command::new(bin("memwatch-demo")).arg("--quiet"));
    let live_db = dir.path().join("live.db");
    let pid = demo.pid().to_string();
    let (_live, live_url) = view(&[
        "serve",
        "-p",
        &pid,
        "-o",
        live_db.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let stop = Arc::clone(&stop);
        let port = demo.port;
        std::thread::spawn(move || {
            // At most two minutes of 20 requests every 100 ms.
            for _ in 0..1200 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                hit(port, "/", 20);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };

    let shots = root.join("../target/e2e-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let out = Command::new("node")
        .arg("--test")
        .arg(e2e.join("page.test.mjs"))
        .env("MEMWATCH_URL_OFFLINE", &offline_url)
        .env("MEMWATCH_LEAK_FROM_MS", leak_from.to_string())
        .env("MEMWATCH_LEAK_TO_MS", leak_to.to_string())
        .env("MEMWATCH_LEAK_COUNT", "12")
        .env("MEMWATCH_URL_LIVE", &live_url)
        .env("MEMWATCH_URL_XSS", &xss_url)
        .env("MEMWATCH_URL_XSS_RETAINED", &hostile_url)
        .env("MEMWATCH_URL_STACKS", &stacks_url)
        .env("MEMWATCH_URL_STACKS_XSS", &hostile_stacks_url)
        .env("MEMWATCH_SCREENSHOT_DIR", &shots)
        .output()
        .expect("node (Node.js) on PATH");
    stop.store(true, Ordering::Relaxed);
    let _ = load.join();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser tests failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("# fail 0"), "{stdout}");
    for shot in [
        "offline.png",
        "route.png",
        "retained.png",
        "live.png",
        "xss.png",
        "stacks.png",
    ] {
        assert!(shots.join(shot).is_file(), "screenshot {shot} missing");
    }
}
