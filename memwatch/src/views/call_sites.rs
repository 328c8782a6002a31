//! Call sites per route (`report --stacks`): which code made the memory each route keeps, read
//! from a recording made with `record --stacks`. [`CallSiteReport`] serialises under the report
//! JSON's `stacks` key (documented in `docs/recording.md`, "Report JSON"); [`super::format`]
//! renders it as text. The names given to growth without a stack and outside requests are shared
//! with the pprof view.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::{
    error::RecordingError,
    recording::{
        Recording,
        query::{Range, stacks::CallSites},
    },
    views::report::Endpoint,
};

/// The frame that stands for growth no stack was taken for (stack 0).
pub const NO_STACK: &str = "[no stack taken]";
/// The route of memory made outside any request (stored as `""`).
pub const OUTSIDE_REQUESTS: &str = "[outside requests]";
/// Said when a recording has no call sites.
pub const NOT_RECORDED: &str = "call sites were not recorded: record with `memwatch record \
     --stacks` to see which code made the memory each route keeps";
/// Frames shown per call site: the leaf and its nearest callers.
pub const FRAMES_SHOWN: usize = 4;

/// What `stack` is, leaf first, as people read it: its frames' labels, [`NO_STACK`] for stack
/// 0, or, for an id the recording has no frames for (memwatch never writes one), a frame that
/// says so.
pub fn stack_labels(sites: &CallSites, stack: i64) -> Vec<String> {
    if stack == 0 {
        return vec![NO_STACK.to_owned()];
    }
    let frames = sites.frames_of(stack);
    if frames.is_empty() {
        return vec![format!("[stack {stack} not in the recording]")];
    }
    frames.iter().map(|f| f.label()).collect()
}

/// The route as people read it: [`OUTSIDE_REQUESTS`] for `""`.
pub fn route_label(route: &str) -> &str {
    if route.is_empty() {
        OUTSIDE_REQUESTS
    } else {
        route
    }
}

/// Each route's call sites by the memory they keep, over the whole recording. Fields are in
/// alphabetical order at every level, as the API sends its answers.
#[derive(Debug, Clone, Serialize)]
pub struct CallSiteReport {
    /// Why there are no call sites and what to do; absent when they were recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<&'static str>,
    /// Whether the recording was made with `--stacks`.
    pub recorded: bool,
    /// Ranked as the report ranks its endpoints; routes that are not endpoints follow by
    /// retained bytes, and memory made outside any request comes last.
    pub routes: Vec<RouteSites>,
    /// Call sites listed per route at most.
    pub top: usize,
}

/// One route's call sites.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteSites {
    /// `-` when unknown (and outside requests).
    pub method: String,
    /// Grown bytes of the call sites left out of `sites`.
    pub more_grown_bytes: i64,
    /// Retained bytes of the call sites left out of `sites`.
    pub more_retained_bytes: i64,
    /// Call sites left out of `sites` (beyond `top`).
    pub more_sites: usize,
    /// `""` for memory made outside any request.
    pub route: String,
    /// By retained bytes, then grown bytes, largest first.
    pub sites: Vec<Site>,
}

/// One call site's memory for one route, summed over processes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Site {
    /// Frames of the whole stack (`frames` shows at most [`FRAMES_SHOWN`]).
    pub depth: usize,
    /// The leaf frame's label, then its callers' (see [`stack_labels`]).
    pub frames: Vec<String>,
    /// Made resident by the route's requests at this call site.
    pub grown_bytes: i64,
    /// Of that, released by the end of the recording.
    pub released_bytes: i64,
    /// Still held at the end of the recording.
    pub retained_bytes: i64,
    /// The recording's stack id (of the largest, when stacks that show the same frames were
    /// summed into this line); 0 when no stack was taken.
    pub stack: i64,
}

/// One call site's bytes for one route, as they add up.
#[derive(Debug, Default)]
struct Bytes {
    grown: i64,
    released: i64,
    retained: i64,
}

