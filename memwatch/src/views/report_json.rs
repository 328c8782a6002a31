//! The report's JSON, byte for byte, on a fixture recording that holds a row of every kind the
//! writer stores, a process of every origin, a call of every memory syscall and a route of every
//! retention. The expected document is checked in (`testdata/report.json`): a change to how a
//! row is written, or to how a figure that travels as a named type is spelled, shows here.
//!
//! The rows stored are pinned the same way (`testdata/fixture-tables.txt`), table by table.
//!
//! After a deliberate change, `MEMWATCH_BLESS=1 cargo test -p memwatch --lib report_json`
//! rewrites both; review their diff before committing them.

use std::{path::Path, sync::Arc};

use memwatch_common::mem::MemOp;

use crate::{
    model::{
        CountersRow, FrameRow, HeapSampleRow, LogLineRow, MemRow, ProcessOrigin, ProcessRow,
        ReleaseRow, RequestRow, Row, StackChargeRow, Unwind, VmOriginRow, meta,
    },
    recording::{Recording, Writer},
    units::NS_PER_SEC,
    views::report::Report,
};

const KIB: u64 = 1024;
/// When the fixture starts: a fixed wall-clock time, in nanoseconds.
const BASE: i64 = 1_800_000_000 * NS_PER_SEC;

/// One request of `route`, the `i`th 10 ms slot of the recording.
fn request(id: i64, route: &str, i: i64, grown: u64, released: u64) -> RequestRow {
    RequestRow {
        id,
        pid: 101,
        tid: 101,
        conn: 1,
        method: Some("GET".into()),
        target: Some(format!("{route}?q={i}").into()),
        route: Some(route.into()),
        host: Some("example.org".into()),
        status: Some(if route == "/typo" { 404 } else { 200 }),
        start_ns: BASE + i * 10_000_000,
        first_byte_ns: Some(BASE + i * 10_000_000 + 1_000_000),
        end_ns: BASE + i * 10_000_000 + 2_000_000,
        bytes_in: 80,
        bytes_out: 300,
        vm_bytes: 4096,
        rss_bytes: grown as i64,
        faults: grown / 4096,
        mem_calls: 1,
        exact: i % 7 != 0,
        grown,
        released,
        sampled_out: false,
    }
}

/// One memory syscall of the server's.
fn mem(i: i64, op: MemOp, vm_delta: i64, request_id: Option<i64>) -> Row {
    Row::Mem(MemRow {
        ts_ns: BASE + i * 10_000_000 + 500_000,
        pid: 101,
        tid: 101,
        op,
        addr: 0x7f00_0000_0000,
        len: 64 * KIB,
        new_len: if op == MemOp::Mremap { 128 * KIB } else { 0 },
        prot: 3,
        flags: 34,
        fd: -1,
        ret: 0x7f00_0000_0000,
        ok: true,
        vm_delta,
        request_id,
        stack: None,
    })
}

