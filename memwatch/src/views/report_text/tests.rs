use super::*;

#[test]
fn formats_bytes() {
    assert_eq!(bytes(512), "512 B");
    assert_eq!(bytes(-2048), "-2.0 KiB");
    assert_eq!(bytes(40 * 1024 * 1024), "40.0 MiB");
    assert_eq!(signed_bytes(2 * 1024 * 1024), "+2.0 MiB");
    assert_eq!(signed_bytes(-4096), "-4.0 KiB");
    assert_eq!(signed_bytes(0), "0 B");
}

/// A label as wide as the label column keeps a space before its first item: "BPF programs"
/// ran into "sock_recv".
#[test]
fn a_label_as_wide_as_its_column_is_set_apart() {
    let mut s = String::new();
    field(
        &mut s,
        "BPF programs",
        &["sock_recv 1/s at 300 ns".to_owned()],
    );
    assert_eq!(s, "  BPF programs sock_recv 1/s at 300 ns\n");
    let mut s = String::new();
    field(&mut s, "CPU", &["1%".to_owned()]);
    assert_eq!(s, format!("  {:<w$}1%\n", "CPU", w = LABEL - 2));
}

/// Where the regression's intervals overlap, the summary says the figures are the origin's
/// and why, in prose that wraps like the rest: one space between words, within the width.
#[test]
fn the_summary_says_when_the_regression_cannot_rank() {
    use crate::views::{
        regression::over_recording::{Signal, Summary},
        report::RetainedSummary,
    };
    let r = RetainedSummary {
        regression: Some(Summary {
            overlapping: vec!["GET /leak ~ GET /churn".to_owned()],
            explained: 0.63,
            intervals: 40,
            signal: Signal::SweptHeap,
            ..Summary::default()
        }),
        ..RetainedSummary::default()
    };
    let mut s = String::new();
    notes::answer_notes(&mut s, &r, &[]);
    let note: Vec<&str> = s
        .lines()
        .skip_while(|l| !l.starts_with("kept/req is the origin's"))
        .collect();
    assert!(!note.is_empty(), "{s}");
    assert!(
        note.iter()
            .all(|l| !l.trim_start().contains("  ") && l.chars().count() <= WIDTH),
        "{s}"
    );
    assert_eq!(
        note.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" "),
        "kept/req is the origin's, though requests shared a thread: the regression's intervals \
         overlap for GET /leak ~ GET /churn (a route it puts above a page and one it cannot \
         tell from nothing), too loose to rank them; record longer or at a lower rate for a \
         tighter fit"
    );
}

#[test]
fn lists_wrap_between_items_within_the_width() {
    let mut s = String::new();
    let items: Vec<String> = (0..30).map(|i| format!("item {i}")).collect();
    field(&mut s, "label", &items);
    let lines: Vec<&str> = s.lines().collect();
    assert!(lines.len() > 1, "{s}");
    assert!(lines.iter().all(|l| l.chars().count() <= WIDTH), "{s}");
    assert!(lines[0].starts_with("  label       item 0, item 1"), "{s}");
    assert!(lines[0].ends_with("item 9,"), "{s}");
    assert!(lines[1].starts_with("              item 10, "), "{s}");
    // Every item whole, in order.
    let joined: String = s
        .lines()
        .map(|l| l.get(LABEL..).unwrap_or_default())
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(
        joined.split(',').map(str::trim).collect::<Vec<_>>(),
        items.iter().map(String::as_str).collect::<Vec<_>>()
    );
}