impl Bytes {
    /// Adds another stack's bytes (saturating: they come from the file).
    fn add(&mut self, other: &Self) {
        let Self {
            grown,
            released,
            retained,
        } = other;
        self.grown = self.grown.saturating_add(*grown);
        self.released = self.released.saturating_add(*released);
        self.retained = self.retained.saturating_add(*retained);
    }
}

impl CallSiteReport {
    /// The call sites of every route over the whole recording, at most `top` per route, ranked
    /// as `endpoints` (the report's) are.
    pub fn read(
        rec: &Recording,
        endpoints: &[Endpoint],
        top: usize,
    ) -> Result<Self, RecordingError> {
        if !rec.stacks_recorded()? {
            return Ok(Self {
                note: Some(NOT_RECORDED),
                recorded: false,
                routes: Vec::new(),
                top,
            });
        }
        // The routes' figures end when memwatch stopped the command it started, as the
        // report's do: its exit frees everything, and that is no call site's release.
        let (from, to) = rec.figures_range(Range::default())?.bounds();
        // (method, route) → stack → bytes, summed over processes.
        let mut by_route: BTreeMap<(String, String), BTreeMap<i64, Bytes>> = BTreeMap::new();
        for c in rec.stack_charges(from, to, None)? {
            let retained = c.retained();
            let e = by_route
                .entry((c.method, c.route))
                .or_default()
                .entry(c.stack)
                .or_default();
            e.add(&Bytes {
                grown: c.grown,
                released: c.released,
                retained,
            });
        }
        let sites = rec.call_sites()?;
        let mut routes: Vec<RouteSites> = by_route
            .into_iter()
            .map(|((method, route), stacks)| {
                // Stacks that show the same frames are one line: the same code, reached through
                // callers past those shown, or taken once along frame pointers and once copied.
                // (line, the retained bytes of the stack it is named after)
                let mut merged: BTreeMap<Vec<String>, (Site, i64)> = BTreeMap::new();
                for (stack, bytes) in stacks {
                    let labels = stack_labels(&sites, stack);
                    let depth = labels.len();
                    let shown: Vec<String> = labels.into_iter().take(FRAMES_SHOWN).collect();
                    let (site, largest) = merged.entry(shown.clone()).or_insert_with(|| {
                        let site = Site {
                            depth,
                            frames: shown,
                            grown_bytes: 0,
                            released_bytes: 0,
                            retained_bytes: 0,
                            stack,
                        };
                        (site, bytes.retained)
                    });
                    if bytes.retained > *largest {
                        site.stack = stack;
                        *largest = bytes.retained;
                    }
                    site.depth = site.depth.max(depth);
                    site.grown_bytes = site.grown_bytes.saturating_add(bytes.grown);
                    site.released_bytes = site.released_bytes.saturating_add(bytes.released);
                    site.retained_bytes = site.retained_bytes.saturating_add(bytes.retained);
                }
                let mut all: Vec<Site> = merged.into_values().map(|(site, _)| site).collect();
                all.sort_by(|a, b| {
                    b.retained_bytes
                        .cmp(&a.retained_bytes)
                        .then(b.grown_bytes.cmp(&a.grown_bytes))
                        .then(a.stack.cmp(&b.stack))
                });
                let more = all.split_off(top.min(all.len()));
                RouteSites {
                    method,
                    more_grown_bytes: more
                        .iter()
                        .map(|s| s.grown_bytes)
                        .fold(0, i64::saturating_add),
                    more_retained_bytes: more
                        .iter()
                        .map(|s| s.retained_bytes)
                        .fold(0, i64::saturating_add),
                    more_sites: more.len(),
                    route,
                    sites: all,
                }
            })
            .collect();
        let rank: HashMap<(&str, &str), usize> = endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| ((e.method.as_str(), e.route.as_str()), i))
            .collect();
        let retained = |r: &RouteSites| {
            r.sites
                .iter()
                .map(|s| s.retained_bytes)
                .fold(r.more_retained_bytes, i64::saturating_add)
        };
        routes.sort_by_cached_key(|r| {
            (
                r.route.is_empty(),
                rank.get(&(r.method.as_str(), r.route.as_str()))
                    .copied()
                    .unwrap_or(usize::MAX),
                std::cmp::Reverse(retained(r)),
                r.route.clone(),
                r.method.clone(),
            )
        });
        Ok(Self {
            note: None,
            recorded: true,
            routes,
            top,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        recording::query::stacks::fixture::{self, KIB},
        views::report::Report,
    };

    const K: i64 = KIB as i64;

    fn site(frames: &[&str], depth: usize, stack: i64, grown: i64, released: i64) -> Site {
        Site {
            depth,
            frames: frames.iter().map(|f| (*f).to_owned()).collect(),
            grown_bytes: grown * K,
            released_bytes: released * K,
            retained_bytes: (grown - released) * K,
            stack,
        }
    }

    /// The fixture's routes: `/a` (the report's only endpoint) first, `/b` (no request rows)
    /// next, outside requests last; within each, call sites by retained bytes; stack 3's later
    /// release counts over the whole recording.
    #[test]
    fn routes_rank_as_the_report_and_sites_by_retained() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        fixture::write(&path);
        let rec = Recording::open(&path).unwrap();
        let report = Report::build(&rec).unwrap();
        let got = CallSiteReport::read(&rec, &report.endpoints, 5).unwrap();
        assert!(got.recorded);
        assert_eq!(got.note, None);
        let leak_a = ["leak_a", "handle", "main"];
        assert_eq!(
            got.routes,
            vec![
                RouteSites {
                    method: "GET".into(),
                    more_grown_bytes: 0,
                    more_retained_bytes: 0,
                    more_sites: 0,
                    route: "/a".into(),
                    sites: vec![site(&leak_a, 3, 1, 512, 0), site(&[NO_STACK], 1, 0, 8, 0)],
                },
                RouteSites {
                    method: "GET".into(),
                    more_grown_bytes: 0,
                    more_retained_bytes: 0,
                    more_sites: 0,
                    route: "/b".into(),
                    sites: vec![
                        site(&["leak_b", "handle", "main"], 3, 2, 300, 200),
                        site(&["libfoo.so+0x1234", "main"], 2, 3, 64, 64),
                    ],
                },
                RouteSites {
                    method: "-".into(),
                    more_grown_bytes: 0,
                    more_retained_bytes: 0,
                    more_sites: 0,
                    route: "".into(),
                    sites: vec![site(&leak_a, 3, 1, 16, 0)],
                },
            ]
        );
        // One site per route: the rest are counted with what they keep.
        let one = CallSiteReport::read(&rec, &report.endpoints, 1).unwrap();
        let cut: Vec<_> = one
            .routes
            .iter()
            .map(|r| {
                (
                    r.route.as_str(),
                    r.sites.len(),
                    r.more_sites,
                    r.more_retained_bytes,
                )
            })
            .collect();
        assert_eq!(
            cut,
            vec![("/a", 1, 1, 8 * K), ("/b", 1, 1, 0), ("", 1, 0, 0)]
        );
    }

