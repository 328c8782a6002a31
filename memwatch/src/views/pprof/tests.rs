use std::{io::Read as _, path::Path, process::Command};

use prost::Message as _;

use super::*;
use crate::recording::query::stacks::fixture::{self, B, KIB, S};

const K: i64 = KIB as i64;

/// A profile file read back as pprof reads it: gunzipped, then decoded.
fn read(path: &Path) -> proto::Profile {
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut raw)
        .unwrap();
    proto::Profile::decode(raw.as_slice()).unwrap()
}

/// A sample as people read it: route, method and pid labels, frame names leaf first, values.
type Readable = (String, String, i64, Vec<String>, Vec<i64>);

fn readable(p: &proto::Profile) -> Vec<Readable> {
    let s = |i: i64| p.string_table[i as usize].clone();
    let function = |id: u64| p.function.iter().find(|f| f.id == id).unwrap();
    let location = |id: u64| p.location.iter().find(|l| l.id == id).unwrap();
    p.sample
        .iter()
        .map(|sample| {
            let label = |key: &str| {
                sample
                    .label
                    .iter()
                    .find(|l| s(l.key) == key)
                    .unwrap()
                    .clone()
            };
            let frames = sample
                .location_id
                .iter()
                .map(|&id| {
                    let l = location(id);
                    assert_eq!(l.line.len(), 1);
                    s(function(l.line[0].function_id).name)
                })
                .collect();
            assert_eq!(sample.label.len(), 3);
            (
                s(label(LABEL_ROUTE).str),
                s(label(LABEL_METHOD).str),
                label(LABEL_PID).num,
                frames,
                sample.value.clone(),
            )
        })
        .collect()
}

