//! Requests: each one's row (`request_rows`, what it shares with others interned in
//! `request_kinds` and `hosts`, its target stored only where it differs from its route, its
//! memory figures in `request_memory` only when it changed memory), and the per-second sums of
//! a batch's requests added to `request_rollup`, which range queries over millions of requests
//! read instead.

use std::sync::{Arc, LazyLock};

use rusqlite::{CachedStatement, Transaction, params};
use rustc_hash::FxHashMap;

use crate::{model::RequestRow, units::NS_PER_SEC};

const INSERT_ROLLUP: &str = "INSERT INTO request_rollup (second, method, route, status, n, approx,
       vm_sum, rss_sum, faults, mem_calls, grown, released, sampled_out)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
     ON CONFLICT (second, method, route, status) DO UPDATE SET n = n + excluded.n,
       approx = approx + excluded.approx, vm_sum = vm_sum + excluded.vm_sum,
       rss_sum = rss_sum + excluded.rss_sum, faults = faults + excluded.faults,
       mem_calls = mem_calls + excluded.mem_calls, grown = grown + excluded.grown,
       released = released + excluded.released, sampled_out = sampled_out + excluded.sampled_out";

/// What many requests share, interned: [`Interned::kind`].
const INSERT_KIND: &str = "INSERT INTO request_kinds (pid, tid, method, route, host_id, status,
       exact, sampled_out) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

/// What is each request's own.
const INSERT_ROW: &str = "INSERT INTO request_rows (end_ns, id, kind, conn, dur_ns, ttfb_ns,
       bytes_in, bytes_out, target) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
/// `request_rows`' columns, as [`INSERT_ROW`] and [`OwnFields::bind`] list them.
const ROW_COLUMNS: usize = 9;

/// The memory figures of a request that changed memory.
const INSERT_MEMORY: &str = "INSERT INTO request_memory (end_ns, id, vm_bytes, rss_bytes,
       faults, mem_calls, grown, released) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
/// `request_memory`'s columns, as [`INSERT_MEMORY`] lists them.
const MEMORY_COLUMNS: usize = 8;

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

/// A request kind as the writer keys it: process, thread, method and route (as [`Interned`]'s
/// numbers for them), host id, status, exact, sampled out.
type KindKey = (
    u32,
    u32,
    Option<u32>,
    Option<u32>,
    Option<i64>,
    Option<u16>,
    bool,
    bool,
);

/// What the writer has interned so far: host names and their `hosts.id`, request kinds and
/// their `request_kinds.id`, and, to key the kinds without copying strings, a number for each
/// method and route string seen (never stored). A request row then stores small ids.
///
/// Valid for the writer's life: a commit that fails stops the writer, so no id here can name a
/// row that was rolled back and then used again. Bounded: hostile traffic can send endless
/// distinct hosts and routes, so each map is emptied when it reaches [`Interned::CAPACITY`],
/// and what it held is looked up or added again (a kind added twice is harmless: the view
/// joins by id).
#[derive(Debug, Default)]
pub(in crate::recording) struct Interned {
    hosts: FxHashMap<String, i64>,
    names: FxHashMap<Box<str>, u32>,
    /// The next name's number. Never reused, even after `names` is emptied: a number handed
    /// out before that may still be in a key being built.
    next_name: u32,
    kinds: FxHashMap<KindKey, i64>,
    /// The same kinds keyed by the addresses of the row's shared strings (the correlator
    /// interns them), so that a hit hashes no string. It holds the strings themselves: an
    /// address that is a key cannot be given to another string.
    by_address: FxHashMap<AddressKey, (i64, HeldStrings)>,
}

/// A kind's method, route and host, held while their addresses key it.
type HeldStrings = [Option<Arc<str>>; 3];

/// A request kind keyed as [`KindKey`], with the addresses of its method, route and host.
type AddressKey = (u32, u32, usize, usize, usize, Option<u16>, bool, bool);