    /// `report --stacks` as text: the report, then each route's call sites; with one site per
    /// route, the rest are summed on a line of their own.
    #[test]
    fn report_text_lists_call_sites_per_route() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        fixture::write(&path);
        let rec = Recording::open(&path).unwrap();
        let plain = Report::build(&rec).unwrap();
        let with = plain.clone().with_call_sites(&rec, 5).unwrap();
        let text = with.to_text();
        let sites = "\
call sites: the top 5 per route by retained memory (leaf frame first, then its callers)
     retained       grown  call site
GET /a
   +512.0 KiB   512.0 KiB  leak_a ← handle ← main
     +8.0 KiB     8.0 KiB  [no stack taken]
GET /b
   +100.0 KiB   300.0 KiB  leak_b ← handle ← main
          0 B    64.0 KiB  libfoo.so+0x1234 ← main
[outside requests]
    +16.0 KiB    16.0 KiB  leak_a ← handle ← main
";
        assert_eq!(text, format!("{}\n{sites}", plain.to_text()));
        let one = Report::build(&rec)
            .unwrap()
            .with_call_sites(&rec, 1)
            .unwrap();
        let text = one.stacks.unwrap().to_text();
        assert_eq!(
            text,
            "\
call sites: the top 1 per route by retained memory (leaf frame first, then its callers)
     retained       grown  call site
GET /a
   +512.0 KiB   512.0 KiB  leak_a ← handle ← main
     +8.0 KiB     8.0 KiB  (1 more call site)
GET /b
   +100.0 KiB   300.0 KiB  leak_b ← handle ← main
          0 B    64.0 KiB  (1 more call site)
[outside requests]
    +16.0 KiB    16.0 KiB  leak_a ← handle ← main
"
        );
    }

    /// `report --stacks --format json`: a top-level `stacks` key, keys in alphabetical order at
    /// every level; without `--stacks` the key is absent.
    #[test]
    fn report_json_has_a_stacks_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        fixture::write(&path);
        let rec = Recording::open(&path).unwrap();
        let plain = Report::build(&rec).unwrap();
        let json = serde_json::to_value(&plain).unwrap();
        assert!(json.get("stacks").is_none(), "{json:#}");
        let with = plain.with_call_sites(&rec, 1).unwrap();
        let json = serde_json::to_value(&with).unwrap();
        assert_eq!(
            serde_json::to_string(&json["stacks"]).unwrap(),
            serde_json::to_string(&with.stacks).unwrap(),
        );
        assert_eq!(
            serde_json::to_string(&with.stacks).unwrap(),
            concat!(
                r#"{"recorded":true,"routes":["#,
                r#"{"method":"GET","more_grown_bytes":8192,"more_retained_bytes":8192,"#,
                r#""more_sites":1,"route":"/a","sites":[{"depth":3,"#,
                r#""frames":["leak_a","handle","main"],"grown_bytes":524288,"#,
                r#""released_bytes":0,"retained_bytes":524288,"stack":1}]},"#,
                r#"{"method":"GET","more_grown_bytes":65536,"more_retained_bytes":0,"#,
                r#""more_sites":1,"route":"/b","sites":[{"depth":3,"#,
                r#""frames":["leak_b","handle","main"],"grown_bytes":307200,"#,
                r#""released_bytes":204800,"retained_bytes":102400,"stack":2}]},"#,
                r#"{"method":"-","more_grown_bytes":0,"more_retained_bytes":0,"more_sites":0,"#,
                r#""route":"","sites":[{"depth":3,"frames":["leak_a","handle","main"],"#,
                r#""grown_bytes":16384,"released_bytes":0,"retained_bytes":16384,"stack":1}]}"#,
                r#"],"top":1}"#
            )
        );
    }

    /// A recording made without `--stacks` says so and how to record them.
    #[test]
    fn a_recording_without_stacks_says_how_to_record_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        crate::recording::Writer::create(&path, &[])
            .unwrap()
            .finish()
            .unwrap();
        let rec = Recording::open(&path).unwrap();
        let got = CallSiteReport::read(&rec, &[], 5).unwrap();
        assert!(!got.recorded);
        assert_eq!(got.note, Some(NOT_RECORDED));
        assert!(got.routes.is_empty());
        assert_eq!(
            serde_json::to_string(&got).unwrap(),
            format!(r#"{{"note":"{NOT_RECORDED}","recorded":false,"routes":[],"top":5}}"#)
        );
        assert_eq!(
            got.to_text(),
            "call sites were not recorded: record with `memwatch record --stacks` to see which \
             code made the memory each route keeps\n"
        );
    }
}
