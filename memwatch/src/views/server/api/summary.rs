//! `GET /api/summary`: what the recording holds as a whole (its span, counters, memory of the
//! whole target, processes, access log and memwatch's own figures).

use std::{
    collections::BTreeMap,
    sync::{Arc, atomic::Ordering},
};

use axum::extract::State;
use serde::Serialize;

use super::{ApiResult, MS, answer, bounds, ms};
use crate::{
    model::ProcessOrigin,
    recording::{Recording, query},
    units::NS_PER_SEC,
    views::{
        report,
        server::{ApiError, AppState},
    },
};

pub(super) async fn handler(State(state): State<Arc<AppState>>) -> ApiResult<Summary> {
    let live = state.live.load(Ordering::Relaxed);
    answer(&state, move |rec| Summary::read(rec, live)).await
}

/// `GET /api/summary`.
#[derive(Debug, Serialize)]
pub(crate) struct Summary {
    pub access_log: Option<AccessLog>,
    pub approximate_requests: u64,
    /// When memwatch stopped the command it started (`record -- CMD`, at Ctrl-C or the end of
    /// `--duration`); the routes' figures end there, before the exit freed everything. `null`
    /// when memwatch attached to a running process or the command exited on its own.
    pub command_stopped_ms: Option<i64>,
    pub dropped_events: u64,
    pub duration_s: f64,
    pub ended_ms: Option<i64>,
    pub events: u64,
    pub latest_ms: i64,
    pub live: bool,
    pub lost: Lost,
    pub memory: Memory,
    /// memwatch's own figures (the report's `memwatch`); `null` until the recording closes.
    pub memwatch: Option<report::OwnState>,
    pub non_http: BTreeMap<String, u64>,
    pub processes: Vec<Process>,
    /// Whether query strings were dropped before storing (`--redact-query`); `null` when the
    /// recording does not say (made before memwatch recorded it).
    pub redact_query: Option<bool>,
    pub requests: u64,
    pub started_ms: i64,
    /// Samples, and rejected access-log lines' text, that did not decode and were left out.
    pub undecodable_rows: u64,
}

/// The report's `access_log` object.
#[derive(Debug, Serialize)]
pub(crate) struct AccessLog {
    pub format: Vec<String>,
    pub invalid_requests: u64,
    pub lines: u64,
    pub matched: u64,
    pub mode: String,
    pub parsed: u64,
    pub rejected: BTreeMap<String, u64>,
    pub rejected_examples: Vec<String>,
    pub sources: Vec<String>,
    pub unmatched_lines: u64,
    pub unmatched_requests: u64,
}

/// The report's `lost` object.
#[derive(Debug, Serialize)]
pub(crate) struct Lost {
    pub dropped_events: u64,
    pub map_full: u64,
    pub undecodable: u64,
    pub unpaired_exits: u64,
}

/// Memory of the whole target: RSS and VmSize summed over the processes.
#[derive(Debug, Serialize)]
pub(crate) struct Memory {
    pub page_faults: u64,
    pub rss_end_bytes: i64,
    pub rss_peak_bytes: i64,
    pub rss_start_bytes: i64,
    pub vm_end_bytes: i64,
    pub vm_peak_bytes: i64,
    pub vm_start_bytes: i64,
}

#[derive(Debug, Serialize)]
pub(crate) struct Process {
    pub comm: String,
    pub exited_ms: Option<i64>,
    pub origin: ProcessOrigin,
    pub pid: u32,
    pub ppid: Option<u32>,
    pub started_ms: Option<i64>,
}

impl From<report::AccessLog> for AccessLog {
    fn from(a: report::AccessLog) -> Self {
        let report::AccessLog {
            sources,
            format,
            mode,
            lines,
            parsed,
            rejected,
            invalid_requests,
            matched,
            unmatched_lines,
            unmatched_requests,
            rejected_examples,
            // Counted in the summary's `undecodable_rows`.
            undecodable_examples: _,
        } = a;
        Self {
            format,
            invalid_requests,
            lines,
            matched,
            mode,
            parsed,
            rejected,
            rejected_examples,
            sources,
            unmatched_lines,
            unmatched_requests,
        }
    }
}

impl From<query::Lost> for Lost {
    fn from(l: query::Lost) -> Self {
        let query::Lost {
            dropped_events,
            unpaired_exits,
            map_full,
            undecodable,
        } = l;
        Self {
            dropped_events,
            map_full,
            undecodable,
            unpaired_exits,
        }
    }
}

impl From<query::Process> for Process {
    fn from(p: query::Process) -> Self {
        let query::Process {
            pid,
            ppid,
            comm,
            cmdline: _,
            origin,
            started_ns,
            exited_ns,
            exit_code: _,
        } = p;
        Self {
            comm,
            exited_ms: ms(exited_ns),
            origin,
            pid,
            ppid,
            started_ms: ms(started_ns),
        }
    }
}

