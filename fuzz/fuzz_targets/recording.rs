//! A corrupted recording, opened and read the way `memwatch report`, `profile`, `pprof`, the
//! metrics endpoint and the page's views read one.
//!
//! The base is a small but complete recording, written once per process with memwatch's own
//! writer (requests on several routes, memory calls, samples, retained and released memory,
//! call sites, access-log lines, non-HTTP traffic) and compacted to 512-byte pages so that
//! every byte of it is reachable. The fuzz input is a control byte and a list of patches applied
//! to it (see [`patched`]). Opening must give a clean error or a recording, and every view of a recording
//! that opened must give a result or an error: never a panic.
#![no_main]

use std::{
    path::{Path, PathBuf},
    sync::{Arc, OnceLock},
};

use libfuzzer_sys::fuzz_target;
use memwatch::{
    model::{
        CountersRow, FrameRow, LogLineRow, MemRow, ProcessOrigin, ProcessRow, ReleaseRow,
        RequestRow, Row, StackChargeRow, Unwind, VmOriginRow, meta,
    },
    recording::{
        self, Recording, Writer,
        query::requests::{CountFrom, RequestFilter},
    },
    units::NS_PER_SEC,
    views::{
        flame::{CallTree, Limits},
        metrics::{RouteLabels, render},
        pprof::{self, Selection},
        report::Report,
    },
};
use memwatch_common::mem::MemOp;

/// One second, in the recording's nanoseconds.
const S: i64 = NS_PER_SEC;
/// When the base recording starts.
const T0: i64 = 1_800_000_000 * S;
const KIB: u64 = 1024;

/// A directory in memory when there is one: the target writes a file per input.
fn scratch_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    };
    base.join(format!("memwatch-fuzz-recording-{}", std::process::id()))
}

fn request(id: i64, method: &str, route: &str, status: u16, start_s: i64, grown: u64) -> Row {
    Row::Request(RequestRow {
        id,
        pid: 42,
        tid: 43 + (id % 2) as u32,
        conn: 1 + (id % 3) as u64,
        method: Some(method.into()),
        target: Some(format!("{route}?n={id}").into()),
        route: Some(route.into()),
        host: Some("example.test".into()),
        status: Some(status),
        start_ns: T0 + start_s * S,
        first_byte_ns: Some(T0 + start_s * S + 3_000_000),
        end_ns: T0 + start_s * S + 5_000_000,
        bytes_in: 120,
        bytes_out: 2048,
        vm_bytes: 64 * KIB as i64,
        rss_bytes: grown as i64,
        faults: grown / (4 * KIB),
        mem_calls: 2,
        exact: id % 4 != 0,
        grown,
        released: grown / 4,
        sampled_out: id % 7 == 0,
    })
}

fn mem(ts_s: i64, op: MemOp, len: u64, request_id: Option<i64>) -> Row {
    Row::Mem(MemRow {
        ts_ns: T0 + ts_s * S + 1_000_000,
        pid: 42,
        tid: 43,
        op,
        addr: 0x7f00_0000_0000,
        len,
        new_len: 0,
        prot: 3,
        flags: 0x22,
        fd: -1,
        ret: 0x7f00_0000_0000,
        ok: true,
        vm_delta: if op == MemOp::Munmap {
            -(len as i64)
        } else {
            len as i64
        },
        request_id,
        stack: Some(1),
    })
}

