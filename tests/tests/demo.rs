//! Issue: see the requests. The demo server's endpoints have exactly known memory effects.

use std::{io::Write as _, net::TcpStream, process::Command, time::Duration};

use memwatch_tests::{
    MIB, Running, Value, bin, endpoint, free_port, hit, http_json, int, read_response, report, run,
    start_server, tempdir, wait_until_answering,
};

const T: Duration = Duration::from_secs(120);

/// Sends `paths` in order on one keep-alive connection, reading each whole response.
fn keepalive_client(port: u16, paths: Vec<String>) -> Vec<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut codes = Vec::new();
    for path in paths {
        write!(s, "GET {path} HTTP/1.1\r\nHost: demo\r\n\r\n").unwrap();
        codes.push(read_response(&mut s));
    }
    codes
}

#[test]
fn demo_server_leak_churn_and_root_are_attributed() {
    let demo = start_server(Command::new(bin("memwatch-demo")).args(["--quiet"]));
    let dir = tempdir();
    let out = dir.path().join("demo.db");
    let pid = demo.pid().to_string();
    let mut rec = Running::start(&["record", "-p", &pid, "-o", out.to_str().unwrap()]);
    rec.wait_recording(T);
    let port = demo.port;
    // Four clients, each one keep-alive connection: 5 leaks, 12 or 13 roots and 2 or 3 churns.
    let mut work: Vec<Vec<String>> = vec![Vec::new(); 4];
    for i in 0..20 {
        work[i % 4].push("/leak?kb=512".into());
    }
    for i in 0..50 {
        work[i % 4].push("/".into());
    }
    for i in 0..10 {
        work[i % 4].push("/churn?kb=1024".into());
    }
    let clients: Vec<_> = work
        .into_iter()
        .map(|paths| std::thread::spawn(move || keepalive_client(port, paths)))
        .collect();
    for c in clients {
        assert!(c.join().unwrap().iter().all(|&code| code == 200));
    }
    std::thread::sleep(Duration::from_millis(300));
    rec.signal(libc::SIGINT);
    let done = rec.wait(T);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    let r = report(&out);
    assert_eq!(r["requests"], 80, "{:#}", r["endpoints"]);
    let leak = endpoint(&r, "GET", "/leak");
    assert_eq!(leak["requests"], 20);
    let ten = 10 * MIB;
    let near = |v: i64| (v - ten).abs() <= ten / 10;
    assert!(near(leak["rss_bytes"].as_i64().unwrap()), "{leak:#}");
    assert!(near(leak["vm_bytes"].as_i64().unwrap()), "{leak:#}");
    assert_eq!(leak["approximate"], 0);
    let root = endpoint(&r, "GET", "/");
    assert_eq!(root["requests"], 50);
    assert!(root["rss_bytes"].as_i64().unwrap() < 64 * 1024, "{root:#}");
    let churn = endpoint(&r, "GET", "/churn");
    assert_eq!(churn["requests"], 10);
    assert!(
        churn["vm_bytes"].as_i64().unwrap().abs() <= 64 * 1024,
        "{churn:#}"
    );
    assert!(
        churn["page_faults"].as_u64().unwrap() >= 10 * 256,
        "{churn:#}"
    );
    assert_eq!(r["dropped_events"], 0);
}