impl Summary {
    pub(crate) fn read(rec: &Recording, live: bool) -> Result<Self, ApiError> {
        let (started, ended, latest) = bounds(rec)?;
        let counters = rec.counters()?;
        let samples = rec.sample_series(None)?;
        let series = samples.rows;
        let first = series.first().map_or((0, 0), |p| (p.rss_bytes, p.vm_bytes));
        let last = series.last().map_or((0, 0), |p| (p.rss_bytes, p.vm_bytes));
        let memory = Memory {
            page_faults: rec.total_faults()?,
            rss_end_bytes: last.0,
            rss_peak_bytes: series.iter().map(|p| p.rss_bytes).max().unwrap_or(0),
            rss_start_bytes: first.0,
            vm_end_bytes: last.1,
            vm_peak_bytes: series.iter().map(|p| p.vm_bytes).max().unwrap_or(0),
            vm_start_bytes: first.1,
        };
        let access_log = report::AccessLog::read(rec)?;
        let undecodable_rows = samples
            .undecodable
            .saturating_add(access_log.as_ref().map_or(0, |a| a.undecodable_examples));
        Ok(Self {
            access_log: access_log.map(AccessLog::from),
            approximate_requests: rec.approximate_request_count()?,
            command_stopped_ms: ms(rec.command_stopped_ns()?),
            dropped_events: counters.lost.dropped_events,
            duration_s: ended.unwrap_or(latest).saturating_sub(started).max(0) as f64
                / NS_PER_SEC as f64,
            ended_ms: ms(ended),
            events: counters.events,
            latest_ms: latest / MS,
            live,
            lost: counters.lost.into(),
            memory,
            memwatch: report::OwnState::read(rec)?,
            non_http: rec.non_http_counts()?,
            processes: rec.processes()?.into_iter().map(Process::from).collect(),
            redact_query: report::redact_query(rec)?,
            requests: rec.request_count()?,
            started_ms: started / MS,
            undecodable_rows,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::server::api::testing::{assert_sorted, undecodable_rows};

    /// The answer, with every optional object and list filled, sends its keys sorted.
    #[test]
    fn keys_are_sorted() {
        let counts = BTreeMap::from([("a".to_owned(), 1), ("b".to_owned(), 2)]);
        assert_sorted(&Summary {
            access_log: Some(AccessLog {
                format: vec!["combined".into()],
                invalid_requests: 0,
                lines: 3,
                matched: 1,
                mode: "joined".into(),
                parsed: 2,
                rejected: counts.clone(),
                rejected_examples: vec!["x".into()],
                sources: vec!["access.log".into()],
                unmatched_lines: 1,
                unmatched_requests: 0,
            }),
            approximate_requests: 0,
            command_stopped_ms: Some(1_700_000_000_000),
            dropped_events: 0,
            duration_s: 1.5,
            ended_ms: Some(2),
            events: 10,
            latest_ms: 2,
            live: false,
            lost: Lost {
                dropped_events: 0,
                map_full: 0,
                undecodable: 0,
                unpaired_exits: 0,
            },
            memory: Memory {
                page_faults: 1,
                rss_end_bytes: 1,
                rss_peak_bytes: 1,
                rss_start_bytes: 1,
                vm_end_bytes: 1,
                vm_peak_bytes: 1,
                vm_start_bytes: 1,
            },
            memwatch: Some(report::OwnState {
                kernel_map_entries: counts.clone(),
                cpu: Some(report::OwnCpu::default()),
                bpf_programs: vec![crate::model::ProgramStats {
                    name: "p".into(),
                    runs: 1,
                    run_ns: 2,
                }],
                ..report::OwnState::default()
            }),
            non_http: counts,
            processes: vec![Process {
                comm: "server".into(),
                exited_ms: None,
                origin: ProcessOrigin::Attached,
                pid: 1,
                ppid: Some(0),
                started_ms: Some(0),
            }],
            redact_query: Some(false),
            requests: 1,
            started_ms: 0,
            undecodable_rows: 0,
        });
    }

    /// The sample's tick, and the line's text among the access log's rejected examples, are
    /// left out and counted.
    #[test]
    fn undecodable_rows_are_counted() {
        let (_dir, rec) = undecodable_rows();
        let summary = Summary::read(&rec, false).unwrap();
        assert_eq!(summary.undecodable_rows, 2);
        assert_eq!(summary.memory.rss_peak_bytes, 4096);
        let access_log = summary.access_log.unwrap();
        assert_eq!(access_log.rejected_examples, ["garbage 1", "garbage 3"]);
    }
}
