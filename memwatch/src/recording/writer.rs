//! Writes a recording from a thread of its own, in transactions committed at least every
//! [`COMMIT_EVERY`]: a memwatch killed with SIGKILL leaves a file holding everything up to the
//! last commit. The file it writes to was created whole by [`super::create`].
//!
//! When a commit fails (the disk is full, or an I/O error), the writer gives the [`Reserve`] of
//! disk space back, counts every row it can no longer write, commits why it stopped, folds the
//! write-ahead log into the file, and says so ([`Writer::failed`]), so that the session stops
//! at once.

use std::{
    io,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use rusqlite::{Connection, params};

use super::create::{Reserve, create_file, sqlite_err};
use crate::{
    error::{SetupError, WriteError},
    model::{FrameRow, LogLineRow, MemRow, ProcessRow, RequestRow, Row, mem_op_name, meta},
    units::NS_PER_SEC,
};

/// Longest time a row waits in memory before it is committed.
pub const COMMIT_EVERY: Duration = Duration::from_millis(250);
/// Batches the queue to the writer thread holds. The session sends one batch per drain (every
/// 50 ms or sooner), so this is several seconds of rows: enough to ride out a slow commit.
pub const QUEUE_BATCHES: usize = 256;
/// How long [`Writer::send`] waits for room in a full queue before it sheds the batch. While
/// it waits the session does not drain the ring buffer, so the kernel side absorbs (and counts)
/// the pressure rather than memwatch's memory.
pub const SEND_PATIENCE: Duration = Duration::from_millis(250);

enum Msg {
    Rows(Vec<Row>),
    Finish,
}

/// What the writer thread and the [`Writer`] handle share.
#[derive(Debug, Default)]
struct Shared {
    /// Rows shed because the queue stayed full.
    shed: AtomicU64,
    /// A commit failed: the writer writes nothing more.
    failed: AtomicBool,
}

/// Why the writer thread stopped writing: the commit that failed, and the rows captured since
/// the last commit that were not written.
struct Failure {
    source: rusqlite::Error,
    unwritten: u64,
}

/// Handle on the writer thread. Its queue is bounded ([`QUEUE_BATCHES`]): a writer that falls
/// behind slows the sender down, and past [`SEND_PATIENCE`] batches are shed and counted, never
/// buffered without bound.
pub struct Writer {
    tx: mpsc::SyncSender<Msg>,
    handle: Option<JoinHandle<Result<u64, Failure>>>,
    path: PathBuf,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("path", &self.path)
            .field("shed_rows", &self.shed_rows())
            .field("failed", &self.failed())
            .finish_non_exhaustive()
    }
}

impl Writer {
    /// Creates a new recording at `path`, which must not exist, and starts the thread; with no
    /// disk space in reserve (tests and imports).
    pub fn create(path: &Path, meta: &[(&str, String)]) -> Result<Self, SetupError> {
        Self::create_reserved(path, false, Reserve::default(), meta)
    }

    /// Creates the recording at `path` (checked by [`super::create::check_output`], which took
    /// `reserve`; `force` removes an existing one) and starts the thread, which holds the
    /// reserve.
    pub fn create_reserved(
        path: &Path,
        force: bool,
        reserve: Reserve,
        meta: &[(&str, String)],
    ) -> Result<Self, SetupError> {
        create_file(path, force, meta)?;
        let conn = Connection::open(path).map_err(|e| sqlite_err(path, &e))?;
        let init = || -> rusqlite::Result<()> {
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")
        };
        init().map_err(|e| sqlite_err(path, &e))?;
        let (tx, rx) = mpsc::sync_channel(QUEUE_BATCHES);
        let shared = Arc::new(Shared::default());
        let thread_shared = Arc::clone(&shared);
        let thread_path = path.to_owned();
        let handle = std::thread::Builder::new()
            .name("memwatch-writer".into())
            .spawn(move || run(conn, &thread_path, &rx, &thread_shared, reserve))
            .map_err(|source| SetupError::OutputNotWritable {
                path: path.to_owned(),
                source,
            })?;
        Ok(Self {
            tx,
            handle: Some(handle),
            path: path.to_owned(),
            shared,
        })
    }