/// The address of a shared string, 0 for none.
fn address(s: &Option<Arc<str>>) -> usize {
    s.as_ref()
        .map_or(0, |s| Arc::as_ptr(s).cast::<u8>() as usize)
}

impl Interned {
    const CAPACITY: usize = 1 << 16;

    fn host(&mut self, tx: &Transaction<'_>, host: &str) -> rusqlite::Result<i64> {
        if let Some(&id) = self.hosts.get(host) {
            return Ok(id);
        }
        let id = tx
            .prepare_cached(
                "INSERT INTO hosts (host) VALUES (?1)
                 ON CONFLICT (host) DO UPDATE SET host = host RETURNING id",
            )?
            .query_row(params![host], |r| r.get(0))?;
        if self.hosts.len() >= Self::CAPACITY {
            self.hosts.clear();
        }
        self.hosts.insert(host.to_owned(), id);
        Ok(id)
    }

    fn name(&mut self, s: Option<&str>) -> Option<u32> {
        let s = s?;
        if let Some(&n) = self.names.get(s) {
            return Some(n);
        }
        if self.names.len() >= Self::CAPACITY {
            // The kinds keyed by its numbers can no longer be found: both start again.
            self.names.clear();
            self.kinds.clear();
        }
        let n = self.next_name;
        self.next_name = self.next_name.wrapping_add(1);
        self.names.insert(s.into(), n);
        Some(n)
    }

    /// The `request_kinds.id` of what `r` shares with other requests, added when new.
    fn kind(&mut self, tx: &Transaction<'_>, r: &RequestRow) -> rusqlite::Result<i64> {
        let fast = (
            r.pid,
            r.tid,
            address(&r.method),
            address(&r.route),
            address(&r.host),
            r.status,
            r.exact,
            r.sampled_out,
        );
        if let Some(&(id, _)) = self.by_address.get(&fast) {
            return Ok(id);
        }
        let id = self.kind_by_value(tx, r)?;
        if self.by_address.len() >= Self::CAPACITY {
            self.by_address.clear();
        }
        let held = [r.method.clone(), r.route.clone(), r.host.clone()];
        self.by_address.insert(fast, (id, held));
        Ok(id)
    }

    /// [`Self::kind`] by the strings' values.
    fn kind_by_value(&mut self, tx: &Transaction<'_>, r: &RequestRow) -> rusqlite::Result<i64> {
        let host_id = match r.host.as_deref() {
            Some(h) => Some(self.host(tx, h)?),
            None => None,
        };
        let key = (
            r.pid,
            r.tid,
            self.name(r.method.as_deref()),
            self.name(r.route.as_deref()),
            host_id,
            r.status,
            r.exact,
            r.sampled_out,
        );
        if let Some(&id) = self.kinds.get(&key) {
            return Ok(id);
        }
        tx.prepare_cached(INSERT_KIND)?.execute(params![
            r.pid,
            r.tid,
            r.method,
            r.route,
            host_id,
            r.status,
            r.exact,
            r.sampled_out
        ])?;
        let id = tx.last_insert_rowid();
        if self.kinds.len() >= Self::CAPACITY {
            self.kinds.clear();
        }
        self.kinds.insert(key, id);
        Ok(id)
    }
}

/// Rows inserted by one statement: SQLite's work per statement run (reset, start, halt,
/// unbinding) is paid once for them rather than for each row.
const CHUNK: usize = 32;

/// `insert`, one row of `columns` anonymous parameters, made into an insert of [`CHUNK`] rows.
fn chunk_of(insert: &str, columns: usize) -> String {
    let (head, _) = insert.split_once("VALUES").unwrap_or((insert, ""));
    let row = format!("({})", vec!["?"; columns].join(", "));
    format!("{head}VALUES {}", vec![row; CHUNK].join(", "))
}

/// A row that binds its values from parameter `base + 1` on.
trait Bind {
    fn bind(&self, stmt: &mut CachedStatement<'_>, base: usize) -> rusqlite::Result<()>;
}

/// Rows of one table inserted [`CHUNK`] to a statement run, the rest one by one at the end.
struct Chunked<'tx, T> {
    one: CachedStatement<'tx>,
    many: CachedStatement<'tx>,
    columns: usize,
    held: Vec<T>,
}

