//! Access-log lines (`log_lines`): parsed or rejected (with why, and the raw line), and the
//! request each was joined to.

use rusqlite::{Transaction, params};

use crate::model::LogLineRow;

/// One line; `ok` is whether it parsed.
pub(super) fn insert(tx: &Transaction<'_>, line: LogLineRow) -> rusqlite::Result<()> {
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
    } = line;
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
    Ok(())
}
