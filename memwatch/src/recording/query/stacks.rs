//! Call sites (schema 5, `record --stacks`): resident memory per stack, with the origin model of
//! requests (grown by the requests that ended in a range, released by its end), and the
//! interned stacks and frames. Recordings without stacks answer empty.

use std::collections::HashMap;

use super::requests::rollup_seconds;
use crate::{error::RecordingError, model::meta, recording::Recording};

/// What one call site's growth did for one route in one process, over a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackCharge {
    /// `stacks.id`; 0 when no stack was taken for the growth.
    pub stack: i64,
    /// `-` when unknown.
    pub method: String,
    /// `-` when unknown, `""` for growth outside any request.
    pub route: String,
    pub pid: i64,
    /// Bytes made resident by the requests that ended in the range.
    pub grown: i64,
    /// Of those, released by the end of the range.
    pub released: i64,
    /// Pages made resident.
    pub pages: i64,
}

impl StackCharge {
    /// Bytes still resident at the end of the range.
    pub fn retained(&self) -> i64 {
        self.grown.saturating_sub(self.released).max(0)
    }
}

/// A symbolized frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The binary's path, `[anon]` or `[perf-map]`.
    pub module: String,
    /// File offset in `module` (the address for `[anon]` and `[perf-map]`).
    pub offset: i64,
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<i64>,
}

impl Frame {
    /// The function's name, or, when no symbol covers the frame, the module's file name and the
    /// offset (never nothing).
    pub fn label(&self) -> String {
        match &self.function {
            Some(f) => f.clone(),
            None => {
                let name = self.module.rsplit('/').next().unwrap_or(&self.module);
                format!("{name}+{:#x}", self.offset)
            }
        }
    }
}

/// Every interned stack and frame of a recording.
#[derive(Debug, Clone, Default)]
pub struct CallSites {
    /// `stacks.id` → frame ids, leaf first.
    pub stacks: HashMap<i64, Vec<i64>>,
    /// `stacks.id` → `fp` or `dwarf`.
    pub unwind: HashMap<i64, String>,
    pub frames: HashMap<i64, Frame>,
}

impl CallSites {
    /// The frames of `stack` as the views show them, leaf first: the C library's frames at the
    /// innermost end (malloc's internals, `memset`, the `mmap` wrapper) are folded into their
    /// caller, as memory profilers do, so that the innermost frame is the code that asked for
    /// the memory. Empty for stack 0 or an unknown id.
    pub fn frames_of(&self, stack: i64) -> Vec<&Frame> {
        self.site_ids(stack)
            .iter()
            .filter_map(|id| self.frames.get(id))
            .collect()
    }

    /// The frame ids of [`CallSites::frames_of`].
    pub fn site_ids(&self, stack: i64) -> &[i64] {
        let Some(ids) = self.stacks.get(&stack) else {
            return &[];
        };
        let inner = ids
            .iter()
            .take_while(|id| self.frames.get(id).is_some_and(|f| in_c_library(&f.module)))
            .count();
        // A stack wholly in the C library keeps its outermost frame.
        &ids[inner.min(ids.len().saturating_sub(1))..]
    }

    /// Every frame of `stack`, leaf first, as it was taken.
    pub fn all_frames_of(&self, stack: i64) -> Vec<&Frame> {
        self.stacks
            .get(&stack)
            .map(|ids| ids.iter().filter_map(|id| self.frames.get(id)).collect())
            .unwrap_or_default()
    }
}

/// Whether `module` is the C library or the dynamic loader (glibc or musl).
pub fn in_c_library(module: &str) -> bool {
    let name = module.rsplit('/').next().unwrap_or(module);
    name.starts_with("libc.so")
        || name.starts_with("libc-")
        || name.starts_with("ld-linux")
        || name.starts_with("ld-musl")
        || name.starts_with("libpthread")
}

impl Recording {
    /// Whether the recording was made with `--stacks`.
    pub fn stacks_recorded(&self) -> Result<bool, RecordingError> {
        Ok(self.has_stacks() && self.meta(meta::STACK_EVERY)?.is_some())
    }