/// A recording as a shim-started Flask server would make one: a shell that served nothing,
/// then the server; a leak, churn, a no-op route, and one request to a typo that held
/// memory. Its summary leads with the routes, the leak first; the typo's single request
/// neither ranks nor is called `keeps`; no line is wider than the width.
#[test]
fn the_summary_leads_with_what_is_kept() {
    use crate::{
        model::{ProcessOrigin, ProcessRow, RequestRow, Row, meta},
        recording::{Recording, Writer},
    };
    const KIB: u64 = 1024;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let base = 1_800_000_000_000_000_000i64;
    let writer = Writer::create(
        &path,
        &[
            (meta::PAGE_SIZE, "4096".to_owned()),
            (meta::STARTED_NS, base.to_string()),
        ],
    )
    .unwrap();
    let mut rows = vec![
        Row::Process(ProcessRow {
            pid: 100,
            ppid: Some(1),
            comm: "bash".into(),
            cmdline: None,
            started_ns: Some(base),
            origin: ProcessOrigin::Spawned,
        }),
        Row::Process(ProcessRow {
            pid: 101,
            ppid: Some(100),
            comm: "python3".into(),
            cmdline: None,
            started_ns: Some(base + 1),
            origin: ProcessOrigin::Descendant,
        }),
    ];
    let mut id = 0;
    let mut request = |route: &str, i: i64, grown: u64, released: u64| {
        id += 1;
        Row::Request(RequestRow {
            id,
            pid: 101,
            tid: 101,
            method: Some("GET".into()),
            target: Some(route.into()),
            route: Some(route.into()),
            status: Some(if route.starts_with("/caf") { 404 } else { 200 }),
            start_ns: base + i * 10_000_000,
            end_ns: base + i * 10_000_000 + 2_000_000,
            exact: true,
            grown,
            released,
            ..RequestRow::default()
        })
    };
    for i in 0..50 {
        let t = i * 3;
        rows.push(request("/leak", t, 256 * KIB, 0));
        rows.push(request("/churn", t + 1, 2048 * KIB, 2048 * KIB));
        rows.push(request("/", t + 2, 0, 0));
    }
    rows.push(request("/caf%C3%A9", 151, 1024 * KIB, 0));
    rows.push(Row::Meta(
        meta::ENDED_NS.into(),
        (base + 2_000_000_000).to_string(),
    ));
    writer.send(rows);
    writer.finish().unwrap();
    let report = Report::build(&Recording::open(&path).unwrap()).unwrap();
    let text = report.to_text();
    let head: Vec<&str> = text.lines().take(19).collect();
    assert_eq!(
        head,
        [
            "memwatch: 2.0 s of python3 (pid 101), 151 requests, 2 processes, 0 events",
            "",
            "Routes by memory kept per request (kept/req: what each further request keeps)",
            "method  route                        requests    kept/req    retained      grown  retention",
            "GET     /leak                              50  +256.0 KiB   +12.5 MiB   12.5 MiB  keeps",
            "GET     /                                  50         0 B         0 B        0 B  none",
            "GET     /churn                             50         0 B         0 B  100.0 MiB  none",
            "GET     /caf%C3%A9                          1    +1.0 MiB    +1.0 MiB    1.0 MiB  too-few",
            "Note: heap reuse was not followed (--no-heap): memory a runtime frees to its heap and hands to a",
            "  later allocation stays with the request that first faulted it in, so a route that reuses another's",
            "  freed heap (Node.js, Go, threaded Python) can look like it keeps nothing while the other looks",
            "  like a leak. Record without --no-heap to follow glibc's malloc and free and Go's spans",
            "",
            "Requests by route",
            "method  route                        requests    p50 ms    p95 ms  statuses",
            "GET     /leak                              50      2.00      2.00  200: 50",
            "GET     /                                  50      2.00      2.00  200: 50",
            "GET     /churn                             50      2.00      2.00  200: 50",
            "GET     /caf%C3%A9                          1      2.00      2.00  404: 1",
        ],
        "{text}"
    );
    let processes: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("Processes:"))
        .take(3)
        .collect();
    assert_eq!(
        processes,
        [
            "Processes: 2, those that served requests first",
            "  pid 101      python3          descendant                    151 requests",
            "  pid 100      bash             spawned                         0 requests",
        ],
        "{text}"
    );
    let wide: Vec<&str> = text.lines().filter(|l| l.chars().count() > WIDTH).collect();
    assert!(wide.is_empty(), "{wide:#?}");
    assert!(!text.contains('{'), "no raw JSON: {text}");
}

