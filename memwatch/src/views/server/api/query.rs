//! Query parameters: the checks the endpoints share (integers within bounds, the time range),
//! each answering 400 with a message that names the parameter, shows its value and says what is
//! accepted.

use std::collections::HashMap;

use axum::{extract::Query, http::StatusCode};

use super::{ApiError, MS};
use crate::recording::query::Range;

pub(super) type Params = Query<HashMap<String, String>>;

fn bad(what: String) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, what)
}

/// An optional integer parameter within `[min, max]`.
pub(super) fn int(
    p: &HashMap<String, String>,
    key: &str,
    min: i64,
    max: i64,
) -> Result<Option<i64>, ApiError> {
    let Some(raw) = p.get(key) else {
        return Ok(None);
    };
    match raw.parse::<i64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(Some(v)),
        _ => Err(bad(format!(
            "{key}={raw:?} is not an integer from {min} to {max}{}",
            if key == "from" || key == "to" {
                " (times are epoch milliseconds)"
            } else {
                ""
            }
        ))),
    }
}

pub(super) fn range(p: &HashMap<String, String>) -> Result<Range, ApiError> {
    let from = int(p, "from", 0, i64::MAX / MS)?;
    let to = int(p, "to", 0, i64::MAX / MS)?;
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return Err(bad(format!("from={f} is after to={t}")));
    }
    Ok(Range {
        from_ns: from.map(|v| v * MS),
        to_ns: to.map(|v| v * MS),
    })
}
