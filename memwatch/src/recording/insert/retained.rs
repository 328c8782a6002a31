//! Retained memory's rows, summed per batch by their keys before they are written, since a
//! busy server releases memory in many small pieces: releases credited back to the request that
//! made the memory resident (`releases`, and by route and second in `release_rollup`), growth
//! outside any request (`outside_growth`), address space by origin (`vm_origin_rollup`) and
//! resident memory by call site (`stack_rollup`).

use rusqlite::{Transaction, params};

use crate::{model::Row, units::NS_PER_SEC};

/// A `stack_rollup` row's key: (second, req_second, method, route, pid, stack).
type StackKey<'a> = (i64, i64, &'a str, &'a str, u32, u32);

/// One batch's releases, outside growth, address space and call-site charges, summed by their
/// keys before they are written.
#[derive(Debug, Default)]
pub(super) struct BatchSums<'a> {
    /// (second, request_id, pid) → (req_end_ns, bytes).
    releases: rustc_hash::FxHashMap<(i64, i64, u32), (i64, i64)>,
    /// (second, req_second, method, route) → bytes.
    rollup: rustc_hash::FxHashMap<(i64, i64, &'a str, &'a str), i64>,
    /// (second, pid) → bytes.
    outside: rustc_hash::FxHashMap<(i64, u32), i64>,
    /// (second, req_second, method, route) → (grown, released) address space.
    vm: rustc_hash::FxHashMap<(i64, i64, &'a str, &'a str), (i64, i64)>,
    /// (second, req_second, method, route, pid, stack) → [grown, released, pages].
    stacks: rustc_hash::FxHashMap<StackKey<'a>, [i64; 3]>,
}

impl<'a> BatchSums<'a> {
    /// Adds `row` if it is one of the kinds summed here; other rows are stored one by one.
    pub(super) fn add(&mut self, row: &'a Row) {
        match row {
            Row::Release(r) => {
                let second = r.ts_ns.div_euclid(NS_PER_SEC);
                let e = self
                    .releases
                    .entry((second, r.request_id, r.pid))
                    .or_insert((r.request_end_ns, 0));
                e.1 += r.bytes as i64;
                let (req_second, method, route) = if r.request_id == 0 {
                    (0, "-", "")
                } else {
                    (
                        r.request_end_ns.div_euclid(NS_PER_SEC),
                        r.method.as_deref().unwrap_or("-"),
                        r.route.as_deref().unwrap_or("-"),
                    )
                };
                *self
                    .rollup
                    .entry((second, req_second, method, route))
                    .or_default() += r.bytes as i64;
            }
            Row::VmOrigin(v) => {
                let e = self
                    .vm
                    .entry((
                        v.ts_ns.div_euclid(NS_PER_SEC),
                        v.req_end_ns.div_euclid(NS_PER_SEC),
                        v.method.as_deref().unwrap_or("-"),
                        v.route.as_deref().unwrap_or("-"),
                    ))
                    .or_default();
                e.0 += v.grown as i64;
                e.1 += v.released as i64;
            }
            Row::StackCharge(c) => {
                let e = self
                    .stacks
                    .entry((
                        c.ts_ns.div_euclid(NS_PER_SEC),
                        c.req_end_ns.div_euclid(NS_PER_SEC),
                        c.method.as_deref().unwrap_or("-"),
                        c.route.as_deref().unwrap_or("-"),
                        c.pid,
                        c.stack,
                    ))
                    .or_default();
                e[0] += c.grown as i64;
                e[1] += c.released as i64;
                e[2] += c.pages as i64;
            }
            Row::OutsideGrowth { ts_ns, pid, bytes } => {
                *self
                    .outside
                    .entry((ts_ns.div_euclid(NS_PER_SEC), *pid))
                    .or_default() += *bytes as i64;
            }
            _ => {}
        }
    }

