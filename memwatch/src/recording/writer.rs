//! Writes a recording from a thread of its own, in transactions committed at least every
//! [`COMMIT_EVERY`]: a memwatch killed with SIGKILL leaves a file holding everything up to the
//! last commit. The file it writes to was created whole by [`super::create`]; how each kind of
//! row is stored is [`super::insert`]'s.
//!
//! This file is the writer's own job: the bounded queue and what it sheds when it stays full,
//! the transactions, and finishing. When a commit fails (the disk is full, or an I/O error),
//! the writer gives the [`Reserve`] of disk space back, counts every row it can no longer
//! write, commits why it stopped, folds the write-ahead log into the file, and says so
//! ([`Writer::failed`]), so that the session stops at once.

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

use rusqlite::Connection;

use super::{
    create::{Reserve, create_file, sqlite_err},
    insert::{self, Interned},
};
use crate::{
    error::{SetupError, WriteError},
    model::{Row, meta},
};

/// Rows inserted between two yields of the CPU. A commit holds up to `COMMIT_EVERY` of rows
/// (about 12,000 at nginx's full speed): inserted in one go, that is several ms of CPU, which
/// the scheduler hands out in slices of up to a tick (4 ms at HZ=250) while a target's thread
/// preempted on the same CPU waits, and the requests it serves wait with it. Yielding every
/// 512 rows (a few hundred µs) lets it run in between; when nothing else waits, a yield
/// returns at once. Measured in BENCHMARKS.md (the tax's sixth cut).
const PACE_ROWS: usize = 512;

/// Longest time a row waits in memory before it is committed.
pub const COMMIT_EVERY: Duration = Duration::from_millis(250);
/// Batches the queue to the writer thread holds. The session sends one batch per drain (every
/// 50 ms or sooner), so this is several seconds of rows: enough to ride out a slow commit.
pub const QUEUE_BATCHES: usize = 256;
/// How long [`Writer::send`] waits for room in a full queue before it sheds the batch. While
/// it waits the session does not drain the ring buffer, so the kernel side absorbs (and counts)
/// the pressure rather than memwatch's memory.
pub const SEND_PATIENCE: Duration = Duration::from_millis(250);
/// Emptied batches the writer hands back for the session to fill again.
const SPARE_BATCHES: usize = 4;

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
    /// The writer thread's CPU time so far (ns), updated after each commit.
    cpu_ns: AtomicU64,
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
    /// Batches the writer has emptied, capacity kept: filling one again allocates nothing,
    /// where a new vector grows by reallocation through every drain.
    spare: mpsc::Receiver<Vec<Row>>,
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
        let (spare_tx, spare) = mpsc::sync_channel(SPARE_BATCHES);
        let shared = Arc::new(Shared::default());
        let thread_shared = Arc::clone(&shared);
        let thread_path = path.to_owned();
        let handle = std::thread::Builder::new()
            .name("memwatch-writer".into())
            .spawn(move || {
                let queue = Queue {
                    rx,
                    spare: spare_tx,
                };
                run(conn, &thread_path, &queue, &thread_shared, reserve)
            })
            .map_err(|source| SetupError::OutputNotWritable {
                path: path.to_owned(),
                source,
            })?;
        Ok(Self {
            tx,
            spare,
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

    /// An empty batch to fill: one the writer has emptied when there is one.
    pub fn spare(&self) -> Vec<Row> {
        self.spare.try_recv().unwrap_or_default()
    }

    /// Rows shed so far because the writer's queue stayed full.
    pub fn shed_rows(&self) -> u64 {
        self.shared.shed.load(Ordering::Relaxed)
    }

    /// The writer thread's CPU time so far (ns), as of its last commit.
    pub fn cpu_ns(&self) -> u64 {
        self.shared.cpu_ns.load(Ordering::Relaxed)
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

/// The writer thread's ends of the channels: batches in, emptied batches back.
struct Queue {
    rx: mpsc::Receiver<Msg>,
    spare: mpsc::SyncSender<Vec<Row>>,
}

fn run(
    mut conn: Connection,
    path: &Path,
    queue: &Queue,
    shared: &Shared,
    mut reserve: Reserve,
) -> Result<u64, Failure> {
    let mut written = 0u64;
    let mut interned = Interned::default();
    let mut pending: Vec<Row> = Vec::new();
    let mut since = Instant::now();
    loop {
        let msg = queue.rx.recv_timeout(COMMIT_EVERY);
        let finish = match msg {
            Ok(Msg::Rows(mut rows)) => {
                if pending.is_empty() {
                    since = Instant::now();
                }
                pending.append(&mut rows);
                // Back to the session, or dropped when it holds enough already.
                let _ = queue.spare.try_send(rows);
                false
            }
            Ok(Msg::Finish) | Err(mpsc::RecvTimeoutError::Disconnected) => true,
            Err(mpsc::RecvTimeoutError::Timeout) => false,
        };
        if !pending.is_empty() && (finish || since.elapsed() >= COMMIT_EVERY) {
            let batch = pending.len() as u64;
            let result = commit(&mut conn, &mut interned, &mut pending);
            shared
                .cpu_ns
                .store(crate::capture::procfs::thread_cpu_ns(), Ordering::Relaxed);
            match result {
                Ok(n) => written += n,
                Err(source) => {
                    pending.clear();
                    let failure = stop_writing(
                        conn,
                        path,
                        &queue.rx,
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
    insert::meta(&conn, meta::WRITER_SHED_ROWS, &shed).map_err(|source| Failure {
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
            insert::meta(&tx, key, &value)?;
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

/// Stores `rows` (which it empties) in one transaction; returns how many there were.
fn commit(
    conn: &mut Connection,
    interned: &mut Interned,
    rows: &mut Vec<Row>,
) -> rusqlite::Result<u64> {
    let tx = conn.transaction()?;
    let n = rows.len() as u64;
    insert::batch(&tx, interned, rows, |i| {
        if i > 0 && i % PACE_ROWS == 0 {
            std::thread::yield_now();
        }
    })?;
    tx.commit()?;
    Ok(n)
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
            spare: mpsc::sync_channel(1).1,
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
}