/// Writes the fixture recording at `path`.
fn write(path: &Path) {
    let writer = Writer::create(
        path,
        &[
            (meta::MEMWATCH_VERSION, "0.0.0-fixture".to_owned()),
            (meta::PAGE_SIZE, "4096".to_owned()),
            (meta::STARTED_NS, BASE.to_string()),
            (meta::REDACT_QUERY, "false".to_owned()),
            (meta::ACCESS_LOGS, "access.log".to_owned()),
        ],
    )
    .unwrap();
    let process = |pid: u32, ppid: u32, comm: &str, origin: ProcessOrigin| {
        Row::Process(ProcessRow {
            pid,
            ppid: Some(ppid),
            comm: comm.into(),
            cmdline: Some(format!("{comm} --serve")),
            started_ns: Some(BASE + i64::from(pid)),
            origin,
        })
    };
    let mut rows = vec![
        process(100, 1, "sh", ProcessOrigin::Spawned),
        process(101, 100, "server", ProcessOrigin::Descendant),
        process(102, 1, "sidecar", ProcessOrigin::Attached),
        process(103, 101, "worker", ProcessOrigin::Forked),
        Row::ProcessExit {
            pid: 103,
            ts_ns: BASE + 900_000_000,
            exit_code: Some(0),
        },
        Row::Thread {
            tid: 101,
            pid: 101,
            faults: 900,
            exited_ns: None,
        },
        Row::Thread {
            tid: 104,
            pid: 101,
            faults: 12,
            exited_ns: Some(BASE + 800_000_000),
        },
    ];
    let mut id = 0;
    for i in 0..50 {
        let t = i * 4;
        let mut add = |route: &str, t: i64, grown: u64, released: u64| {
            id += 1;
            rows.push(Row::Request(request(id, route, t, grown, released)));
            id
        };
        let leak = add("/leak", t, 64 * KIB, 0);
        add("/reuse", t + 1, if i == 0 { 1024 * KIB } else { 0 }, 0);
        add("/churn", t + 2, 256 * KIB, 256 * KIB);
        let deferred = add("/deferred", t + 3, 128 * KIB, 0);
        rows.push(Row::Release(Box::new(ReleaseRow {
            ts_ns: BASE + (t + 3) * 10_000_000 + 200_000_000,
            pid: 101,
            request_id: deferred,
            request_end_ns: BASE + (t + 3) * 10_000_000 + 2_000_000,
            method: Some("GET".into()),
            route: Some("/deferred".into()),
            bytes: 128 * KIB,
        })));
        if i % 10 == 0 {
            rows.push(mem(t, MemOp::Mmap, 64 * KIB as i64, Some(leak)));
            rows.push(mem(t + 1, MemOp::Munmap, -(64 * KIB as i64), None));
            rows.push(mem(t + 2, MemOp::Brk, 8 * KIB as i64, Some(leak + 2)));
        }
    }
    rows.push(Row::Request(request(id + 1, "/typo", 201, 512 * KIB, 0)));
    rows.extend([
        mem(5, MemOp::Mremap, 64 * KIB as i64, None),
        mem(6, MemOp::Mprotect, 0, None),
        mem(7, MemOp::Madvise, 0, None),
        Row::Release(Box::new(ReleaseRow {
            ts_ns: BASE + 1_500_000_000,
            pid: 101,
            request_id: 0,
            request_end_ns: 0,
            method: None,
            route: None,
            bytes: 8 * KIB,
        })),
        Row::OutsideGrowth {
            ts_ns: BASE + 100_000_000,
            pid: 101,
            bytes: 32 * KIB,
        },
        Row::OutsideGrowth {
            ts_ns: BASE + 1_100_000_000,
            pid: 102,
            bytes: 16 * KIB,
        },
        Row::VmOrigin(Box::new(VmOriginRow {
            ts_ns: BASE + 2_000_000,
            req_end_ns: BASE + 2_000_000,
            method: Some("GET".into()),
            route: Some("/leak".into()),
            grown: 64 * KIB,
            released: 0,
        })),
        Row::VmOrigin(Box::new(VmOriginRow {
            ts_ns: BASE + 1_200_000_000,
            req_end_ns: BASE + 2_000_000,
            method: Some("GET".into()),
            route: Some("/leak".into()),
            grown: 0,
            released: 16 * KIB,
        })),
        Row::NonHttp {
            ts_ns: BASE + 300_000_000,
            pid: 101,
            conn: 9,
            kind: "tls",
            bytes: 517,
        },
        Row::LiveHeap {
            ts_ns: BASE + 400_000_000,
            pid: 101,
            bytes: 3 << 20,
            source: "go",
        },
        Row::HeapSample(Box::new(HeapSampleRow {
            id: 1,
            ts_ns: BASE + 1_000_000,
            pid: 101,
            request_id: Some(1),
            method: Some("GET".into()),
            route: Some("/leak".into()),
            size: 64 * KIB,
            weight: 586_016,
        })),
        Row::HeapSample(Box::new(HeapSampleRow {
            id: 2,
            ts_ns: BASE + 5_000_000,
            pid: 101,
            size: 4 * KIB,
            weight: 526_336,
            ..HeapSampleRow::default()
        })),
        Row::HeapSampleFreed {
            id: 2,
            ts_ns: BASE + 500_000_000,
        },
        Row::Frame(Box::new(FrameRow {
            id: 1,
            module: Arc::from("/srv/server"),
            offset: 0x1000,
            function: Some("main".into()),
            file: Some("main.c".into()),
            line: Some(12),
        })),
        Row::Stack {
            id: 1,
            frames: vec![1],
            unwind: Unwind::FramePointers,
        },
        Row::StackCharge(Box::new(StackChargeRow {
            ts_ns: BASE + 2_000_000,
            req_end_ns: BASE + 2_000_000,
            method: Some("GET".into()),
            route: Some("/leak".into()),
            pid: 101,
            stack: 1,
            grown: 64 * KIB,
            released: 0,
            pages: 16,
        })),
        Row::LogLine(Box::new(LogLineRow {
            source: "access.log".into(),
            arrived_ns: BASE + 3_000_000,
            ts_ns: Some(BASE + 2_000_000),
            method: Some("GET".into()),
            target: Some("/leak?q=0".into()),
            route: Some("/leak".into()),
            status: Some(200),
            bytes: Some(300),
            duration_us: Some(2000),
            client: Some("192.0.2.1".into()),
            user_agent: Some("curl/8".into()),
            request_id: Some(1),
            ..LogLineRow::default()
        })),
        Row::LogLine(Box::new(LogLineRow {
            source: "access.log".into(),
            arrived_ns: BASE + 4_000_000,
            reason: Some("missing_timestamp"),
            raw: Some("garbage".into()),
            ..LogLineRow::default()
        })),
    ]);
    for s in 0..=2 {
        let ts_ns = BASE + s * NS_PER_SEC;
        rows.push(Row::Sample {
            ts_ns,
            pid: 101,
            rss_bytes: (8 << 20) + s as u64 * (3200 * KIB),
            vm_bytes: 64 << 20,
            faults: 300 * s as u64,
        });
        rows.push(Row::Counters(CountersRow {
            ts_ns,
            events: 1000 * s as u64,
            dropped: 0,
            unpaired_exits: 1,
            map_full: 0,
            undecodable: 0,
            untracked_bytes: 0,
            unmatched_release_bytes: 4 * KIB,
            unseen_release_bytes: 0,
        }));
    }
    rows.extend([
        Row::Meta(meta::STOP_REASON.into(), "signal".into()),
        Row::Meta(meta::GO_SAMPLE_RATES.into(), "101=524288".into()),
        Row::Meta(meta::GO_SAMPLES.into(), "2".into()),
        Row::Meta(meta::GO_SAMPLES_OUTSIDE.into(), "1".into()),
        Row::Meta(meta::GO_SAMPLES_FREED.into(), "1".into()),
        Row::Meta(meta::GO_SAMPLE_UNKNOWN_FREES.into(), "0".into()),
        Row::Meta(meta::ENDED_NS.into(), (BASE + 2 * NS_PER_SEC).to_string()),
    ]);
    writer.send(rows);
    writer.finish().unwrap();
}