    /// Queues rows. Blocks for at most [`SEND_PATIENCE`] while the queue is full, then sheds the
    /// batch and counts its rows ([`Self::shed_rows`]). Once writing has failed the thread
    /// counts what it is sent as unwritten.
    pub fn send(&self, rows: Vec<Row>) {
        if rows.is_empty() {
            return;
        }
        let deadline = Instant::now() + SEND_PATIENCE;
        let mut msg = Msg::Rows(rows);
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => return,
                Err(mpsc::TrySendError::Full(back)) if Instant::now() < deadline => {
                    msg = back;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(mpsc::TrySendError::Full(Msg::Rows(rows))) => {
                    let n = rows.len() as u64;
                    let total = self.shared.shed.fetch_add(n, Ordering::Relaxed) + n;
                    tracing::warn!(rows = n, total, "the recording writer is behind; rows shed");
                    return;
                }
                Err(mpsc::TrySendError::Disconnected(_) | mpsc::TrySendError::Full(_)) => {
                    // The thread is gone (it panicked): `finish` says so.
                    return;
                }
            }
        }
    }

    /// Rows shed so far because the writer's queue stayed full.
    pub fn shed_rows(&self) -> u64 {
        self.shared.shed.load(Ordering::Relaxed)
    }

    /// Whether writing has failed (the disk is full, or an I/O error): the recording must stop;
    /// [`Self::finish`] returns the error.
    pub fn failed(&self) -> bool {
        self.shared.failed.load(Ordering::Relaxed)
            || self.handle.as_ref().is_some_and(JoinHandle::is_finished)
    }

    /// Commits everything, folds the WAL into the file, and returns the rows written.
    pub fn finish(mut self) -> Result<u64, WriteError> {
        // Blocking is right here: everything queued must be written.
        let _ = self.tx.send(Msg::Finish);
        let path = self.path.clone();
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(Ok(n))) => Ok(n),
            Some(Ok(Err(Failure { source, unwritten }))) => {
                if source.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
                    Err(WriteError::DiskFull {
                        path,
                        unwritten,
                        source: io::Error::from_raw_os_error(libc::ENOSPC),
                    })
                } else {
                    Err(WriteError::Failed {
                        path,
                        unwritten,
                        source,
                    })
                }
            }
            Some(Err(_)) => Err(WriteError::WriterPanicked { path }),
            None => Ok(0),
        }
    }
}

fn run(
    mut conn: Connection,
    path: &Path,
    rx: &mpsc::Receiver<Msg>,
    shared: &Shared,
    mut reserve: Reserve,
) -> Result<u64, Failure> {
    let mut written = 0u64;
    let mut hosts = Hosts::default();
    let mut pending: Vec<Row> = Vec::new();
    let mut since = Instant::now();
    loop {
        let msg = rx.recv_timeout(COMMIT_EVERY);
        let finish = match msg {
            Ok(Msg::Rows(rows)) => {
                if pending.is_empty() {
                    since = Instant::now();
                }
                pending.extend(rows);
                false
            }
            Ok(Msg::Finish) | Err(mpsc::RecvTimeoutError::Disconnected) => true,
            Err(mpsc::RecvTimeoutError::Timeout) => false,
        };
        if !pending.is_empty() && (finish || since.elapsed() >= COMMIT_EVERY) {
            let batch = pending.len() as u64;
            match commit(&mut conn, &mut hosts, &mut pending) {
                Ok(n) => written += n,
                Err(source) => {
                    pending.clear();
                    let failure = stop_writing(
                        conn,
                        path,
                        rx,
                        shared,
                        reserve,
                        Failure {
                            source,
                            unwritten: batch,
                        },
                        finish,
                    );
                    return Err(failure);
                }
            }
        }
        if finish {
            break;
        }
    }
    // The space held for a disk that fills is what folding the log may need.
    reserve.release();
    // Written last, when no more rows can be shed.
    let shed = shared.shed.load(Ordering::Relaxed).to_string();
    conn.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
        params![meta::WRITER_SHED_ROWS, shed],
    )
    .map_err(|source| Failure {
        source,
        unwritten: 0,
    })?;
    if let Err(e) = fold_wal(&conn) {
        // Complete all the same: everything is committed, in the file and its write-ahead log.
        tracing::warn!(
            error = %e,
            "could not fold the write-ahead log into the recording; keep its -wal and -shm \
             files beside it"
        );
    }
    Ok(written)
}