impl<'tx, T: Bind> Chunked<'tx, T> {
    fn new(
        tx: &'tx Transaction<'_>,
        one: &str,
        many: &str,
        columns: usize,
    ) -> rusqlite::Result<Self> {
        Ok(Self {
            one: tx.prepare_cached(one)?,
            many: tx.prepare_cached(many)?,
            columns,
            held: Vec::with_capacity(CHUNK),
        })
    }

    fn push(&mut self, row: T) -> rusqlite::Result<()> {
        self.held.push(row);
        if self.held.len() == CHUNK {
            for (i, r) in self.held.iter().enumerate() {
                r.bind(&mut self.many, i * self.columns)?;
            }
            self.many.raw_execute()?;
            self.held.clear();
        }
        Ok(())
    }

    fn flush(&mut self) -> rusqlite::Result<()> {
        for r in self.held.drain(..) {
            r.bind(&mut self.one, 0)?;
            self.one.raw_execute()?;
        }
        Ok(())
    }
}

/// What `request_rows` holds of one request.
struct OwnFields {
    end_ns: i64,
    id: i64,
    kind: i64,
    conn: i64,
    dur_ns: i64,
    ttfb_ns: Option<i64>,
    bytes_in: i64,
    bytes_out: i64,
    /// `None` when it is the route itself (no query, no normalisation).
    target: Option<std::sync::Arc<str>>,
}

impl Bind for OwnFields {
    fn bind(&self, stmt: &mut CachedStatement<'_>, base: usize) -> rusqlite::Result<()> {
        stmt.raw_bind_parameter(base + 1, self.end_ns)?;
        stmt.raw_bind_parameter(base + 2, self.id)?;
        stmt.raw_bind_parameter(base + 3, self.kind)?;
        stmt.raw_bind_parameter(base + 4, self.conn)?;
        stmt.raw_bind_parameter(base + 5, self.dur_ns)?;
        stmt.raw_bind_parameter(base + 6, self.ttfb_ns)?;
        stmt.raw_bind_parameter(base + 7, self.bytes_in)?;
        stmt.raw_bind_parameter(base + 8, self.bytes_out)?;
        stmt.raw_bind_parameter(base + 9, self.target.as_deref())
    }
}

/// What `request_memory` holds of a request that changed memory, in [`INSERT_MEMORY`]'s order.
struct MemoryFields([i64; MEMORY_COLUMNS]);

impl Bind for MemoryFields {
    fn bind(&self, stmt: &mut CachedStatement<'_>, base: usize) -> rusqlite::Result<()> {
        for (i, v) in self.0.iter().enumerate() {
            stmt.raw_bind_parameter(base + i + 1, *v)?;
        }
        Ok(())
    }
}

/// Inserts a batch's requests: each one's own fields, its kind interned, and its memory
/// figures when it changed memory.
pub(super) struct Requests<'tx> {
    rows: Chunked<'tx, OwnFields>,
    memory: Chunked<'tx, MemoryFields>,
}

impl<'tx> Requests<'tx> {
    pub(super) fn new(tx: &'tx Transaction<'_>) -> rusqlite::Result<Self> {
        // Made once: the statement cache is keyed by the SQL text.
        static ROWS: LazyLock<String> = LazyLock::new(|| chunk_of(INSERT_ROW, ROW_COLUMNS));
        static MEMORY: LazyLock<String> = LazyLock::new(|| chunk_of(INSERT_MEMORY, MEMORY_COLUMNS));
        Ok(Self {
            rows: Chunked::new(tx, INSERT_ROW, &ROWS, ROW_COLUMNS)?,
            memory: Chunked::new(tx, INSERT_MEMORY, &MEMORY, MEMORY_COLUMNS)?,
        })
    }

