//! Requests: each one's row (`request_rows`, its host interned in `hosts`, its target stored
//! only where it differs from its route), and the per-second sums of a batch's requests added
//! to `request_rollup`, which range queries over millions of requests read instead.

use std::sync::LazyLock;

use rusqlite::{CachedStatement, Transaction, params};

use crate::{model::RequestRow, units::NS_PER_SEC};

const INSERT_ROLLUP: &str = "INSERT INTO request_rollup (second, method, route, status, n, approx,
       vm_sum, rss_sum, faults, mem_calls, grown, released, sampled_out)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
     ON CONFLICT (second, method, route, status) DO UPDATE SET n = n + excluded.n,
       approx = approx + excluded.approx, vm_sum = vm_sum + excluded.vm_sum,
       rss_sum = rss_sum + excluded.rss_sum, faults = faults + excluded.faults,
       mem_calls = mem_calls + excluded.mem_calls, grown = grown + excluded.grown,
       released = released + excluded.released, sampled_out = sampled_out + excluded.sampled_out";

pub(super) const INSERT_REQUEST: &str =
    "INSERT INTO request_rows (id, pid, tid, conn, method, target,
       route, host_id, status, end_ns, dur_ns, ttfb_ns, bytes_in, bytes_out, vm_bytes, rss_bytes,
       faults, mem_calls, exact, grown, released, sampled_out)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,
       ?20, ?21, ?22)";

/// What one second's requests of one (method, route, status) add to `request_rollup`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct RequestSums {
    /// Requests.
    n: i64,
    /// Of them, charged approximately (not `exact`).
    approx: i64,
    vm_sum: i64,
    rss_sum: i64,
    faults: i64,
    mem_calls: i64,
    grown: i64,
    released: i64,
    /// Of them, not followed by the heap probes.
    sampled_out: i64,
}

impl RequestSums {
    fn add(&mut self, r: &RequestRow) {
        self.n += 1;
        self.approx += i64::from(!r.exact);
        self.vm_sum += r.vm_bytes;
        self.rss_sum += r.rss_bytes;
        self.faults += r.faults as i64;
        self.mem_calls += r.mem_calls as i64;
        self.grown += r.grown as i64;
        self.released += r.released as i64;
        self.sampled_out += i64::from(r.sampled_out);
    }
}

/// Per-second sums of one batch's requests: (second, method, route, status) → sums. Keys
/// borrow from the batch: nothing is cloned per request.
#[derive(Debug, Default)]
pub(super) struct Rollup<'a>(rustc_hash::FxHashMap<(i64, &'a str, &'a str, i64), RequestSums>);

impl<'a> Rollup<'a> {
    pub(super) fn add(&mut self, r: &'a RequestRow) {
        let key = (
            r.end_ns.div_euclid(NS_PER_SEC),
            r.method.as_deref().unwrap_or("-"),
            r.route.as_deref().unwrap_or("-"),
            r.status.map_or(-1, i64::from),
        );
        self.0.entry(key).or_default().add(r);
    }

    /// Adds the sums to `request_rollup`, to what earlier batches put there.
    pub(super) fn write(self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        let mut upsert = tx.prepare_cached(INSERT_ROLLUP)?;
        for ((second, method, route, status), s) in self.0 {
            upsert.execute(params![
                second,
                method,
                route,
                status,
                s.n,
                s.approx,
                s.vm_sum,
                s.rss_sum,
                s.faults,
                s.mem_calls,
                s.grown,
                s.released,
                s.sampled_out
            ])?;
        }
        Ok(())
    }
}

/// Host names seen so far and their `hosts.id`: a request row stores the small id.
#[derive(Debug, Default)]
pub(in crate::recording) struct Hosts(rustc_hash::FxHashMap<String, i64>);

impl Hosts {
    fn intern(&mut self, tx: &Transaction<'_>, host: String) -> rusqlite::Result<i64> {
        if let Some(&id) = self.0.get(&host) {
            return Ok(id);
        }
        let id = tx
            .prepare_cached(
                "INSERT INTO hosts (host) VALUES (?1)
                 ON CONFLICT (host) DO UPDATE SET host = host RETURNING id",
            )?
            .query_row(params![host], |r| r.get(0))?;
        self.0.insert(host, id);
        Ok(id)
    }
}