fn rows() -> Vec<Row> {
    let route = |s: &str| Some(Arc::<str>::from(s));
    let mut rows = vec![
        Row::Meta(meta::STARTED_NS.into(), T0.to_string()),
        Row::Meta(meta::ENDED_NS.into(), (T0 + 10 * S).to_string()),
        Row::Meta(meta::PAGE_SIZE.into(), "4096".into()),
        Row::Meta(meta::EBPF.into(), "true".into()),
        Row::Meta(meta::STACK_EVERY.into(), "65536".into()),
        Row::Meta(meta::ACCESS_LOGS.into(), "access.log".into()),
        Row::Meta(meta::access_log_format(0), "combined".into()),
        Row::Process(ProcessRow {
            pid: 42,
            ppid: Some(1),
            comm: "server".into(),
            cmdline: Some("server --port 8080".into()),
            started_ns: Some(T0 - S),
            origin: ProcessOrigin::Attached,
        }),
        Row::Thread {
            tid: 43,
            pid: 42,
            faults: 900,
            exited_ns: None,
        },
        Row::Thread {
            tid: 44,
            pid: 42,
            faults: 300,
            exited_ns: Some(T0 + 9 * S),
        },
    ];
    for s in 0..10 {
        rows.push(Row::Sample {
            ts_ns: T0 + s * S,
            pid: 42,
            rss_bytes: (10_000 + 700 * s as u64) * KIB,
            vm_bytes: 200_000 * KIB,
            faults: 100 * s as u64,
        });
        rows.push(Row::Counters(CountersRow {
            ts_ns: T0 + s * S,
            events: 1000 * s as u64,
            dropped: u64::from(s == 7),
            unpaired_exits: 0,
            map_full: 0,
            undecodable: 0,
            untracked_bytes: 0,
            unmatched_release_bytes: 4 * KIB,
            unseen_release_bytes: 2048 * KIB,
        }));
    }
    let routes = [
        ("GET", "/users/:id", 200),
        ("POST", "/upload", 201),
        ("GET", "/leak", 200),
        ("GET", "/missing", 404),
        ("DELETE", "/users/:id", 500),
    ];
    for id in 1..=15i64 {
        let (method, route, status) = routes[(id % 5) as usize];
        rows.push(request(
            id,
            method,
            route,
            status,
            id % 10,
            16 * KIB * id as u64,
        ));
        rows.push(mem(id % 10, MemOp::Mmap, 64 * KIB, Some(id)));
    }
    rows.push(mem(3, MemOp::Munmap, 64 * KIB, None));
    rows.push(mem(4, MemOp::Brk, 132 * KIB, None));
    rows.push(Row::Release(Box::new(ReleaseRow {
        ts_ns: T0 + 6 * S,
        pid: 42,
        request_id: 2,
        request_end_ns: T0 + 2 * S + 5_000_000,
        method: Some("POST".into()),
        route: route("/upload"),
        bytes: 8 * KIB,
    })));
    rows.push(Row::VmOrigin(Box::new(VmOriginRow {
        ts_ns: T0 + 3 * S + 5_000_000,
        req_end_ns: T0 + 3 * S + 5_000_000,
        method: Some("GET".into()),
        route: route("/leak"),
        grown: 64 * KIB,
        released: 0,
    })));
    rows.push(Row::OutsideGrowth {
        ts_ns: T0 + 5 * S,
        pid: 42,
        bytes: 32 * KIB,
    });
    rows.push(Row::NonHttp {
        ts_ns: T0 + 4 * S,
        pid: 42,
        conn: 9,
        kind: "tls",
        bytes: 517,
    });
    for (id, function) in [(1, "main"), (2, "handle"), (3, "leak")] {
        rows.push(Row::Frame(Box::new(FrameRow {
            id,
            module: Arc::from("/srv/server"),
            offset: 0x1000 * u64::from(id),
            function: Some(function.into()),
            file: Some("src/main.rs".into()),
            line: Some(10 * id),
        })));
    }
    rows.push(Row::Stack {
        id: 1,
        frames: vec![3, 2, 1],
        unwind: Unwind::FramePointers,
    });
    rows.push(Row::StackCharge(Box::new(StackChargeRow {
        ts_ns: T0 + 3 * S + 5_000_000,
        req_end_ns: T0 + 3 * S + 5_000_000,
        method: Some("GET".into()),
        route: route("/leak"),
        pid: 42,
        stack: 1,
        grown: 48 * KIB,
        released: 0,
        pages: 12,
    })));
    for (i, (reason, route_of)) in [(None, Some("/leak")), (Some("bad_request_line"), None)]
        .into_iter()
        .enumerate()
    {
        rows.push(Row::LogLine(Box::new(LogLineRow {
            source: Arc::from("access.log"),
            arrived_ns: T0 + (3 + i as i64) * S,
            ts_ns: Some(T0 + 3 * S),
            reason,
            raw: reason.map(|_| "\\x16\\x03\\x01".to_owned()),
            method: route_of.map(|_| "GET".to_owned()),
            target: route_of.map(str::to_owned),
            route: route_of.map(str::to_owned),
            status: route_of.map(|_| 200),
            bytes: Some(2048),
            duration_us: Some(5000),
            client: Some("10.0.0.7".into()),
            user_agent: Some("curl/8".into()),
            request_id: route_of.map(|_| 3),
        })));
    }
    rows
}