/// A commit failed with `source`, losing its `unwritten` rows: the reserve goes back to the
/// filesystem, the session is told to stop, the rows it still sends are counted, and the
/// recording is closed with why it stopped and what it lacks. Everything committed before stays.
///
/// After an I/O error SQLite may keep the connection in its error state, refusing every later
/// write; so when closing fails, it is tried once more on a new connection to `path`.
fn stop_writing(
    mut conn: Connection,
    path: &Path,
    rx: &mpsc::Receiver<Msg>,
    shared: &Shared,
    mut reserve: Reserve,
    failure: Failure,
    finished: bool,
) -> Failure {
    let Failure {
        source,
        mut unwritten,
    } = failure;
    reserve.release();
    shared.failed.store(true, Ordering::Relaxed);
    let disk_full = source.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull);
    tracing::warn!(error = %source, disk_full, "writing the recording failed; stopping");
    if !finished {
        // Until the session has stopped: it checks `failed` every drain.
        while let Ok(Msg::Rows(rows)) = rx.recv() {
            unwritten += rows.len() as u64;
        }
    }
    let reason = if disk_full {
        "disk_full"
    } else {
        "write_failed"
    };
    let close = |conn: &mut Connection| -> rusqlite::Result<()> {
        let tx = conn.transaction()?;
        for (key, value) in [
            (meta::STOP_REASON, reason.to_owned()),
            (meta::WRITE_ERROR, source.to_string()),
            (meta::UNWRITTEN_ROWS, unwritten.to_string()),
            (
                meta::WRITER_SHED_ROWS,
                shared.shed.load(Ordering::Relaxed).to_string(),
            ),
        ] {
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                params![key, value],
            )?;
        }
        tx.commit()?;
        fold_wal(conn)
    };
    let closed = close(&mut conn).or_else(|e| {
        tracing::debug!(error = %e, "closing the recording failed; trying on a new connection");
        drop(conn);
        Connection::open(path).and_then(|mut fresh| close(&mut fresh))
    });
    if let Err(e) = closed {
        // Still readable: what was committed is in the file and its write-ahead log.
        tracing::warn!(
            error = %e,
            "could not close the recording cleanly; keep its -wal and -shm files beside it"
        );
    }
    Failure { source, unwritten }
}

/// Folds the write-ahead log into the file and switches it back to a single file.
fn fold_wal(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "wal_checkpoint", "TRUNCATE")?;
    leave_wal(conn)
}

/// Switches the file back to a single rollback-journal file. SQLite refuses while another
/// connection has it open (the live page or `/metrics` reading it as it is written): then the
/// file stays in WAL mode, everything in it committed, and [`super::finalize`] switches it
/// once the readers are gone.
fn leave_wal(conn: &Connection) -> rusqlite::Result<()> {
    match conn.pragma_update(None, "journal_mode", "DELETE") {
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::DatabaseBusy =>
        {
            tracing::debug!("another connection reads the recording: it stays in WAL mode for now");
            Ok(())
        }
        other => other,
    }
}

/// Per-second sums of one batch's requests: (second, method, route, status) → sums. Keys
/// borrow from the batch: nothing is cloned per request.
type Rollup<'a> = rustc_hash::FxHashMap<(i64, &'a str, &'a str, i64), [i64; 9]>;