/// Request rows inserted by one statement: SQLite's work per statement run (reset, start, halt,
/// unbinding) is paid once for them rather than for each row.
const CHUNK: usize = 32;
/// `request_rows`' columns, as [`INSERT_REQUEST`] and [`bind`] list them.
const COLUMNS: usize = 22;

/// Inserts a batch's requests, [`CHUNK`] rows to a statement run.
pub(super) struct Requests<'tx> {
    one: CachedStatement<'tx>,
    many: CachedStatement<'tx>,
    /// Rows waiting for a full chunk, each with its host's id.
    held: Vec<(RequestRow, Option<i64>)>,
}

impl<'tx> Requests<'tx> {
    pub(super) fn new(tx: &'tx Transaction<'_>) -> rusqlite::Result<Self> {
        // INSERT_REQUEST's column list with CHUNK rows of anonymous parameters, made once.
        static MANY: LazyLock<String> = LazyLock::new(|| {
            let (head, _) = INSERT_REQUEST
                .split_once("VALUES")
                .unwrap_or((INSERT_REQUEST, ""));
            let row = format!("({})", vec!["?"; COLUMNS].join(", "));
            format!("{head}VALUES {}", vec![row; CHUNK].join(", "))
        });
        Ok(Self {
            one: tx.prepare_cached(INSERT_REQUEST)?,
            many: tx.prepare_cached(&MANY)?,
            held: Vec::with_capacity(CHUNK),
        })
    }

    /// One request row; written once [`CHUNK`] are held, or by [`Self::flush`].
    pub(super) fn insert(
        &mut self,
        tx: &Transaction<'_>,
        hosts: &mut Hosts,
        mut r: RequestRow,
    ) -> rusqlite::Result<()> {
        let host_id = match r.host.take() {
            Some(h) => Some(hosts.intern(tx, h)?),
            None => None,
        };
        self.held.push((r, host_id));
        if self.held.len() == CHUNK {
            for (i, (r, host_id)) in self.held.iter().enumerate() {
                bind(&mut self.many, i * COLUMNS, r, *host_id)?;
            }
            self.many.raw_execute()?;
            self.held.clear();
        }
        Ok(())
    }

    /// Writes the rows held back.
    pub(super) fn flush(&mut self) -> rusqlite::Result<()> {
        for (r, host_id) in self.held.drain(..) {
            bind(&mut self.one, 0, &r, host_id)?;
            self.one.raw_execute()?;
        }
        Ok(())
    }
}