    /// Resident memory per call site, route, method and process, grown by the requests (and
    /// outside any request) that ended in the whole seconds of `[from_ns, to_ns]`, with what of
    /// it was released by `to_ns` (to the second); only `route`'s when given. Whole.
    pub fn stack_charges(
        &self,
        from_ns: i64,
        to_ns: i64,
        route: Option<&str>,
    ) -> Result<Vec<StackCharge>, RecordingError> {
        if !self.has_stacks() {
            return Ok(Vec::new());
        }
        let (first_s, last_s) = rollup_seconds(from_ns, to_ns);
        self.rows(
            "SELECT stack, method, route, pid, SUM(grown), SUM(released), SUM(pages)
             FROM stack_rollup
             WHERE req_second BETWEEN ?1 AND ?2 AND second <= ?2 AND (?3 IS NULL OR route = ?3)
             GROUP BY 1, 2, 3, 4",
            rusqlite::params![first_s, last_s, route],
            |r| {
                Ok(StackCharge {
                    stack: r.get(0)?,
                    method: r.get(1)?,
                    route: r.get(2)?,
                    pid: r.get(3)?,
                    grown: r.get(4)?,
                    released: r.get(5)?,
                    pages: r.get(6)?,
                })
            },
        )
    }

    /// Every interned stack and frame. A stack whose frame list does not parse is skipped
    /// (memwatch never writes one). Whole.
    pub fn call_sites(&self) -> Result<CallSites, RecordingError> {
        let mut sites = CallSites::default();
        if !self.has_stacks() {
            return Ok(sites);
        }
        for (id, frames, unwind) in self.rows("SELECT id, frames, unwind FROM stacks", [], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })? {
            let parsed: Result<Vec<i64>, _> = frames
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::parse)
                .collect();
            match parsed {
                Ok(ids) => {
                    sites.stacks.insert(id, ids);
                    sites.unwind.insert(id, unwind);
                }
                Err(e) => tracing::warn!(stack = id, frames, error = %e, "stack skipped"),
            }
        }
        for (id, frame) in self.rows(
            "SELECT id, module, offset, function, file, line FROM frames",
            [],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    Frame {
                        module: r.get(1)?,
                        offset: r.get(2)?,
                        function: r.get(3)?,
                        file: r.get(4)?,
                        line: r.get(5)?,
                    },
                ))
            },
        )? {
            sites.frames.insert(id, frame);
        }
        Ok(sites)
    }
}

/// A recording with call sites, for the tests of the views that read them: this crate's, and
/// (with the `fixtures` feature) the browser test's, which serves it with `memwatch view`.
#[cfg(any(test, feature = "fixtures"))]
pub mod fixture {
    use std::{path::Path, sync::Arc};

    use crate::{
        model::{FrameRow, RequestRow, Row, StackChargeRow, Unwind, meta},
        recording::Writer,
    };

    pub use crate::units::NS_PER_SEC as S;
    /// The second the fixture's requests end in.
    pub const B: i64 = 1_800_000_000;
    pub const KIB: u64 = 1024;

    fn frame(id: u32, module: &str, offset: u64, function: Option<&str>) -> Row {
        Row::Frame(Box::new(FrameRow {
            id,
            module: Arc::from(module),
            offset,
            function: function.map(str::to_owned),
            file: None,
            line: None,
        }))
    }

    fn charge(
        route: &str,
        stack: u32,
        (end_s, ts_s): (i64, i64),
        (grown, released): (u64, u64),
    ) -> Row {
        Row::StackCharge(Box::new(StackChargeRow {
            ts_ns: ts_s * S + 5,
            req_end_ns: end_s * S + 5,
            method: Some("GET".into()),
            route: Some(route.into()),
            pid: 42,
            stack,
            grown,
            released,
            pages: grown / (4 * KIB),
        }))
    }