fn roll<'a>(rollup: &mut Rollup<'a>, r: &'a RequestRow) {
    let key = (
        r.end_ns.div_euclid(NS_PER_SEC),
        r.method.as_deref().unwrap_or("-"),
        r.route.as_deref().unwrap_or("-"),
        r.status.map_or(-1, i64::from),
    );
    let sums = rollup.entry(key).or_default();
    sums[0] += 1;
    sums[1] += i64::from(!r.exact);
    sums[2] += r.vm_bytes;
    sums[3] += r.rss_bytes;
    sums[4] += r.faults as i64;
    sums[5] += r.mem_calls as i64;
    sums[6] += r.grown as i64;
    sums[7] += r.released as i64;
    sums[8] += i64::from(r.sampled_out);
}

/// A `stack_rollup` row's key: (second, req_second, method, route, pid, stack).
type StackKey<'a> = (i64, i64, &'a str, &'a str, u32, u32);

/// One batch's releases and outside growth, summed by their keys before they are written.
#[derive(Debug, Default)]
struct OriginSums<'a> {
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

impl<'a> OriginSums<'a> {
    fn add(&mut self, row: &'a Row) {
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

    fn write(self, tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
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

const INSERT_ROLLUP: &str = "INSERT INTO request_rollup (second, method, route, status, n, approx,
       vm_sum, rss_sum, faults, mem_calls, grown, released, sampled_out)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
     ON CONFLICT (second, method, route, status) DO UPDATE SET n = n + excluded.n,
       approx = approx + excluded.approx, vm_sum = vm_sum + excluded.vm_sum,
       rss_sum = rss_sum + excluded.rss_sum, faults = faults + excluded.faults,
       mem_calls = mem_calls + excluded.mem_calls, grown = grown + excluded.grown,
       released = released + excluded.released, sampled_out = sampled_out + excluded.sampled_out";

const INSERT_REQUEST: &str = "INSERT INTO request_rows (id, pid, tid, conn, method, target,
       route, host_id, status, end_ns, dur_ns, ttfb_ns, bytes_in, bytes_out, vm_bytes, rss_bytes,
       faults, mem_calls, exact, grown, released, sampled_out)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,
       ?20, ?21, ?22)";

fn commit(conn: &mut Connection, hosts: &mut Hosts, rows: &mut Vec<Row>) -> rusqlite::Result<u64> {
    let tx = conn.transaction()?;
    let n = rows.len() as u64;
    {
        let mut rollup = Rollup::default();
        let mut origin = OriginSums::default();
        for row in rows.iter() {
            if let Row::Request(r) = row {
                roll(&mut rollup, r);
            } else {
                origin.add(row);
            }
        }
        let mut upsert = tx.prepare_cached(INSERT_ROLLUP)?;
        for (
            (second, method, route, status),
            [
                n,
                approx,
                vm,
                rss,
                faults,
                calls,
                grown,
                released,
                sampled_out,
            ],
        ) in rollup
        {
            upsert.execute(params![
                second,
                method,
                route,
                status,
                n,
                approx,
                vm,
                rss,
                faults,
                calls,
                grown,
                released,
                sampled_out
            ])?;
        }
        origin.write(&tx)?;
    }
    {
        // Requests are most of the rows: their statement is looked up once per batch, not per
        // row (the cache lookup hashes the SQL text).
        let mut requests = tx.prepare_cached(INSERT_REQUEST)?;
        for row in rows.drain(..) {
            insert(&tx, &mut requests, hosts, row)?;
        }
    }
    tx.commit()?;
    Ok(n)
}

/// Host names seen so far and their `hosts.id`: a request row stores the small id.
#[derive(Debug, Default)]
struct Hosts(rustc_hash::FxHashMap<String, i64>);

