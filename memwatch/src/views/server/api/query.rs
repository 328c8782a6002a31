//! Query parameters: the query string as given ([`Given`]), the checks that the endpoints' typed
//! queries share (integers within bounds, the time range, text as given), and the extractor
//! ([`Checked`]) that reads a typed query and answers 400 when a parameter fails its check, with
//! a message that names the parameter, shows its value and says what is accepted.
//!
//! An endpoint's typed query derives `Deserialize` with `#[serde(try_from = "Given")]`, and its
//! `TryFrom<Given>` checks the parameters in the order the page's messages have always named the
//! first bad one: `from`, `to`, then the endpoint's own.

use std::{collections::HashMap, fmt};

use axum::{
    extract::FromRequestParts,
    http::{StatusCode, request::Parts},
};
use serde::{Deserialize, de::DeserializeOwned};

use super::{ApiError, MS};
use crate::recording::query::Range;

/// The query string as given: each key's last value. Keys that no endpoint reads (`token`) are
/// let be.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub(super) struct Given(HashMap<String, String>);

/// A parameter that failed its check; what the 400 answer says.
#[derive(Debug)]
pub(super) struct BadParam(String);

impl fmt::Display for BadParam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Given {
    /// An optional integer parameter within `[min, max]`.
    pub(super) fn int(&self, key: &str, min: i64, max: i64) -> Result<Option<i64>, BadParam> {
        let Some(raw) = self.0.get(key) else {
            return Ok(None);
        };
        match raw.parse::<i64>() {
            Ok(v) if (min..=max).contains(&v) => Ok(Some(v)),
            _ => Err(BadParam(format!(
                "{key}={raw:?} is not an integer from {min} to {max}{}",
                if key == "from" || key == "to" {
                    " (times are epoch milliseconds)"
                } else {
                    ""
                }
            ))),
        }
    }

    /// `from` and `to` (epoch ms, both optional, `from` not after `to`) as a range in ns.
    pub(super) fn range(&self) -> Result<Range, BadParam> {
        let from = self.int("from", 0, i64::MAX / MS)?;
        let to = self.int("to", 0, i64::MAX / MS)?;
        if let (Some(f), Some(t)) = (from, to)
            && f > t
        {
            return Err(BadParam(format!("from={f} is after to={t}")));
        }
        Ok(Range {
            from_ns: from.map(|v| v * MS),
            to_ns: to.map(|v| v * MS),
        })
    }

    /// `limit`, for the endpoints that list rows: at most this many (1 to 5000, 200 by default).
    pub(super) fn limit(&self) -> Result<i64, BadParam> {
        Ok(self.int("limit", 1, 5000)?.unwrap_or(200))
    }

    /// An optional text parameter, as given (a route or a method: any text is accepted).
    pub(super) fn text(&mut self, key: &str) -> Option<String> {
        self.0.remove(key)
    }
}

/// An endpoint's typed query `T`, read from the request's query string; a parameter that fails
/// `T`'s check answers 400 with the check's message.
#[derive(Debug)]
pub(super) struct Checked<T>(pub(super) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Checked<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        // What axum's `Query` reads with, without the prefix its rejection puts before the
        // message: `try_from`'s error reaches here as the message itself.
        serde_urlencoded::from_str(parts.uri.query().unwrap_or_default())
            .map(Self)
            .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::server::api::testing::checked;

    /// A query of the range alone.
    #[derive(Debug, Deserialize)]
    #[serde(try_from = "Given")]
    struct RangeOnly(Range);

    impl TryFrom<Given> for RangeOnly {
        type Error = BadParam;

        fn try_from(p: Given) -> Result<Self, BadParam> {
            p.range().map(Self)
        }
    }

    fn range(query: &str) -> Result<(Option<i64>, Option<i64>), String> {
        checked::<RangeOnly>(query).map(|RangeOnly(r)| (r.from_ns, r.to_ns))
    }

    #[test]
    fn a_range_is_epoch_milliseconds_in_order() {
        assert_eq!(range(""), Ok((None, None)));
        assert_eq!(range("from=5"), Ok((Some(5 * MS), None)));
        assert_eq!(range("from=5&to=5"), Ok((Some(5 * MS), Some(5 * MS))));
        assert_eq!(range("to=7&token=s3cret"), Ok((None, Some(7 * MS))));
        let max = i64::MAX / MS;
        assert_eq!(range(&format!("to={max}")), Ok((None, Some(max * MS))));
        // Each key's last value, as the page's answers have always read them.
        assert_eq!(range("from=1&from=2"), Ok((Some(2 * MS), None)));

        let not_a_time = |key: &str, raw: &str| {
            format!(
                "{key}={raw:?} is not an integer from 0 to {max} (times are epoch milliseconds)"
            )
        };
        assert_eq!(range("from=x"), Err(not_a_time("from", "x")));
        assert_eq!(range("from="), Err(not_a_time("from", "")));
        assert_eq!(range("to=-1"), Err(not_a_time("to", "-1")));
        assert_eq!(range("to=1.5"), Err(not_a_time("to", "1.5")));
        let past = format!("{}", max + 1);
        assert_eq!(
            range(&format!("from={past}")),
            Err(not_a_time("from", &past))
        );
        // `from` is checked first, then `to`, then their order.
        assert_eq!(range("to=y&from=x"), Err(not_a_time("from", "x")));
        assert_eq!(range("from=3&to=2"), Err("from=3 is after to=2".to_owned()));
        // Percent-decoded before it is checked and shown.
        assert_eq!(range("from=%22a%22"), Err(not_a_time("from", "\"a\"")));
    }
}