    /// Two routes with their own call sites, sharing `main` and `handle`:
    /// - stack 1 (`leak_a` ← `handle` ← `main`): `/a` keeps 512 KiB (two requests of 256 KiB,
    ///   ending at B and B+1);
    /// - stack 2 (`leak_b` ← `handle` ← `main`): `/b` grows 300 KiB at B and keeps 100 KiB (200
    ///   KiB released before it ended);
    /// - stack 3 (an unsymbolized frame in `libfoo.so` at 0x1234 ← `main`): `/b` keeps 64 KiB at
    ///   B, released at B+2 by another thread;
    /// - stack 0 (none taken): `/a` 8 KiB at B;
    /// - outside any request, stack 1: 16 KiB at B.
    pub fn write(path: &Path) {
        let writer = Writer::create(path, &[]).unwrap();
        let rows = vec![
            Row::Meta(meta::STACK_EVERY.into(), "65536".into()),
            frame(1, "/srv/app", 0x1000, Some("main")),
            frame(2, "/srv/app", 0x2000, Some("handle")),
            frame(3, "/srv/app", 0x3000, Some("leak_a")),
            frame(4, "/srv/app", 0x4000, Some("leak_b")),
            frame(5, "/usr/lib/libfoo.so", 0x1234, None),
            Row::Stack {
                id: 1,
                frames: vec![3, 2, 1],
                unwind: Unwind::FramePointers,
            },
            Row::Stack {
                id: 2,
                frames: vec![4, 2, 1],
                unwind: Unwind::FramePointers,
            },
            Row::Stack {
                id: 3,
                frames: vec![5, 1],
                unwind: Unwind::Dwarf,
            },
            Row::Request(RequestRow {
                id: 1,
                method: Some("GET".into()),
                route: Some("/a".into()),
                target: Some("/a".into()),
                start_ns: B * S,
                end_ns: B * S + 5,
                exact: true,
                grown: 264 * KIB,
                ..RequestRow::default()
            }),
            charge("/a", 1, (B, B), (256 * KIB, 0)),
            charge("/a", 1, (B + 1, B + 1), (256 * KIB, 0)),
            charge("/a", 0, (B, B), (8 * KIB, 0)),
            charge("/b", 2, (B, B), (300 * KIB, 200 * KIB)),
            charge("/b", 3, (B, B), (64 * KIB, 0)),
            charge("/b", 3, (B, B + 2), (0, 64 * KIB)),
            Row::StackCharge(Box::new(StackChargeRow {
                ts_ns: B * S + 7,
                req_end_ns: B * S + 7,
                method: None,
                route: Some("".into()),
                pid: 42,
                stack: 1,
                grown: 16 * KIB,
                released: 0,
                pages: 4,
            })),
        ];
        writer.send(rows);
        writer.finish().unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::{
        Frame,
        fixture::{B, KIB, S, write},
    };
    use crate::recording::Recording;

    fn kib(v: i64) -> i64 {
        v / KIB as i64
    }

    /// Per call site and route: grown by the range's requests, released by its end; a later
    /// release outside the range does not count; outside growth has route "".
    #[test]
    fn charges_follow_the_origin_model() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        write(&path);
        let rec = Recording::open(&path).unwrap();
        assert!(rec.stacks_recorded().unwrap());
        let mut all = rec.stack_charges(B * S, (B + 1) * S + 9, None).unwrap();
        all.sort_by_key(|c| (c.route.clone(), c.stack));
        let got: Vec<_> = all
            .iter()
            .map(|c| (c.route.as_str(), c.stack, kib(c.grown), kib(c.retained())))
            .collect();
        assert_eq!(
            got,
            vec![
                ("", 1, 16, 16),
                ("/a", 0, 8, 8),
                ("/a", 1, 512, 512),
                ("/b", 2, 300, 100),
                ("/b", 3, 64, 64),
            ]
        );
        // By B+2 the release of stack 3's pages is in the range.
        let b = rec.stack_charges(B * S, (B + 2) * S, Some("/b")).unwrap();
        let mut got: Vec<_> = b.iter().map(|c| (c.stack, kib(c.retained()))).collect();
        got.sort_unstable();
        assert_eq!(got, vec![(2, 100), (3, 0)]);
        let mut sites = rec.call_sites().unwrap();
        let labels: Vec<String> = sites.frames_of(3).iter().map(|f| f.label()).collect();
        assert_eq!(labels, vec!["libfoo.so+0x1234", "main"]);
        // The C library's innermost frames fold into their caller.
        sites.frames.insert(
            9,
            Frame {
                module: "/usr/lib/x86_64-linux-gnu/libc.so.6".into(),
                offset: 0x99,
                function: Some("__memset_avx2".into()),
                file: None,
                line: None,
            },
        );
        sites.stacks.insert(4, vec![9, 3, 1]);
        let labels: Vec<String> = sites.frames_of(4).iter().map(|f| f.label()).collect();
        assert_eq!(labels, vec!["leak_a", "main"]);
        assert_eq!(sites.all_frames_of(4).len(), 3);
        sites.stacks.insert(5, vec![9]);
        assert_eq!(sites.frames_of(5).len(), 1);
        assert_eq!(sites.unwind[&3], "dwarf");
        assert!(sites.frames_of(0).is_empty());
    }
}
