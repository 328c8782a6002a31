//! Memory as the capture sees it: each memory syscall (`mem_events`), the sampler's resident
//! and virtual sizes (`samples`), each thread's page faults (`threads`), and a collected
//! runtime's live heap after a collection (`live_heap`).

use rusqlite::{Transaction, params};

use crate::model::{HeapSampleRow, MemRow, mem_op_name};

/// One memory syscall, its op stored by name.
pub(super) fn mem(tx: &Transaction<'_>, m: &MemRow) -> rusqlite::Result<()> {
    let MemRow {
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
    } = *m;
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
    Ok(())
}

/// A process's memory at one sampling tick.
pub(super) fn sample(
    tx: &Transaction<'_>,
    ts_ns: i64,
    pid: u32,
    rss_bytes: u64,
    vm_bytes: u64,
    faults: u64,
) -> rusqlite::Result<()> {
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
    Ok(())
}

/// A thread's page faults so far, and its exit once known: the most faults and the first exit
/// seen count.
pub(super) fn thread(
    tx: &Transaction<'_>,
    tid: u32,
    pid: u32,
    faults: u64,
    exited_ns: Option<i64>,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO threads (tid, pid, faults, exited_ns) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (tid) DO UPDATE SET pid = excluded.pid,
           faults = MAX(faults, excluded.faults),
           exited_ns = COALESCE(excluded.exited_ns, exited_ns)",
    )?
    .execute(params![tid, pid, faults as i64, exited_ns])?;
    Ok(())
}

/// A runtime's live heap right after a collection, as it reports it (`source`: `jvm`, `go`).
pub(super) fn live_heap(
    tx: &Transaction<'_>,
    ts_ns: i64,
    pid: u32,
    bytes: u64,
    source: &str,
) -> rusqlite::Result<()> {
    tx.prepare_cached("INSERT INTO live_heap (ts_ns, pid, bytes, source) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![ts_ns, pid, bytes as i64, source])?;
    Ok(())
}

/// An allocation Go's runtime sampled.
pub(super) fn heap_sample(tx: &Transaction<'_>, h: &HeapSampleRow) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO heap_samples (id, ts_ns, pid, request_id, method, route, size, weight)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        h.id as i64,
        h.ts_ns,
        h.pid,
        h.request_id,
        h.method.as_deref(),
        h.route.as_deref(),
        h.size as i64,
        h.weight as i64
    ])?;
    Ok(())
}

/// A sampled allocation freed.
pub(super) fn heap_sample_freed(tx: &Transaction<'_>, id: u64, ts_ns: i64) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE heap_samples SET freed_ns = ?2 WHERE id = ?1")?
        .execute(params![id as i64, ts_ns])?;
    Ok(())
}