    /// One request; written once [`CHUNK`] are held, or by [`Self::flush`].
    pub(super) fn insert(
        &mut self,
        tx: &Transaction<'_>,
        interned: &mut Interned,
        r: RequestRow,
    ) -> rusqlite::Result<()> {
        let kind = interned.kind(tx, &r)?;
        let memory = [
            r.vm_bytes,
            r.rss_bytes,
            r.faults as i64,
            r.mem_calls as i64,
            r.grown as i64,
            r.released as i64,
        ];
        if memory.iter().any(|&v| v != 0) {
            let [vm, rss, faults, calls, grown, released] = memory;
            self.memory.push(MemoryFields([
                r.end_ns, r.id, vm, rss, faults, calls, grown, released,
            ]))?;
        }
        let target = r.target.filter(|t| r.route.as_deref() != Some(&**t));
        self.rows.push(OwnFields {
            end_ns: r.end_ns,
            id: r.id,
            kind,
            conn: r.conn as i64,
            dur_ns: r.end_ns - r.start_ns,
            ttfb_ns: r.first_byte_ns.map(|f| f - r.start_ns),
            bytes_in: r.bytes_in as i64,
            bytes_out: r.bytes_out as i64,
            target,
        })
    }

    /// Writes the rows held back.
    pub(super) fn flush(&mut self) -> rusqlite::Result<()> {
        self.rows.flush()?;
        self.memory.flush()
    }
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
                    Row::Request(RequestRow {
                        id,
                        conn: 1,
                        method: Some("GET".into()),
                        target: Some(format!("/item/{id}").into()),
                        route: Some("/item/:n".into()),
                        host: Some(format!("h{}", id % 3).into()),
                        status: Some(200),
                        start_ns: 1000 * id,
                        end_ns: 1000 * id + id,
                        vm_bytes: id,
                        ..RequestRow::default()
                    })
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

    /// Requests that share a thread, method, route and host share one kind, whether their
    /// strings are one shared allocation (as the correlator makes them) or equal copies; a
    /// different status is a different kind.
    #[test]
    fn requests_sharing_their_strings_or_equal_copies_share_a_kind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let writer = Writer::create(&path, &[]).unwrap();
        let route: Arc<str> = "/a".into();
        let row = |id: i64, route: Arc<str>, status: u16| {
            Row::Request(RequestRow {
                id,
                tid: 7,
                method: Some("GET".into()),
                target: Some(route.clone()),
                route: Some(route),
                status: Some(status),
                start_ns: id,
                end_ns: id + 1,
                ..RequestRow::default()
            })
        };
        writer.send(vec![
            row(1, route.clone(), 200),
            row(2, route.clone(), 200),
            row(3, "/a".into(), 200),
            row(4, route, 404),
        ]);
        writer.finish().unwrap();
        let db = Connection::open(&path).unwrap();
        let (kinds, requests, not_found): (i64, i64, i64) = db
            .query_row(
                "SELECT (SELECT COUNT(*) FROM request_kinds), (SELECT COUNT(*) FROM requests
                         WHERE route = '/a' AND target = '/a' AND method = 'GET'),
                        (SELECT COUNT(*) FROM requests WHERE status = 404)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!((kinds, requests, not_found), (2, 4, 1));
    }

    /// Once the names are emptied at their bound, a number handed out before is never given to
    /// another string (a key half built with it would name the wrong kind).
    #[test]
    fn a_name_number_is_never_reused_after_the_bound() {
        let mut interned = Interned::default();
        let first = interned.name(Some("GET"));
        for i in 0..Interned::CAPACITY {
            interned.name(Some(&format!("/r{i}")));
        }
        let after = interned.name(Some("/new"));
        assert_ne!(first, after);
        assert_eq!(
            interned.names.len(),
            2,
            "emptied once, then the last route and /new"
        );
        assert_ne!(interned.name(Some("GET")), first);
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
        writer.send(vec![Row::Request(full.clone()), Row::Request(plain)]);
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
                full.target.as_deref().map(str::to_owned),
                full.route.as_deref().map(str::to_owned),
                full.host.as_deref().map(str::to_owned),
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
