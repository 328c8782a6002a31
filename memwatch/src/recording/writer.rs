//! Writes a recording from a thread of its own, in transactions committed at least every
//! [`COMMIT_EVERY`]: a memwatch killed with SIGKILL leaves a file holding everything up to the
//! last commit.

use std::{
    path::{Path, PathBuf},
    sync::mpsc,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use rusqlite::{Connection, params};

use super::schema;
use crate::error::SetupError;

/// Longest time a row waits in memory before it is committed.
pub const COMMIT_EVERY: Duration = Duration::from_millis(250);

/// A process as first seen.
#[derive(Debug, Clone)]
pub struct ProcessRow {
    pub pid: u32,
    pub ppid: Option<u32>,
    pub comm: String,
    pub cmdline: Option<String>,
    pub started_ns: Option<i64>,
    pub origin: &'static str,
}

/// A memory syscall, with its virtual-size effect computed by the caller.
#[derive(Debug, Clone)]
pub struct MemRow {
    pub ts_ns: i64,
    pub pid: u32,
    pub tid: u32,
    pub op: &'static str,
    pub addr: u64,
    pub len: u64,
    pub new_len: u64,
    pub prot: u32,
    pub flags: u64,
    pub fd: i64,
    pub ret: i64,
    pub ok: bool,
    pub vm_delta: i64,
    pub request_id: Option<i64>,
}

/// A completed HTTP request with what it was charged.
#[derive(Debug, Clone, Default)]
pub struct RequestRow {
    pub id: i64,
    pub pid: u32,
    pub tid: u32,
    pub conn: String,
    pub method: Option<String>,
    pub target: Option<String>,
    pub route: Option<String>,
    pub host: Option<String>,
    pub status: Option<u16>,
    pub start_ns: i64,
    pub first_byte_ns: Option<i64>,
    pub end_ns: i64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub vm_bytes: i64,
    pub rss_bytes: i64,
    pub faults: u64,
    pub mem_calls: u64,
    pub exact: bool,
}

/// An access-log line, parsed or rejected, with the request it was joined to.
#[derive(Debug, Clone, Default)]
pub struct LogLineRow {
    pub source: std::sync::Arc<str>,
    pub arrived_ns: i64,
    pub ts_ns: Option<i64>,
    pub reason: Option<&'static str>,
    pub raw: Option<String>,
    pub method: Option<String>,
    pub target: Option<String>,
    pub route: Option<String>,
    pub status: Option<u16>,
    pub bytes: Option<u64>,
    pub duration_us: Option<u64>,
    pub client: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<i64>,
}

/// Everything the writer stores.
#[derive(Debug, Clone)]
pub enum Row {
    Meta(String, String),
    Process(ProcessRow),
    ProcessExit {
        pid: u32,
        ts_ns: i64,
        exit_code: Option<i32>,
    },
    Thread {
        tid: u32,
        pid: u32,
        faults: u64,
        exited_ns: Option<i64>,
    },
    Mem(MemRow),
    Sample {
        ts_ns: i64,
        pid: u32,
        rss_bytes: u64,
        vm_bytes: u64,
        faults: u64,
    },
    Counters {
        ts_ns: i64,
        events: u64,
        dropped: u64,
        unpaired_exits: u64,
        map_full: u64,
        undecodable: u64,
    },
    Request(Box<RequestRow>),
    LogLine(Box<LogLineRow>),
    NonHttp {
        ts_ns: i64,
        pid: u32,
        conn: String,
        kind: &'static str,
        bytes: u64,
    },
}

enum Msg {
    Rows(Vec<Row>),
    Finish,
}

/// Handle on the writer thread.
pub struct Writer {
    tx: mpsc::Sender<Msg>,
    handle: Option<JoinHandle<Result<u64, rusqlite::Error>>>,
    path: PathBuf,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Refuses an existing file unless `force`, and proves the path is writable, before anything is
/// loaded.
pub fn check_output(path: &Path, force: bool) -> Result<(), SetupError> {
    if path.exists() {
        if !force {
            return Err(SetupError::OutputExists {
                path: path.to_owned(),
            });
        }
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let p = PathBuf::from(format!("{}{suffix}", path.display()));
            if p.exists() {
                std::fs::remove_file(&p).map_err(|source| SetupError::OutputNotWritable {
                    path: p.clone(),
                    source,
                })?;
            }
        }
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|source| SetupError::OutputNotWritable {
            path: path.to_owned(),
            source,
        })?;
    Ok(())
}

fn sqlite_err(path: &Path, e: &rusqlite::Error) -> SetupError {
    SetupError::OutputNotWritable {
        path: path.to_owned(),
        source: std::io::Error::other(e.to_string()),
    }
}

impl Writer {
    /// Creates the schema in `path` (already checked by [`check_output`]) and starts the thread.
    pub fn create(path: &Path, meta: &[(&str, String)]) -> Result<Self, SetupError> {
        let conn = Connection::open(path).map_err(|e| sqlite_err(path, &e))?;
        let init = || -> rusqlite::Result<()> {
            conn.pragma_update(None, "application_id", schema::APPLICATION_ID)?;
            conn.pragma_update(None, "user_version", schema::SCHEMA_VERSION)?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn.execute_batch(schema::CREATE)?;
            for (k, v) in meta {
                conn.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                    params![k, v],
                )?;
            }
            Ok(())
        };
        init().map_err(|e| sqlite_err(path, &e))?;
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("memwatch-writer".into())
            .spawn(move || run(conn, &rx))
            .map_err(|source| SetupError::OutputNotWritable {
                path: path.to_owned(),
                source,
            })?;
        Ok(Self {
            tx,
            handle: Some(handle),
            path: path.to_owned(),
        })
    }

    /// Queues rows; never blocks the caller.
    pub fn send(&self, rows: Vec<Row>) {
        if !rows.is_empty() && self.tx.send(Msg::Rows(rows)).is_err() {
            tracing::error!("recording writer has stopped; rows are being lost");
        }
    }

    /// Commits everything, folds the WAL into the file, and returns the rows written.
    pub fn finish(mut self) -> anyhow::Result<u64> {
        let _ = self.tx.send(Msg::Finish);
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(Ok(n))) => Ok(n),
            Some(Ok(Err(e))) => Err(anyhow::anyhow!(
                "writing the recording {} failed: {e}",
                self.path.display()
            )),
            Some(Err(_)) => Err(anyhow::anyhow!("the recording writer thread panicked")),
            None => Ok(0),
        }
    }
}