impl Hosts {
    fn intern(&mut self, tx: &rusqlite::Transaction<'_>, host: String) -> rusqlite::Result<i64> {
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

fn insert(
    tx: &rusqlite::Transaction<'_>,
    requests: &mut rusqlite::CachedStatement<'_>,
    hosts: &mut Hosts,
    row: Row,
) -> rusqlite::Result<()> {
    match row {
        Row::Meta(k, v) => {
            tx.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?
                .execute(params![k, v])?;
        }
        Row::Process(ProcessRow {
            pid,
            ppid,
            comm,
            cmdline,
            started_ns,
            origin,
        }) => {
            tx.prepare_cached(
                "INSERT INTO processes (pid, ppid, comm, cmdline, started_ns, origin)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (pid) DO UPDATE SET comm = excluded.comm,
                   cmdline = COALESCE(excluded.cmdline, cmdline)",
            )?
            .execute(params![pid, ppid, comm, cmdline, started_ns, origin.name()])?;
        }
        Row::ProcessExit {
            pid,
            ts_ns,
            exit_code,
        } => {
            tx.prepare_cached(
                "UPDATE processes SET exited_ns = COALESCE(exited_ns, ?2),
                   exit_code = COALESCE(?3, exit_code) WHERE pid = ?1",
            )?
            .execute(params![pid, ts_ns, exit_code])?;
        }
        Row::Thread {
            tid,
            pid,
            faults,
            exited_ns,
        } => {
            tx.prepare_cached(
                "INSERT INTO threads (tid, pid, faults, exited_ns) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (tid) DO UPDATE SET pid = excluded.pid,
                   faults = MAX(faults, excluded.faults),
                   exited_ns = COALESCE(excluded.exited_ns, exited_ns)",
            )?
            .execute(params![tid, pid, faults as i64, exited_ns])?;
        }
        Row::Mem(MemRow {
            ts_ns,
            pid,
            tid,
            op,
            addr,
            len,
            new_len,
            prot,
            flags,
            fd,
            ret,
            ok,
            vm_delta,
            request_id,
            stack,
        }) => {
            tx.prepare_cached(
                "INSERT INTO mem_events (ts_ns, pid, tid, op, addr, len, new_len, prot, flags, fd,
                   ret, ok, vm_delta, request_id, stack)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            )?
            .execute(params![
                ts_ns,
                pid,
                tid,
                mem_op_name(op),
                addr as i64,
                len as i64,
                new_len as i64,
                prot,
                flags as i64,
                fd,
                ret,
                ok,
                vm_delta,
                request_id,
                stack
            ])?;
        }
        Row::Sample {
            ts_ns,
            pid,
            rss_bytes,
            vm_bytes,
            faults,
        } => {
            tx.prepare_cached(
                "INSERT INTO samples (ts_ns, pid, rss_bytes, vm_bytes, faults)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                ts_ns,
                pid,
                rss_bytes as i64,
                vm_bytes as i64,
                faults as i64
            ])?;
        }
        Row::LiveHeap {
            ts_ns,
            pid,
            bytes,
            source,
        } => {
            tx.prepare_cached(
                "INSERT INTO live_heap (ts_ns, pid, bytes, source) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![ts_ns, pid, bytes as i64, source])?;
        }
        Row::Counters {
            ts_ns,
            events,
            dropped,
            unpaired_exits,
            map_full,
            undecodable,
            untracked_bytes,
            unmatched_release_bytes,
            unseen_release_bytes,
        } => {
            tx.prepare_cached(
                "INSERT INTO counters (ts_ns, events, dropped, unpaired_exits, map_full,
                   undecodable, untracked_bytes, unmatched_release_bytes, unseen_release_bytes)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                ts_ns,
                events as i64,
                dropped as i64,
                unpaired_exits as i64,
                map_full as i64,
                undecodable as i64,
                untracked_bytes as i64,
                unmatched_release_bytes as i64,
                unseen_release_bytes as i64
            ])?;
        }
        Row::Request(r) => insert_request(tx, requests, hosts, *r)?,
        Row::LogLine(line) => {
            let LogLineRow {
                source,
                arrived_ns,
                ts_ns,
                reason,
                raw,
                method,
                target,
                route,
                status,
                bytes,
                duration_us,
                client,
                user_agent,
                request_id,
            } = *line;
            tx.prepare_cached(
                "INSERT INTO log_lines (source, arrived_ns, ts_ns, ok, reason, raw, method, target,
                   route, status, bytes, duration_us, client, user_agent, request_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            )?
            .execute(params![
                &*source,
                arrived_ns,
                ts_ns,
                reason.is_none(),
                reason,
                raw,
                method,
                target,
                route,
                status,
                bytes.map(|b| b as i64),
                duration_us.map(|d| d as i64),
                client,
                user_agent,
                request_id
            ])?;
        }
        // Summed per batch in `commit` (OriginSums).
        Row::Release(_) | Row::OutsideGrowth { .. } | Row::VmOrigin(_) | Row::StackCharge(_) => {}
        Row::Stack { id, frames, unwind } => {
            let frames = frames
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",");
            tx.prepare_cached("INSERT INTO stacks (id, frames, unwind) VALUES (?1, ?2, ?3)")?
                .execute(params![id, frames, unwind.name()])?;
        }
        Row::Frame(f) => {
            let FrameRow {
                id,
                module,
                offset,
                function,
                file,
                line,
            } = *f;
            tx.prepare_cached(
                "INSERT INTO frames (id, module, offset, function, file, line)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![id, &*module, offset as i64, function, file, line])?;
        }
        Row::NonHttp {
            ts_ns,
            pid,
            conn,
            kind,
            bytes,
        } => {
            tx.prepare_cached(
                "INSERT INTO non_http (ts_ns, pid, conn, kind, bytes) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![ts_ns, pid, conn as i64, kind, bytes as i64])?;
        }
    }
    Ok(())
}

