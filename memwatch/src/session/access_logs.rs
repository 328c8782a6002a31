//! Access logs: checked before anything is loaded, then read at each sample, their lines routed
//! and joined to captured requests (or, without eBPF, to the interval's growth).

use std::path::PathBuf;

use super::{Session, wall_ns};
use crate::{
    capture::accesslog::Format,
    correlate::route,
    model::{Row, meta},
};

/// `--log-format` and `--access-log`, checked before anything is loaded: the format parses and
/// every log is readable (or its directory exists, to wait for it).
pub fn check_access_logs(
    log_format: Option<&str>,
    logs: &[PathBuf],
) -> anyhow::Result<Option<Format>> {
    let format = log_format
        .map(Format::from_name_or_log_format)
        .transpose()?;
    for log in logs {
        crate::capture::log_source::check(log)?;
    }
    Ok(format)
}

/// How long the stop waits for the log lines of the last requests: a server writes a
/// request's line after its response, so a stop right after the last response can come
/// before the line: the test that sends nginx 2000 requests with `ab`, then stops, once read
/// 1999 lines and left the last request unmatched.
const LAST_LINES_GRACE: std::time::Duration = std::time::Duration::from_millis(250);
/// Requests offered this recently count as the last ones, whose lines may still come.
const LAST_REQUESTS_NS: i64 = 1_000_000_000;

impl Session {
    /// At the stop: reads the logs until no request of the last second waits for its line, for
    /// at most [`LAST_LINES_GRACE`] (a request no log names waits it out). Then everything
    /// held is flushed, as [`Self::read_logs`] with `done`.
    pub(super) async fn read_last_logs(&mut self) {
        let deadline = std::time::Instant::now() + LAST_LINES_GRACE;
        while !self.logs.is_empty() {
            self.read_logs(false);
            let waiting = self.joiner.waiting_since(wall_ns() - LAST_REQUESTS_NS);
            if waiting == 0 {
                break;
            }
            if std::time::Instant::now() >= deadline {
                tracing::debug!(waiting, "requests still without their log line at stop");
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        self.read_logs(true);
    }

    /// Reads the access logs: each line is routed, then joined to a captured request (or, with
    /// `--no-ebpf`, queued for the interval's growth). `done` flushes everything held.
    pub(super) fn read_logs(&mut self, done: bool) {
        let now = wall_ns();
        for i in 0..self.logs.len() {
            let lines = self.logs[i].0.poll(now);
            if !self.logs[i].1
                && let Some(name) = self.logs[i].0.format_name().map(str::to_owned)
            {
                self.logs[i].1 = true;
                self.rows.push(Row::Meta(meta::access_log_format(i), name));
            }
            for mut line in lines {
                if let Some(t) = line.target.as_mut() {
                    if self.redact_query {
                        *t = route::redact_query(t.as_str()).into_owned();
                    }
                    line.route = Some(self.router.route(t.as_str()));
                }
                match self.interval.as_mut() {
                    Some(interval) => interval.line(line, &mut self.rows),
                    None => {
                        let rows = self.joiner.line(line, now);
                        self.rows.extend(rows);
                    }
                }
            }
        }
        for c in self.correlator.take_candidates() {
            let rows = self.joiner.request(c, now);
            self.rows.extend(rows);
        }
        let rows = if done {
            self.joiner.finish()
        } else {
            self.joiner.tick(now)
        };
        self.rows.extend(rows);
    }
}
