//! What the API's unit tests share: a typed query read as a request's would be, the check that
//! an answer sends its keys sorted, and a recording with rows that do not decode.

use std::fmt;

use axum::{
    extract::FromRequestParts as _,
    http::{Request, StatusCode},
};
use futures_util::FutureExt as _;
use memwatch_common::mem::MemOp;
use serde::{
    Serialize,
    de::{
        self, Deserialize, DeserializeOwned, Deserializer, Error as _, MapAccess, SeqAccess,
        Visitor,
    },
};
use tempfile::TempDir;

use super::query::Checked;
use crate::{
    model::{LogLineRow, MemRow, RequestRow, Row, meta},
    recording::{Recording, Writer},
    views::server::ApiError,
};

/// The typed query `T` read from `query` as a request's is, or the message of its 400 answer.
pub(super) fn checked<T: DeserializeOwned>(query: &str) -> Result<T, String> {
    let (mut parts, ()) = Request::builder()
        .uri(format!("/api?{query}"))
        .body(())
        .unwrap()
        .into_parts();
    let read = Checked::<T>::from_request_parts(&mut parts, &())
        .now_or_never()
        .expect("reading a query waits for nothing");
    match read {
        Ok(Checked(q)) => Ok(q),
        Err(ApiError(status, message)) => {
            assert_eq!(status, StatusCode::BAD_REQUEST, "{message}");
            Err(message)
        }
    }
}

/// Any JSON value whose objects, at every depth, have their keys in ascending order.
struct Sorted;

impl<'de> Deserialize<'de> for Sorted {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SortedVisitor)
    }
}

struct SortedVisitor;

impl<'de> Visitor<'de> for SortedVisitor {
    type Value = Sorted;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON whose object keys are sorted")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Sorted, E> {
        Ok(Sorted)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Sorted, E> {
        Ok(Sorted)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Sorted, E> {
        Ok(Sorted)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Sorted, E> {
        Ok(Sorted)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Sorted, E> {
        Ok(Sorted)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Sorted, E> {
        Ok(Sorted)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Sorted, A::Error> {
        while seq.next_element::<Sorted>()?.is_some() {}
        Ok(Sorted)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Sorted, A::Error> {
        let mut previous: Option<String> = None;
        while let Some(key) = map.next_key::<String>()? {
            if let Some(previous) = previous.as_ref().filter(|p| **p >= key) {
                return Err(A::Error::custom(format!(
                    "{key:?} comes after {previous:?}"
                )));
            }
            map.next_value::<Sorted>()?;
            previous = Some(key);
        }
        Ok(Sorted)
    }
}

pub(super) fn assert_sorted(answer: &impl Serialize) {
    let json = serde_json::to_string(answer).unwrap();
    if let Err(e) = serde_json::from_str::<Sorted>(&json) {
        panic!("keys out of order ({e}) in {json}");
    }
}

#[test]
fn unsorted_keys_are_found_at_any_depth() {
    assert!(serde_json::from_str::<Sorted>(r#"[{"a": {"b": 2, "c": 1}}]"#).is_ok());
    assert!(serde_json::from_str::<Sorted>(r#"[{"a": {"c": 1, "b": 2}}]"#).is_err());
}

/// A recording with one row of each kind the API lists that cannot be decoded (a value of the
/// wrong type, as only something other than memwatch writes), the second of three: a sample, a
/// request, an access-log line and a memory event, each at 1, 2 and 3 s. The directory holds
/// the file.
pub(super) fn undecodable_rows() -> (TempDir, Recording) {
    use crate::units::NS_PER_SEC as S;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let writer = Writer::create(&path, &[(meta::ACCESS_LOGS, "access.log".to_owned())]).unwrap();
    let mut rows = Vec::new();
    for i in 1..=3 {
        rows.push(Row::Sample {
            ts_ns: i * S,
            pid: 1,
            rss_bytes: 4096,
            vm_bytes: 8192,
            faults: 0,
        });
        rows.push(Row::Request(RequestRow {
            id: i,
            pid: 1,
            tid: 1,
            conn: 1,
            method: Some("GET".into()),
            route: Some("/".into()),
            status: Some(200),
            start_ns: i * S,
            end_ns: i * S + 1000,
            exact: true,
            ..RequestRow::default()
        }));
        rows.push(Row::LogLine(Box::new(LogLineRow {
            source: "access.log".into(),
            arrived_ns: i * S,
            reason: Some("missing_timestamp"),
            raw: Some(format!("garbage {i}")),
            ..LogLineRow::default()
        })));
        rows.push(Row::Mem(MemRow {
            ts_ns: i * S,
            pid: 1,
            tid: 1,
            op: MemOp::Mmap,
            addr: 0,
            len: 2 << 20,
            new_len: 0,
            prot: 3,
            flags: 34,
            fd: -1,
            ret: 0,
            ok: true,
            vm_delta: 2 << 20,
            request_id: None,
            stack: None,
        }));
    }
    writer.send(rows);
    writer.finish().unwrap();
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "UPDATE request_rows SET bytes_in = 'junk' WHERE id = 2;
             UPDATE samples SET rss_bytes = 'junk' WHERE ts_ns = 2000000000;
             UPDATE log_lines SET raw = X'00ff' WHERE arrived_ns = 2000000000;
             UPDATE mem_events SET pid = 'junk' WHERE ts_ns = 2000000000;",
        )
        .unwrap();
    let rec = Recording::open(&path).unwrap();
    (dir, rec)
}
