//! `--stacks`: interned stacks (`stacks`, their frames' ids leaf first) and frames, symbolized
//! (`frames`). What each call site grew is summed per batch in [`super::retained`].

use rusqlite::{Transaction, params};

use crate::model::{FrameRow, Unwind};

/// One stack: its frames' ids, comma-separated, and how it was unwound.
pub(super) fn stack(
    tx: &Transaction<'_>,
    id: u32,
    frames: &[u32],
    unwind: Unwind,
) -> rusqlite::Result<()> {
    let frames = frames
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    tx.prepare_cached("INSERT INTO stacks (id, frames, unwind) VALUES (?1, ?2, ?3)")?
        .execute(params![id, frames, unwind.name()])?;
    Ok(())
}

/// One frame: where it is, and what names it.
pub(super) fn frame(tx: &Transaction<'_>, f: FrameRow) -> rusqlite::Result<()> {
    let FrameRow {
        id,
        module,
        offset,
        function,
        file,
        line,
    } = f;
    tx.prepare_cached(
        "INSERT INTO frames (id, module, offset, function, file, line)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![id, &*module, offset as i64, function, file, line])?;
    Ok(())
}