fn run(mut conn: Connection, rx: &mpsc::Receiver<Msg>) -> Result<u64, rusqlite::Error> {
    let mut written = 0u64;
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
            written += commit(&mut conn, &mut pending)?;
        }
        if finish {
            break;
        }
    }
    conn.pragma_update(None, "wal_checkpoint", "TRUNCATE")?;
    conn.pragma_update(None, "journal_mode", "DELETE")?;
    Ok(written)
}

/// Per-second sums of one batch's requests: (second, method, route, status) → sums.
type Rollup = std::collections::HashMap<(i64, String, String, i64), [i64; 6]>;

fn roll(rollup: &mut Rollup, r: &RequestRow) {
    let key = (
        r.end_ns.div_euclid(1_000_000_000),
        r.method.clone().unwrap_or_else(|| "-".into()),
        r.route.clone().unwrap_or_else(|| "-".into()),
        r.status.map_or(-1, i64::from),
    );
    let sums = rollup.entry(key).or_default();
    sums[0] += 1;
    sums[1] += i64::from(!r.exact);
    sums[2] += r.vm_bytes;
    sums[3] += r.rss_bytes;
    sums[4] += r.faults as i64;
    sums[5] += r.mem_calls as i64;
}

fn commit(conn: &mut Connection, rows: &mut Vec<Row>) -> rusqlite::Result<u64> {
    let tx = conn.transaction()?;
    let n = rows.len() as u64;
    let mut rollup = Rollup::new();
    for row in rows.drain(..) {
        if let Row::Request(r) = &row {
            roll(&mut rollup, r);
        }
        insert(&tx, row)?;
    }
    for ((second, method, route, status), [n, approx, vm, rss, faults, calls]) in rollup {
        tx.prepare_cached(
            "INSERT INTO request_rollup (second, method, route, status, n, approx, vm_sum,
               rss_sum, faults, mem_calls) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (second, method, route, status) DO UPDATE SET n = n + excluded.n,
               approx = approx + excluded.approx, vm_sum = vm_sum + excluded.vm_sum,
               rss_sum = rss_sum + excluded.rss_sum, faults = faults + excluded.faults,
               mem_calls = mem_calls + excluded.mem_calls",
        )?
        .execute(params![
            second, method, route, status, n, approx, vm, rss, faults, calls
        ])?;
    }
    tx.commit()?;
    Ok(n)
}

fn insert(tx: &rusqlite::Transaction<'_>, row: Row) -> rusqlite::Result<()> {
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
            .execute(params![pid, ppid, comm, cmdline, started_ns, origin])?;
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
        }) => {
            tx.prepare_cached(
                "INSERT INTO mem_events (ts_ns, pid, tid, op, addr, len, new_len, prot, flags, fd,
                   ret, ok, vm_delta, request_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )?
            .execute(params![
                ts_ns,
                pid,
                tid,
                op,
                addr as i64,
                len as i64,
                new_len as i64,
                prot,
                flags as i64,
                fd,
                ret,
                ok,
                vm_delta,
                request_id
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
        Row::Counters {
            ts_ns,
            events,
            dropped,
            unpaired_exits,
            map_full,
            undecodable,
        } => {
            tx.prepare_cached(
                "INSERT INTO counters (ts_ns, events, dropped, unpaired_exits, map_full,
                   undecodable) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                ts_ns,
                events as i64,
                dropped as i64,
                unpaired_exits as i64,
                map_full as i64,
                undecodable as i64
            ])?;
        }
        Row::Request(r) => {
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
            } = *r;
            tx.prepare_cached(
                "INSERT INTO requests (id, pid, tid, conn, method, target, route, host, status,
                   start_ns, first_byte_ns, end_ns, bytes_in, bytes_out, vm_bytes, rss_bytes,
                   faults, mem_calls, exact)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                   ?17, ?18, ?19)",
            )?
            .execute(params![
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
                bytes_in as i64,
                bytes_out as i64,
                vm_bytes,
                rss_bytes,
                faults as i64,
                mem_calls as i64,
                exact
            ])?;
        }
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
            .execute(params![ts_ns, pid, conn, kind, bytes as i64])?;
        }
    }
    Ok(())
}