/// The base recording's bytes, compacted to small pages in a single file.
fn base() -> Vec<u8> {
    let dir = scratch_dir();
    std::fs::create_dir_all(&dir).expect("scratch directory");
    let path = dir.join("base.db");
    recording::remove(&path);
    let writer = Writer::create(&path, &[]).expect("create the base recording");
    writer.send(rows());
    writer.finish().expect("write the base recording");
    recording::finalize(&path).expect("finalize the base recording");
    let conn = rusqlite::Connection::open(&path).expect("reopen the base recording");
    conn.execute_batch("PRAGMA page_size = 512; VACUUM;")
        .expect("compact the base recording");
    drop(conn);
    let bytes = std::fs::read(&path).expect("read the base recording");
    recording::remove(&path);
    bytes
}

/// The base with the input's patches applied. The first byte is a control byte (see
/// [`fuzz_target`]); with its top bit set, the file is first truncated to `(next byte) / 256` of
/// its length. Then `[offset: u16 LE] [n: u8] [n bytes]`, repeated; offsets wrap around the
/// file's length.
fn patched(base: &[u8], control: u8, data: &[u8]) -> Vec<u8> {
    let mut file = base.to_vec();
    let mut rest = data;
    if control & 0x80 != 0
        && let Some((&fraction, tail)) = rest.split_first()
    {
        file.truncate(file.len() * usize::from(fraction) / 256);
        rest = tail;
    }
    while let [lo, hi, n, tail @ ..] = rest {
        let n = usize::from(*n).min(tail.len());
        let (bytes, after) = tail.split_at(n);
        if !file.is_empty() {
            let start = usize::from(u16::from_le_bytes([*lo, *hi])) % file.len();
            let end = (start + n).min(file.len());
            file[start..end].copy_from_slice(&bytes[..end - start]);
        }
        rest = after;
    }
    file
}

/// What the views read from a recording, in three groups so that one input pays for one: the
/// report with call sites (`memwatch report`, `profile`); the pprof profile and the call tree
/// (`memwatch pprof`, the page's flame graph); the metrics page and the page's API queries that
/// the report does not make. Errors are fine, panics are not.
fn read_views(rec: &Recording, group: u8) {
    match group {
        0 => {
            if let Ok(report) = Report::build(rec) {
                let _ = report.to_text();
                let _ = serde_json::to_string(&report);
                if let Ok(with_sites) = report.with_call_sites(rec, 5) {
                    let _ = with_sites.to_text();
                }
            }
        }
        1 => {
            if let Ok(profile) = pprof::build(rec, &Selection::default()) {
                let _ = pprof::encode(&profile);
            }
            let _ = CallTree::read(rec, (i64::MIN, i64::MAX), None, None, Limits::default());
        }
        2 => {
            let _ = render(rec, &mut RouteLabels::new(50));
            let _ = rec.sample_series(None);
            let _ = rec.retained_over_time(i64::MIN, i64::MAX, 100, 5);
            let _ = rec.newest_requests(
                &RequestFilter {
                    from_ns: i64::MIN,
                    to_ns: i64::MAX,
                    ..RequestFilter::default()
                },
                20,
            );
            for source in [CountFrom::Rows, CountFrom::Rollup] {
                let _ = rec.status_class_counts(T0, T0 + 10 * S, S, source);
            }
            let _ = rec.largest_mem_events(i64::MIN, i64::MAX, 10);
            let _ = rec.unmatched_or_rejected_lines(i64::MIN, i64::MAX, 10);
        }
        // Opening alone.
        _ => {}
    }
}

static BASE: OnceLock<Vec<u8>> = OnceLock::new();

// The input: a control byte (bits 0-1: which views to read, see `read_views`; bit 7:
// truncate first), then the patches of `patched`.
fuzz_target!(|data: &[u8]| {
    let base = BASE.get_or_init(base);
    let (control, patches) = data.split_first().map_or((0, data), |(&c, rest)| (c, rest));
    let path = scratch_dir().join("input.db");
    recording::remove(&path);
    if std::fs::write(&path, patched(base, control, patches)).is_err() {
        return;
    }
    match Recording::open(&path) {
        Ok(rec) => {
            let _ = rec.schema_version();
            read_views(&rec, control & 3);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    recording::remove(&path);
});
