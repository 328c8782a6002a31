//! How each kind of row is stored, grouped as [`super::query`] reads them back: requests and
//! their per-second rollup ([`requests`]), what is summed per batch by key: releases, outside
//! growth, address space and call-site charges ([`retained`]), memory syscalls, samples,
//! threads and live heap ([`memory`]), access-log lines ([`log_lines`]), stacks and frames
//! ([`stacks`]), and here the run itself: meta, processes, counters and non-HTTP traffic.
//!
//! [`batch`] stores one batch in the writer's transaction; the writer owns the transaction,
//! the queue and what happens when a commit fails.

mod log_lines;
mod memory;
mod requests;
mod retained;
mod stacks;

use rusqlite::{Connection, Transaction, params};

pub(super) use self::requests::Interned;
use crate::model::{CountersRow, ProcessRow, Row};

/// Stores `rows` (which it empties) in `tx`: first what is summed per batch by key, the
/// requests' per-second rollup and [`retained::BatchSums`], then each row by its kind.
/// `pace` is called before each row with its index in the batch: where the writer may give up
/// the CPU (see `writer::PACE_ROWS`).
pub(super) fn batch(
    tx: &Transaction<'_>,
    interned: &mut Interned,
    rows: &mut Vec<Row>,
    mut pace: impl FnMut(usize),
) -> rusqlite::Result<()> {
    {
        let mut rollup = requests::Rollup::default();
        let mut sums = retained::BatchSums::default();
        for row in rows.iter() {
            if let Row::Request(r) = row {
                rollup.add(r);
            } else {
                sums.add(row);
            }
        }
        rollup.write(tx)?;
        sums.write(tx)?;
    }
    // Requests are most of the rows: their statements are looked up once per batch, not per
    // row (the cache lookup hashes the SQL text), and they are inserted several to a statement.
    let mut requests = requests::Requests::new(tx)?;
    for (i, row) in rows.drain(..).enumerate() {
        pace(i);
        match row {
            Row::Meta(key, value) => meta(tx, &key, &value)?,
            Row::Process(p) => process(tx, p)?,
            Row::ProcessExit {
                pid,
                ts_ns,
                exit_code,
            } => process_exit(tx, pid, ts_ns, exit_code)?,
            Row::Counters(c) => counters(tx, &c)?,
            Row::NonHttp {
                ts_ns,
                pid,
                conn,
                kind,
                bytes,
            } => non_http(tx, ts_ns, pid, conn, kind, bytes)?,
            Row::Request(r) => requests.insert(tx, interned, r)?,
            // Summed per batch above.
            Row::Release(_)
            | Row::OutsideGrowth { .. }
            | Row::VmOrigin(_)
            | Row::StackCharge(_) => {}
            Row::Mem(m) => memory::mem(tx, &m)?,
            Row::Sample {
                ts_ns,
                pid,
                rss_bytes,
                vm_bytes,
                faults,
            } => memory::sample(tx, ts_ns, pid, rss_bytes, vm_bytes, faults)?,
            Row::Thread {
                tid,
                pid,
                faults,
                exited_ns,
            } => memory::thread(tx, tid, pid, faults, exited_ns)?,
            Row::LiveHeap {
                ts_ns,
                pid,
                bytes,
                source,
            } => memory::live_heap(tx, ts_ns, pid, bytes, source)?,
            Row::HeapSample(h) => memory::heap_sample(tx, &h)?,
            Row::HeapSampleFreed { id, ts_ns } => memory::heap_sample_freed(tx, id, ts_ns)?,
            Row::LogLine(line) => log_lines::insert(tx, *line)?,
            Row::Stack { id, frames, unwind } => stacks::stack(tx, id, &frames, unwind)?,
            Row::Frame(f) => stacks::frame(tx, *f)?,
        }
    }
    requests.flush()
}

/// A `meta` key and its value, replacing an earlier one: in a batch, and as the writer
/// finishes or stops.
pub(in crate::recording) fn meta(
    conn: &Connection,
    key: &str,
    value: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?
        .execute(params![key, value])?;
    Ok(())
}

/// A process as first seen; seen again (an exec), its name and command line change.
fn process(tx: &Transaction<'_>, p: ProcessRow) -> rusqlite::Result<()> {
    let ProcessRow {
        pid,
        ppid,
        comm,
        cmdline,
        started_ns,
        origin,
    } = p;
    tx.prepare_cached(
        "INSERT INTO processes (pid, ppid, comm, cmdline, started_ns, origin)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (pid) DO UPDATE SET comm = excluded.comm,
           cmdline = COALESCE(excluded.cmdline, cmdline)",
    )?
    .execute(params![pid, ppid, comm, cmdline, started_ns, origin.name()])?;
    Ok(())
}

/// A process's exit: the first one counts.
fn process_exit(
    tx: &Transaction<'_>,
    pid: u32,
    ts_ns: i64,
    exit_code: Option<i32>,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE processes SET exited_ns = COALESCE(exited_ns, ?2),
           exit_code = COALESCE(?3, exit_code) WHERE pid = ?1",
    )?
    .execute(params![pid, ts_ns, exit_code])?;
    Ok(())
}

/// The capture's counters at one moment, cumulative.
fn counters(tx: &Transaction<'_>, c: &CountersRow) -> rusqlite::Result<()> {
    let &CountersRow {
        ts_ns,
        events,
        dropped,
        unpaired_exits,
        map_full,
        undecodable,
        untracked_bytes,
        unmatched_release_bytes,
        unseen_release_bytes,
    } = c;
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
    Ok(())
}

/// Traffic on a connection that was not HTTP/1.x.
fn non_http(
    tx: &Transaction<'_>,
    ts_ns: i64,
    pid: u32,
    conn: u64,
    kind: &str,
    bytes: u64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO non_http (ts_ns, pid, conn, kind, bytes) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![ts_ns, pid, conn as i64, kind, bytes as i64])?;
    Ok(())
}