fn write_fixture(dir: &Path) -> Recording {
    let path = dir.join("r.db");
    fixture::write(&path);
    Recording::open(&path).unwrap()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// The whole recording: a sample per call site, route, method and pid with retained, grown
/// and faults; stack 0 is `[no stack taken]`, route "" `[outside requests]`, and stack 3's
/// later release counts.
#[test]
fn samples_carry_values_and_labels() {
    let dir = tempfile::tempdir().unwrap();
    let rec = write_fixture(dir.path());
    let out = dir.path().join("out.pb.gz");
    write(&rec, &Selection::default(), &out).unwrap();
    let p = read(&out);
    let s = |i: i64| p.string_table[i as usize].as_str();
    assert_eq!(s(0), "");
    let types: Vec<(&str, &str)> = p
        .sample_type
        .iter()
        .map(|t| (s(t.r#type), s(t.unit)))
        .collect();
    assert_eq!(
        types,
        vec![
            ("retained", "bytes"),
            ("grown", "bytes"),
            ("faults", "count")
        ]
    );
    assert_eq!(s(p.default_sample_type), "retained");
    let get = |route: &str, method: &str, frames: &[&str], v: [i64; 3]| -> Readable {
        (route.into(), method.into(), 42, strings(frames), v.to_vec())
    };
    let leak_a = ["leak_a", "handle", "main"];
    assert_eq!(
        readable(&p),
        vec![
            get(OUTSIDE_REQUESTS, "-", &leak_a, [16 * K, 16 * K, 4]),
            get("/a", "GET", &[NO_STACK], [8 * K, 8 * K, 2]),
            get("/a", "GET", &leak_a, [512 * K, 512 * K, 128]),
            get(
                "/b",
                "GET",
                &["leak_b", "handle", "main"],
                [100 * K, 300 * K, 75]
            ),
            get("/b", "GET", &["libfoo.so+0x1234", "main"], [0, 64 * K, 16]),
        ]
    );
    // Frames are interned: `main` is one location, `handle` one function.
    assert_eq!(p.location.len(), 6);
    assert_eq!(p.function.len(), 6);
    // The fixture says neither when it started nor when it ended.
    assert_eq!((p.time_nanos, p.duration_nanos), (0, 0));
}

/// Each module is a mapping named by its path; each location's address is its frame's
/// offset, and an unsymbolized frame keeps its module and offset (its mapping is marked
/// unsymbolized, so pprof may symbolize it from the binary).
#[test]
fn locations_keep_module_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let rec = write_fixture(dir.path());
    let p = build(&rec, &Selection::default()).unwrap();
    let s = |i: i64| p.string_table[i as usize].as_str();
    let mappings: Vec<(u64, &str, u64, bool)> = p
        .mapping
        .iter()
        .map(|m| (m.id, s(m.filename), m.memory_limit, m.has_functions))
        .collect();
    assert_eq!(
        mappings,
        vec![
            (1, "/srv/app", 0x4001, true),
            (2, "/usr/lib/libfoo.so", 0x1235, false),
        ]
    );
    let locations: Vec<(u64, u64, &str, &str)> = p
        .location
        .iter()
        .map(|l| {
            let f = p
                .function
                .iter()
                .find(|f| f.id == l.line[0].function_id)
                .unwrap();
            (l.mapping_id, l.address, s(f.name), s(f.filename))
        })
        .collect();
    assert_eq!(
        locations,
        vec![
            (1, 0x3000, "leak_a", "/srv/app"),
            (1, 0x2000, "handle", "/srv/app"),
            (1, 0x1000, "main", "/srv/app"),
            (0, 0, NO_STACK, ""),
            (1, 0x4000, "leak_b", "/srv/app"),
            (2, 0x1234, "libfoo.so+0x1234", "/usr/lib/libfoo.so"),
        ]
    );
}

/// `--route` keeps one route's samples; a range keeps the growth of the requests that ended
/// in it, with what was released by its end.
#[test]
fn route_and_range_select_samples() {
    let dir = tempfile::tempdir().unwrap();
    let rec = write_fixture(dir.path());
    let values = |route: &str, from_s: i64, to_s: i64| -> Vec<(Vec<String>, Vec<i64>)> {
        let selection = Selection {
            range: Range {
                from_ns: Some(from_s * S),
                to_ns: Some(to_s * S),
            },
            route: Some(route.into()),
        };
        readable(&build(&rec, &selection).unwrap())
            .into_iter()
            .map(|(_, _, _, frames, v)| (frames, v))
            .collect()
    };
    let foo = strings(&["libfoo.so+0x1234", "main"]);
    let leak_b = strings(&["leak_b", "handle", "main"]);
    // Until B+1 stack 3's pages are still held; by B+2 they are released.
    assert_eq!(
        values("/b", B, B + 1),
        vec![
            (leak_b.clone(), vec![100 * K, 300 * K, 75]),
            (foo.clone(), vec![64 * K, 64 * K, 16])
        ]
    );
    assert_eq!(
        values("/b", B, B + 2),
        vec![
            (leak_b, vec![100 * K, 300 * K, 75]),
            (foo, vec![0, 64 * K, 16])
        ]
    );
    // The second request of /a ended at B+1.
    let leak_a = strings(&["leak_a", "handle", "main"]);
    assert_eq!(
        values("/a", B + 1, B + 1),
        vec![(leak_a.clone(), vec![256 * K, 256 * K, 64])]
    );
    assert_eq!(
        values(OUTSIDE_REQUESTS, B, B),
        vec![(leak_a, vec![16 * K, 16 * K, 4])]
    );
    // A known route with nothing in the range is an empty profile.
    assert_eq!(values("/b", B + 5, B + 9), vec![]);
}

/// A recording without stacks, and a route without call sites, are bad input (exit 2) that
/// say what to do.
#[test]
fn without_stacks_or_route_it_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let rec = write_fixture(dir.path());
    let selection = Selection {
        route: Some("/c".into()),
        ..Selection::default()
    };
    let err = build(&rec, &selection).unwrap_err();
    assert_eq!(err.exit_code(), exit::INPUT);
    assert_eq!(
        err.to_string(),
        format!(
            "{} has no call sites for the route \"/c\"; its routes with call sites: \
             [outside requests], /a, /b.\n  Pass one of them to --route (\"[outside \
             requests]\" for memory made outside any request), or leave --route out",
            rec.path().display()
        )
    );
    let bare = dir.path().join("bare.db");
    crate::recording::Writer::create(&bare, &[])
        .unwrap()
        .finish()
        .unwrap();
    let err = build(&Recording::open(&bare).unwrap(), &Selection::default()).unwrap_err();
    assert_eq!(err.exit_code(), exit::INPUT);
    assert_eq!(
        err.to_string(),
        format!(
            "{} has no call sites: it was recorded without --stacks.\n  Record with \
             `memwatch record --stacks ...` to write a pprof profile of where memory is made",
            bare.display()
        )
    );
    let err = write(
        &rec,
        &Selection::default(),
        &dir.path().join("no/such/dir.pb.gz"),
    )
    .unwrap_err();
    assert!(matches!(err, PprofError::Write { .. }), "{err}");
    assert_eq!(err.exit_code(), exit::INPUT);
}

/// `go tool pprof` reads the file: `/a`'s top call site by retained memory is `leak_a`,
/// keeping 512 KiB. Needs Go (Debian's golang-go, which `cargo xtask setup --test`
/// installs): without it this test fails, it is never skipped.
#[test]
fn go_tool_pprof_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let rec = write_fixture(dir.path());
    let out = dir.path().join("a.pb.gz");
    let selection = Selection {
        route: Some("/a".into()),
        ..Selection::default()
    };
    write(&rec, &selection, &out).unwrap();
    let run = Command::new("go")
        .args(["tool", "pprof", "-top", "-sample_index=retained"])
        .arg(&out)
        .env("TZ", "UTC")
        .output();
    let run = match run {
        Ok(run) => run,
        Err(e) => panic!(
            "cannot run `go tool pprof` ({e}): install Go, e.g. `apt-get install golang-go` \
             (`cargo xtask setup --test` does), and run the tests again"
        ),
    };
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert_eq!(
        stdout,
        "File: app\n\
         Type: retained\n\
         Showing nodes accounting for 520kB, 100% of 520kB total\n      \
         flat  flat%   sum%        cum   cum%\n     \
         512kB 98.46% 98.46%      512kB 98.46%  leak_a\n       \
         8kB  1.54%   100%        8kB  1.54%  [no stack taken]\n         \
         0     0%   100%      512kB 98.46%  handle\n         \
         0     0%   100%      512kB 98.46%  main\n",
        "{stderr}"
    );
}