/// `record -- CMD --duration N` stops the command itself at the end, and its exit frees
/// everything: the routes' figures are those of the moment memwatch stopped it, not zero, and
/// the summary says why. So do the call sites (`report --stacks`, `pprof`) and the page's API.
#[test]
fn a_started_commands_exit_is_no_routes_release() {
    let dir = tempdir();
    let out = dir.path().join("started.db");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let rec = Running::start(&[
        "record",
        "-o",
        out.to_str().unwrap(),
        "--duration",
        "4",
        "--stacks",
        "--",
        bin("memwatch-demo").to_str().unwrap(),
        "--listen",
        &listen,
        "--quiet",
    ]);
    wait_until_answering(port, Duration::from_secs(20));
    hit(port, "/leak?kb=256", 10);
    hit(port, "/", 10);
    let done = rec.wait(T);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    let r = report(&out);
    let stopped = int(&r, "command_stopped_ns");
    assert!(
        stopped > int(&r, "started_ns") && stopped <= int(&r, "ended_ns"),
        "{:#}",
        r
    );
    let leak = endpoint(&r, "GET", "/leak");
    assert_eq!(leak["requests"], 10);
    let kept = int(leak, "kept_per_request_bytes");
    assert!((256 * 1024..=260 * 1024).contains(&kept), "{leak:#}");
    assert!(int(leak, "retained_bytes") >= 10 * 256 * 1024, "{leak:#}");
    assert_eq!(leak["retention"], "keeps", "{leak:#}");
    assert!(
        done.stdout.contains("when memwatch stopped the"),
        "{}",
        done.stdout
    );

    // The call sites of the leak keep what it kept, not what was left after the exit.
    let stacks = run(
        &[
            "report",
            out.to_str().unwrap(),
            "--stacks",
            "--format",
            "json",
        ],
        T,
    );
    assert_eq!(stacks.code(), 0, "{}", stacks.stderr);
    let stacks: Value = serde_json::from_str(&stacks.stdout).unwrap();
    let leak_sites = stacks["stacks"]["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["route"] == "/leak")
        .unwrap_or_else(|| panic!("no /leak call sites: {:#}", stacks["stacks"]));
    let site_retained: i64 = leak_sites["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| int(s, "retained_bytes"))
        .sum::<i64>()
        + int(leak_sites, "more_retained_bytes");
    assert!(site_retained >= 10 * 256 * 1024, "{leak_sites:#}");
    let pb = dir.path().join("started.pb.gz");
    let pprof = run(
        &[
            "pprof",
            out.to_str().unwrap(),
            "--route",
            "/leak",
            "-o",
            pb.to_str().unwrap(),
        ],
        T,
    );
    assert_eq!(pprof.code(), 0, "{}", pprof.stderr);
    // Ten requests keeping 256 KiB each, and the pages their buffers' edges touched.
    assert!(
        pprof.stderr.contains(" 2.5 MiB retained") || pprof.stderr.contains(" 2.6 MiB retained"),
        "{}",
        pprof.stderr
    );

    // The page's figures end there too, and its summary says when.
    let mut view = Running::start(&["view", out.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    let port = view.wait_page(T);
    let (_, summary) = http_json(port, "/api/summary");
    assert_eq!(
        summary["command_stopped_ms"],
        stopped / 1_000_000,
        "{summary:#}"
    );
    let (_, endpoints) = http_json(port, "/api/endpoints");
    let leak = endpoint(&endpoints, "GET", "/leak");
    let kept = int(leak, "kept_per_request_bytes");
    assert!((256 * 1024..=260 * 1024).contains(&kept), "{leak:#}");
    assert!(int(leak, "retained_bytes") >= 10 * 256 * 1024, "{leak:#}");
    view.signal(libc::SIGTERM);
    assert_eq!(view.wait(T).code(), 0);
}

/// A command started through a shim (a shell that runs helpers, then the server, as pyenv's
/// does): the summary and the report lead with the process that served the requests, not the
/// shell or its helpers, which come after it with none.
#[test]
fn a_shims_server_leads_the_processes() {
    let dir = tempdir();
    let out = dir.path().join("shim.db");
    let port = free_port();
    let script = format!(
        "readlink -f /bin/sh > /dev/null; uname > /dev/null; {} --listen 127.0.0.1:{port} \
         --quiet",
        bin("memwatch-demo").display()
    );
    let rec = Running::start(&[
        "record",
        "-o",
        out.to_str().unwrap(),
        "--duration",
        "4",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    wait_until_answering(port, Duration::from_secs(20));
    hit(port, "/", 10);
    hit(port, "/leak?kb=256", 10);
    let done = rec.wait(T);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    let r = report(&out);
    // The server was stopped with its shim, and its exit freed what the leak kept: the figures
    // are those of the moment memwatch stopped them.
    let leak = endpoint(&r, "GET", "/leak");
    let kept = int(leak, "kept_per_request_bytes");
    assert!((256 * 1024..=260 * 1024).contains(&kept), "{leak:#}");
    let processes = r["processes"].as_array().unwrap();
    let comms: Vec<(&str, u64)> = processes
        .iter()
        .map(|p| (p["comm"].as_str().unwrap(), p["requests"].as_u64().unwrap()))
        .collect();
    assert_eq!(comms[0], ("memwatch-demo", 20), "{comms:?}");
    let rest: Vec<&str> = comms[1..].iter().map(|(c, _)| *c).collect();
    assert!(
        comms[1..].iter().all(|(_, n)| *n == 0),
        "only the server served requests: {comms:?}"
    );
    assert!(rest.contains(&"sh"), "{comms:?}");
    // The summary's first line (the demo's own "listening on" comes before it, on the same
    // terminal).
    let first = done
        .stdout
        .lines()
        .find(|l| l.starts_with("memwatch: "))
        .unwrap_or("");
    let pid = processes[0]["pid"].as_u64().unwrap();
    assert!(
        first.contains(&format!(" of memwatch-demo (pid {pid}), 20 requests, ")),
        "{}",
        done.stdout
    );
}
