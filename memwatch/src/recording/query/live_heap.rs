//! Collected runtimes' live heap after each collection (`live_heap`, schema 8), and the request
//! ends the regression counts between two collections of one process.

use rusqlite::params;

use crate::{error::RecordingError, recording::Recording, recording::schema::HAS_LIVE_HEAP};

/// One collection's report (whole: a row that does not decode fails the query).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveHeapPoint {
    pub ts_ns: i64,
    pub pid: u32,
    pub bytes: i64,
    /// `jvm`, `go`, `node` (the followed heap when V8 had swept), or `heap` (the followed heap,
    /// sampled).
    pub source: String,
}

/// A request's end, its process and its route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestEnd {
    pub start_ns: i64,
    pub end_ns: i64,
    pub pid: u32,
    pub method: String,
    pub route: String,
}

impl Recording {
    /// The live-heap reports in `[from_ns, to_ns]`, by process then time; none in recordings
    /// before schema 8.
    pub fn live_heap(
        &self,
        from_ns: i64,
        to_ns: i64,
    ) -> Result<Vec<LiveHeapPoint>, RecordingError> {
        let mut out = Vec::new();
        if self.schema_version() < HAS_LIVE_HEAP {
            return Ok(out);
        }
        self.each(
            "SELECT ts_ns, pid, bytes, source FROM live_heap
             WHERE ts_ns >= ?1 AND ts_ns <= ?2 ORDER BY pid, ts_ns",
            params![from_ns, to_ns],
            |r| {
                Ok(LiveHeapPoint {
                    ts_ns: r.get(0)?,
                    pid: r.get(1)?,
                    bytes: r.get(2)?,
                    source: r.get(3)?,
                })
            },
            |p| out.push(p),
        )?;
        Ok(out)
    }

    /// Each request that ended in `[from_ns, to_ns]`, by end. The caller
    /// bounds the range's request count first (the report's exact limit).
    pub fn request_ends(
        &self,
        from_ns: i64,
        to_ns: i64,
        f: impl FnMut(RequestEnd),
    ) -> Result<(), RecordingError> {
        self.each(
            "SELECT start_ns, end_ns, pid, COALESCE(method, '-'), COALESCE(route, '-') FROM requests
             WHERE end_ns >= ?1 AND end_ns <= ?2",
            params![from_ns, to_ns],
            |r| {
                Ok(RequestEnd {
                    start_ns: r.get(0)?,
                    end_ns: r.get(1)?,
                    pid: r.get(2)?,
                    method: r.get(3)?,
                    route: r.get(4)?,
                })
            },
            f,
        )
    }
}
