//! The report built from recordings written for the purpose.

use std::collections::BTreeMap;

use super::{endpoints::add_rows, *};
use crate::{model::meta, recording::query::Range, units::NS_PER_SEC};

/// Above EXACT_LIMIT, totals come from the rollup plus the edge rows: they must equal what
/// reading every row gives, for ranges that cut seconds in the middle.
#[test]
fn rollup_totals_equal_exact_totals() {
    use crate::{
        model::{RequestRow, Row},
        recording::Writer,
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let writer = Writer::create(&path, &[]).unwrap();
    let n = EXACT_LIMIT + 20_000;
    let rows = (0..n)
        .map(|i| {
            Row::Request(RequestRow {
                id: i + 1,
                conn: 1,
                method: Some(if i % 3 == 0 { "POST" } else { "GET" }.into()),
                route: Some(format!("/r{}", i % 5).into()),
                status: (i % 7 != 0).then_some(200 + (i % 4) as u16 * 100),
                start_ns: i * 1_000_000,
                end_ns: i * 1_000_000 + 500,
                vm_bytes: i % 1000,
                rss_bytes: i % 333,
                faults: (i % 9) as u64,
                exact: i % 11 != 0,
                ..RequestRow::default()
            })
        })
        .collect();
    writer.send(rows);
    writer.finish().unwrap();
    let rec = Recording::open(&path).unwrap();
    let range = Range {
        from_ns: Some(1_234_567_891),
        to_ns: Some(68_765_432_109),
    };
    let fast = endpoints(&rec, range).unwrap();
    let mut exact = BTreeMap::new();
    add_rows(&rec, &mut exact, range.bounds(), 1, true, None).unwrap();
    assert_eq!(fast.len(), exact.len());
    let total: u64 = fast.iter().map(|e| e.requests).sum();
    assert!(total > EXACT_LIMIT as u64, "the rollup path ran");
    for e in &fast {
        let x = &exact[&(e.method.clone(), e.route.clone())];
        assert_eq!(e.requests, x.n, "{}", e.route);
        assert_eq!(e.statuses, x.statuses);
        assert_eq!((e.vm_bytes, e.rss_bytes), (x.vm_sum, x.rss_sum));
        assert_eq!((e.page_faults, e.approximate), (x.faults, x.approximate));
    }
}

/// A corrupted file may hold any value in any column: the views' sums saturate, negative
/// counts count as 0, and nothing panics (unit tests run with overflow checks). Before, a
/// debug build of the `recording` fuzz target stopped at these sums within seconds.
#[test]
fn extreme_figures_saturate() {
    use crate::{
        model::{RequestRow, Row},
        recording::Writer,
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let writer = Writer::create(&path, &[]).unwrap();
    let rows = (1..=3)
        .map(|id| {
            Row::Request(RequestRow {
                id,
                method: Some("GET".into()),
                route: Some("/big".into()),
                status: Some(200),
                start_ns: id * NS_PER_SEC,
                end_ns: id * NS_PER_SEC + 500,
                exact: true,
                ..RequestRow::default()
            })
        })
        .collect();
    writer.send(rows);
    writer.finish().unwrap();
    let db = rusqlite::Connection::open(&path).unwrap();
    db.execute(
        "INSERT INTO request_memory (end_ns, id, rss_bytes, vm_bytes, grown, released, faults,
             mem_calls) SELECT end_ns, id, ?1, ?2, ?1, ?2, -5, ?1 FROM request_rows",
        [i64::MAX, i64::MIN],
    )
    .unwrap();
    drop(db);
    let rec = Recording::open(&path).unwrap();
    let e = &endpoints(&rec, Range::default()).unwrap()[0];
    assert_eq!(
        (e.requests, e.rss_bytes, e.vm_bytes),
        (3, i64::MAX, i64::MIN)
    );
    assert_eq!((e.grown_bytes, e.released_bytes), (i64::MAX, i64::MIN));
    assert_eq!(e.retained_bytes, i64::MAX);
    assert_eq!((e.page_faults, e.mem_calls), (0, u64::MAX));
    let report = Report::build(&rec).unwrap();
    let retained = report.retained.unwrap();
    assert_eq!(retained.retained_bytes, i64::MAX);
}

/// Retained memory per route from a recording with each shape: a leak ranks first with its
/// exact per-request figure, a high-water mark keeps nothing per further request, churn
/// and memory freed later by another thread keep nothing.
#[test]
fn routes_rank_by_what_they_keep() {
    use crate::{
        model::{ReleaseRow, RequestRow, Row},
        recording::Writer,
    };
    const KIB: u64 = 1024;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let writer = Writer::create(&path, &[(meta::PAGE_SIZE, "4096".to_owned())]).unwrap();
    let base = 1_800_000_000_000_000_000i64;
    let mut rows = Vec::new();
    let mut id = 0;
    let mut request = |route: &str, i: i64, grown: u64, released: u64| {
        id += 1;
        RequestRow {
            id,
            method: Some("GET".into()),
            target: Some(route.into()),
            route: Some(route.into()),
            status: Some(200),
            start_ns: base + i * 10_000_000,
            end_ns: base + i * 10_000_000 + 1_000_000,
            exact: true,
            grown,
            released,
            ..RequestRow::default()
        }
    };
    for i in 0..50 {
        let t = i * 4;
        rows.push(Row::Request(request("/leak", t, 64 * KIB, 0)));
        let reuse_growth = if i == 0 { 1024 * KIB } else { 0 };
        rows.push(Row::Request(request("/reuse", t + 1, reuse_growth, 0)));
        rows.push(Row::Request(request(
            "/churn",
            t + 2,
            2048 * KIB,
            2048 * KIB,
        )));
        let deferred = request("/deferred", t + 3, 512 * KIB, 0);
        rows.push(Row::Release(Box::new(ReleaseRow {
            ts_ns: deferred.end_ns + 200_000_000,
            pid: 1,
            request_id: deferred.id,
            request_end_ns: deferred.end_ns,
            method: Some("GET".into()),
            route: Some("/deferred".into()),
            bytes: 512 * KIB,
        })));
        rows.push(Row::Request(deferred));
    }
    writer.send(rows);
    writer.finish().unwrap();
    let rec = Recording::open(&path).unwrap();
    let ranked: Vec<(String, i64, i64, Retention)> = endpoints(&rec, Range::default())
        .unwrap()
        .into_iter()
        .map(|e| {
            (
                e.route,
                e.kept_per_request_bytes,
                e.retained_bytes,
                e.retention,
            )
        })
        .collect();
    assert_eq!(
        ranked,
        vec![
            ("/leak".into(), 64 * 1024, 50 * 64 * 1024, Retention::Keeps),
            ("/reuse".into(), 0, 1024 * 1024, Retention::HighWater),
            ("/churn".into(), 0, 0, Retention::None),
            ("/deferred".into(), 0, 0, Retention::None),
        ]
    );
}