/// One request row, through the batch's prepared statement.
fn insert_request(
    tx: &rusqlite::Transaction<'_>,
    stmt: &mut rusqlite::CachedStatement<'_>,
    hosts: &mut Hosts,
    r: RequestRow,
) -> rusqlite::Result<()> {
    let RequestRow {
        id,
        pid,
        tid,
        conn,
        method,
        target,
        route,
        host,
        status,
        start_ns,
        first_byte_ns,
        end_ns,
        bytes_in,
        bytes_out,
        vm_bytes,
        rss_bytes,
        faults,
        mem_calls,
        exact,
        grown,
        released,
        sampled_out,
    } = r;
    let host_id = match host {
        Some(h) => Some(hosts.intern(tx, h)?),
        None => None,
    };
    // Stored once when the route is the target itself (no query, no normalisation).
    let target = target.filter(|t| route.as_deref() != Some(t.as_str()));
    stmt.execute(params![
        id,
        pid,
        tid,
        conn as i64,
        method,
        target,
        route,
        host_id,
        status,
        end_ns,
        end_ns - start_ns,
        first_byte_ns.map(|f| f - start_ns),
        bytes_in as i64,
        bytes_out as i64,
        vm_bytes,
        rss_bytes,
        faults as i64,
        mem_calls as i64,
        exact,
        grown as i64,
        released as i64,
        sampled_out
    ])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta_row(i: usize) -> Row {
        Row::Meta(format!("k{i}"), String::new())
    }

    /// A full queue makes `send` wait, then shed the batch and count its rows.
    #[test]
    fn a_full_queue_sheds_and_counts() {
        let (tx, rx) = mpsc::sync_channel(1);
        let writer = Writer {
            tx,
            handle: None,
            path: PathBuf::from("unused.db"),
            shared: Arc::new(Shared::default()),
        };
        writer.send((0..3).map(meta_row).collect());
        assert_eq!(writer.shed_rows(), 0, "the first batch fits");
        let started = Instant::now();
        writer.send((0..2).map(meta_row).collect());
        assert!(
            started.elapsed() >= SEND_PATIENCE,
            "it waited before shedding"
        );
        assert_eq!(writer.shed_rows(), 2);
        assert!(matches!(rx.try_recv(), Ok(Msg::Rows(rows)) if rows.len() == 3));
    }

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

    /// A recording that closes normally says that nothing was shed.
    #[test]
    fn finish_records_the_shed_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let writer = Writer::create(&path, &[]).unwrap();
        writer.send(vec![meta_row(1)]);
        writer.finish().unwrap();
        let conn = Connection::open(&path).unwrap();
        let shed: String = conn
            .query_row(
                "SELECT value FROM meta WHERE key = ?1",
                [meta::WRITER_SHED_ROWS],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(shed, "0");
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