/// A minute of a server whose heap was not followed: `/leak` keeps 256 KiB per request in
/// memory `/churn` first made resident and freed, so the origin figures credit `/churn` and
/// not `/leak`; the resident set grows with `/leak`'s count. The regression sees it, and the
/// summary says, right under the routes, that the estimates disagree and which to trust.
#[test]
fn the_summary_says_where_the_estimates_disagree() {
    use crate::{
        model::{RequestRow, Row, meta},
        recording::{Recording, Writer},
    };
    const KIB: u64 = 1024;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let base = 1_800_000_000_000_000_000i64;
    use crate::units::NS_PER_SEC as S;
    let writer = Writer::create(
        &path,
        &[
            (meta::PAGE_SIZE, "4096".to_owned()),
            (meta::STARTED_NS, base.to_string()),
            (meta::ENDED_NS, (base + 60 * S).to_string()),
        ],
    )
    .unwrap();
    let mut rows = Vec::new();
    let mut id = 0;
    let mut request = |route: &str, t: i64, grown: u64| {
        id += 1;
        Row::Request(RequestRow {
            id,
            pid: 1,
            tid: 1,
            method: Some("GET".into()),
            target: Some(route.into()),
            route: Some(route.into()),
            status: Some(200),
            start_ns: t - 1_000_000,
            end_ns: t,
            exact: true,
            grown,
            ..RequestRow::default()
        })
    };
    // Counts per second that vary independently (a fixed LCG), so the routes separate.
    let mut seed = 12345u64;
    let mut next = |m: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % m
    };
    let mut rss = 50 * 1024 * KIB;
    for second in 0..60i64 {
        let (leaks, churns) = (next(5), next(5));
        for k in 0..leaks {
            rows.push(request(
                "/leak",
                base + second * S + 100_000_000 + k as i64,
                0,
            ));
        }
        for k in 0..churns {
            rows.push(request(
                "/churn",
                base + second * S + 200_000_000 + k as i64,
                256 * KIB,
            ));
        }
        rss += leaks * 256 * KIB;
        for tenth in 0..10 {
            rows.push(Row::Sample {
                ts_ns: base + second * S + 300_000_000 + tenth * 50_000_000,
                pid: 1,
                rss_bytes: rss,
                vm_bytes: rss,
                faults: 0,
            });
        }
    }
    writer.send(rows);
    writer.finish().unwrap();
    let text = Report::build(&Recording::open(&path).unwrap())
        .unwrap()
        .to_text();
    let notes: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("Estimates disagree"))
        .take_while(|l| !l.is_empty() && !l.starts_with("Note:"))
        .collect();
    let said = notes
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        said.contains(
            "Estimates disagree on GET /churn: the origin says +256.0 KiB kept per request, \
             the regression 0 B; trust the regression: the heap was not followed, so memory \
             reused inside the allocator stayed with the request that first made it resident"
        ),
        "{text}"
    );
    assert!(
        said.contains(
            "Estimates disagree on GET /leak: the origin says 0 B kept per request, the \
             regression +256.0 KiB; trust the regression"
        ),
        "{text}"
    );
    assert!(text.lines().all(|l| l.chars().count() <= WIDTH), "{text}");
}

#[test]
fn cut_names_end_in_an_ellipsis() {
    assert_eq!(truncate("/short", 28), "/short");
    assert_eq!(truncate("/a/very/long/route/name", 10), "/a/very/l…");
    assert_eq!(
        counts(&BTreeMap::from([("200".into(), 30), ("404".into(), 1)])),
        "200: 30, 404: 1"
    );
}