/// `got` is the checked-in `testdata/NAME`, or (with `MEMWATCH_BLESS` set) becomes it.
fn check_against(name: &str, got: &str) {
    let expected = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/views/testdata")
        .join(name);
    if std::env::var_os("MEMWATCH_BLESS").is_some() {
        std::fs::write(&expected, got).unwrap();
    }
    let want = std::fs::read_to_string(&expected).unwrap();
    if got != want {
        let first = got
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| got.lines().count().min(want.lines().count()));
        panic!(
            "{name} changed at line {}: now {:?}, expected {:?}",
            first + 1,
            got.lines().nth(first),
            want.lines().nth(first)
        );
    }
}

#[test]
fn the_report_json_is_unchanged_on_the_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    write(&path);
    let rec = Recording::open(&path).unwrap();
    let report = Report::build(&rec)
        .unwrap()
        .with_call_sites(&rec, 5)
        .unwrap();
    let json = format!("{}\n", serde_json::to_string_pretty(&report).unwrap());
    check_against("report.json", &json);
}

/// Every table the writer fills, row by row in a stable order: what the report does not show
/// of a row (a rollup's sums, a column no view reads) is pinned here.
#[test]
fn the_stored_rows_are_unchanged_on_the_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    write(&path);
    let db = rusqlite::Connection::open(&path).unwrap();
    let tables: Vec<String> = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut dump = String::new();
    for table in tables {
        let mut stmt = db.prepare(&format!("SELECT * FROM {table}")).unwrap();
        let columns = stmt.column_count();
        dump.push_str(&format!("{table}: {}\n", stmt.column_names().join(", ")));
        let mut rows: Vec<String> = stmt
            .query_map([], |r| {
                (0..columns)
                    .map(|i| {
                        r.get::<_, rusqlite::types::Value>(i)
                            .map(|v| format!("{v:?}"))
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(|v| v.join(", "))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        rows.sort();
        for row in rows {
            dump.push_str(&format!("  {row}\n"));
        }
    }
    check_against("fixture-tables.txt", &dump);
}

/// The named types spell themselves as the strings they replaced: serde's name is the name the
/// text and the file use.
#[test]
fn named_types_serialise_as_their_names() {
    use crate::views::report::Retention;
    for origin in ProcessOrigin::ALL {
        assert_eq!(
            serde_json::to_value(origin).unwrap(),
            serde_json::Value::from(origin.name())
        );
        assert_eq!(ProcessOrigin::from_name(origin.name()), Some(origin));
    }
    for (retention, name) in [
        (Retention::Keeps, "keeps"),
        (Retention::HighWater, "high-water"),
        (Retention::None, "none"),
        (Retention::TooFew, "too-few"),
        (Retention::Unknown, "unknown"),
    ] {
        assert_eq!(retention.name(), name);
        assert_eq!(
            serde_json::to_value(retention).unwrap(),
            serde_json::Value::from(name)
        );
        assert_eq!(
            serde_json::from_value::<Retention>(name.into()).unwrap(),
            retention
        );
    }
}

/// A process origin memwatch never writes (a hand-edited file) does not decode: the processes
/// query fails, as for any value of the wrong type, rather than showing it.
#[test]
fn an_unknown_process_origin_does_not_decode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    write(&path);
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute(
            "UPDATE processes SET origin = 'adopted' WHERE pid = 102",
            [],
        )
        .unwrap();
    let err = Recording::open(&path).unwrap().processes().unwrap_err();
    assert!(
        err.to_string()
            .contains("\"adopted\" is not a process origin"),
        "{err}"
    );
}
