//! Units for people: byte counts as text. Used by the views and the live status line.

/// Human-readable signed byte count.
pub fn bytes(b: i64) -> String {
    let sign = if b < 0 { "-" } else { "" };
    let v = b.unsigned_abs() as f64;
    if v >= 1024.0 * 1024.0 * 1024.0 {
        format!("{sign}{:.2} GiB", v / (1024.0 * 1024.0 * 1024.0))
    } else if v >= 1024.0 * 1024.0 {
        format!("{sign}{:.1} MiB", v / (1024.0 * 1024.0))
    } else if v >= 1024.0 {
        format!("{sign}{:.1} KiB", v / 1024.0)
    } else {
        format!("{sign}{v} B")
    }
}