    /// Adds the sums to their tables, to what earlier batches put there.
    pub(super) fn write(self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        let Self {
            releases,
            rollup,
            outside,
            vm,
            stacks,
        } = self;
        let mut stmt = tx.prepare_cached(
            "INSERT INTO stack_rollup (second, req_second, method, route, pid, stack, grown,
               released, pages)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (second, req_second, method, route, pid, stack)
             DO UPDATE SET grown = grown + excluded.grown, released = released + excluded.released,
               pages = pages + excluded.pages",
        )?;
        for ((second, req_second, method, route, pid, stack), [grown, released, pages]) in stacks {
            stmt.execute(params![
                second, req_second, method, route, pid, stack, grown, released, pages
            ])?;
        }
        let mut stmt = tx.prepare_cached(
            "INSERT INTO vm_origin_rollup (second, req_second, method, route, grown, released)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (second, req_second, method, route)
             DO UPDATE SET grown = grown + excluded.grown, released = released + excluded.released",
        )?;
        for ((second, req_second, method, route), (grown, released)) in vm {
            stmt.execute(params![second, req_second, method, route, grown, released])?;
        }
        let mut stmt = tx.prepare_cached(
            "INSERT INTO releases (second, request_id, req_end_ns, pid, bytes)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (second, request_id, pid) DO UPDATE SET bytes = bytes + excluded.bytes",
        )?;
        for ((second, id, pid), (end, bytes)) in releases {
            stmt.execute(params![second, id, end, pid, bytes])?;
        }
        let mut stmt = tx.prepare_cached(
            "INSERT INTO release_rollup (second, req_second, method, route, bytes)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (second, req_second, method, route)
             DO UPDATE SET bytes = bytes + excluded.bytes",
        )?;
        for ((second, req_second, method, route), bytes) in rollup {
            stmt.execute(params![second, req_second, method, route, bytes])?;
        }
        let mut stmt = tx.prepare_cached(
            "INSERT INTO outside_growth (second, pid, bytes) VALUES (?1, ?2, ?3)
             ON CONFLICT (second, pid) DO UPDATE SET bytes = bytes + excluded.bytes",
        )?;
        for ((second, pid), bytes) in outside {
            stmt.execute(params![second, pid, bytes])?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use crate::{model::Row, recording::Writer, units::NS_PER_SEC};

    /// Releases and outside growth are summed per key within and across batches.
    #[test]
    fn releases_and_outside_growth_are_summed_per_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let writer = Writer::create(&path, &[]).unwrap();
        let route: std::sync::Arc<str> = "/leak".into();
        let release = |ts_ns: i64, request_id: i64, bytes: u64| {
            Row::Release(Box::new(crate::model::ReleaseRow {
                ts_ns,
                pid: 9,
                request_id,
                request_end_ns: if request_id == 0 { 0 } else { 3_000_000_000 },
                method: Some("GET".into()),
                route: Some(std::sync::Arc::clone(&route)),
                bytes,
            }))
        };
        let s = NS_PER_SEC;
        writer.send(vec![release(5 * s, 7, 4096), release(5 * s + 10, 7, 8192)]);
        writer.send(vec![
            release(5 * s + 20, 7, 4096),
            release(6 * s, 0, 100),
            Row::OutsideGrowth {
                ts_ns: 6 * s,
                pid: 9,
                bytes: 65536,
            },
            Row::OutsideGrowth {
                ts_ns: 6 * s + 5,
                pid: 9,
                bytes: 4096,
            },
        ]);
        writer.finish().unwrap();
        let db = Connection::open(&path).unwrap();
        let releases: Vec<(i64, i64, i64, i64)> = db
            .prepare("SELECT second, request_id, req_end_ns, bytes FROM releases ORDER BY 1, 2")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(releases, vec![(5, 7, 3 * s, 16384), (6, 0, 0, 100)]);
        let rollup: Vec<(i64, i64, String, String, i64)> = db
            .prepare(
                "SELECT second, req_second, method, route, bytes FROM release_rollup ORDER BY 1",
            )
            .unwrap()
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rollup,
            vec![
                (5, 3, "GET".into(), "/leak".into(), 16384),
                (6, 0, "-".into(), String::new(), 100)
            ]
        );
        let outside: (i64, i64) = db
            .query_row("SELECT second, bytes FROM outside_growth", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(outside, (6, 69632));
    }
}