/// Binds one request row's [`COLUMNS`] values from parameter `base + 1` on.
fn bind(
    stmt: &mut CachedStatement<'_>,
    base: usize,
    r: &RequestRow,
    host_id: Option<i64>,
) -> rusqlite::Result<()> {
    // Stored once when the route is the target itself (no query, no normalisation).
    let target = r
        .target
        .as_deref()
        .filter(|t| r.route.as_deref() != Some(*t));
    let at = |i: usize| base + i;
    stmt.raw_bind_parameter(at(1), r.id)?;
    stmt.raw_bind_parameter(at(2), r.pid)?;
    stmt.raw_bind_parameter(at(3), r.tid)?;
    stmt.raw_bind_parameter(at(4), r.conn as i64)?;
    stmt.raw_bind_parameter(at(5), r.method.as_deref())?;
    stmt.raw_bind_parameter(at(6), target)?;
    stmt.raw_bind_parameter(at(7), r.route.as_deref())?;
    stmt.raw_bind_parameter(at(8), host_id)?;
    stmt.raw_bind_parameter(at(9), r.status)?;
    stmt.raw_bind_parameter(at(10), r.end_ns)?;
    stmt.raw_bind_parameter(at(11), r.end_ns - r.start_ns)?;
    stmt.raw_bind_parameter(at(12), r.first_byte_ns.map(|f| f - r.start_ns))?;
    stmt.raw_bind_parameter(at(13), r.bytes_in as i64)?;
    stmt.raw_bind_parameter(at(14), r.bytes_out as i64)?;
    stmt.raw_bind_parameter(at(15), r.vm_bytes)?;
    stmt.raw_bind_parameter(at(16), r.rss_bytes)?;
    stmt.raw_bind_parameter(at(17), r.faults as i64)?;
    stmt.raw_bind_parameter(at(18), r.mem_calls as i64)?;
    stmt.raw_bind_parameter(at(19), r.exact)?;
    stmt.raw_bind_parameter(at(20), r.grown as i64)?;
    stmt.raw_bind_parameter(at(21), r.released as i64)?;
    stmt.raw_bind_parameter(at(22), r.sampled_out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;
    use crate::{model::Row, recording::Writer};

    /// A batch of more requests than a statement run takes: every one is written once, with its
    /// own figures, whether it went in a full chunk or in the remainder.
    #[test]
    fn a_batch_across_chunks_is_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let writer = Writer::create(&path, &[]).unwrap();
        let n = 2 * CHUNK as i64 + 5;
        writer.send(
            (1..=n)
                .map(|id| {
                    Row::Request(Box::new(RequestRow {
                        id,
                        conn: 1,
                        method: Some("GET".into()),
                        target: Some(format!("/item/{id}")),
                        route: Some("/item/:n".into()),
                        host: Some(format!("h{}", id % 3)),
                        status: Some(200),
                        start_ns: 1000 * id,
                        end_ns: 1000 * id + id,
                        vm_bytes: id,
                        ..RequestRow::default()
                    }))
                })
                .collect(),
        );
        writer.finish().unwrap();
        let db = Connection::open(&path).unwrap();
        let (rows, sum_dur, sum_vm, hosts, targets): (i64, i64, i64, i64, i64) = db
            .query_row(
                "SELECT COUNT(*), SUM(end_ns - start_ns), SUM(vm_bytes), COUNT(DISTINCT host),
                        SUM(target = '/item/' || id) FROM requests",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .unwrap();
        assert_eq!(
            (rows, sum_dur, sum_vm, hosts, targets),
            (n, n * (n + 1) / 2, n * (n + 1) / 2, 3, n)
        );
    }

    /// The compact `request_rows` must read back through the `requests` view exactly as written.
    #[test]
    fn request_rows_read_back_through_the_view() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let writer = Writer::create(&path, &[]).unwrap();
        let full = RequestRow {
            id: 7,
            pid: 10,
            tid: 11,
            conn: 3,
            method: Some("GET".into()),
            target: Some("/item/42?x=1".into()),
            route: Some("/item/:n".into()),
            host: Some("example.org".into()),
            status: Some(200),
            start_ns: 1_795_000_000_000_000_000,
            first_byte_ns: Some(1_795_000_000_000_120_000),
            end_ns: 1_795_000_000_000_250_000,
            bytes_in: 80,
            bytes_out: 300,
            vm_bytes: -4096,
            rss_bytes: 8192,
            faults: 2,
            mem_calls: 1,
            exact: true,
            grown: 12288,
            released: 4096,
            sampled_out: true,
        };
        let plain = RequestRow {
            id: 8,
            conn: 3,
            target: Some("/".into()),
            route: Some("/".into()),
            host: Some("example.org".into()),
            start_ns: 5,
            end_ns: 9,
            ..RequestRow::default()
        };
        writer.send(vec![
            Row::Request(Box::new(full.clone())),
            Row::Request(Box::new(plain)),
        ]);
        writer.finish().unwrap();

        let db = Connection::open(&path).unwrap();
        let read = |id: i64| {
            db.query_row(
                "SELECT conn, target, route, host, start_ns, first_byte_ns, end_ns, vm_bytes
                 FROM requests WHERE id = ?1",
                [id],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, Option<i64>>(5)?,
                        r.get::<_, i64>(6)?,
                        r.get::<_, i64>(7)?,
                    ))
                },
            )
            .unwrap()
        };
        assert_eq!(
            read(7),
            (
                3,
                full.target,
                full.route,
                full.host,
                full.start_ns,
                full.first_byte_ns,
                full.end_ns,
                -4096
            )
        );
        assert_eq!(
            read(8),
            (
                3,
                Some("/".into()),
                Some("/".into()),
                Some("example.org".into()),
                5,
                None,
                9,
                0
            )
        );
        // Stored compactly: one host row, and the target only where it differs from the route.
        let (hosts, stored_targets): (i64, i64) = db
            .query_row(
                "SELECT (SELECT COUNT(*) FROM hosts),
                        (SELECT COUNT(target) FROM request_rows)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((hosts, stored_targets), (1, 1));
        // A request the heap probes did not follow is marked, and counted in the rollup.
        let (marked, rolled): (i64, i64) = db
            .query_row(
                "SELECT (SELECT SUM(sampled_out) FROM requests WHERE id = 7),
                        (SELECT SUM(sampled_out) FROM request_rollup)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((marked, rolled), (1, 1));
    }
}
