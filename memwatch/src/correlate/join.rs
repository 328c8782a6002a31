//! Joining access-log lines to captured requests. Pure logic.
//!
//! A line matches at most one request, and a request at most one line, when:
//! - method, target and status are equal (targets after `--redact-query`, if given);
//! - the line's timestamp (one-second resolution) is no earlier than one second before the
//!   request started and no later than [`SLACK`] after its first response byte. That covers both
//!   Apache's `%t` (request received) and nginx's `$time_local` (response end) without knowing
//!   which the log uses;
//! - with `%D`/`%T`, the candidate whose duration is closest wins; otherwise the oldest.
//!
//! Requests are offered when their response starts (the status is known then), so a line can
//! match a keep-alive request whose end the kernel has not reported yet. Either side waits up to
//! [`WAIT`] for its twin; a line still alone then is written unmatched.

use std::collections::VecDeque;

use crate::recording::{Row, writer::LogLineRow};

/// How long a line or a request waits for its twin.
pub const WAIT: i64 = 10_000_000_000;
/// How long after the first response byte a line's timestamp may be.
pub const SLACK: i64 = 5_000_000_000;

/// A request whose response has started: what a log line is matched against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: i64,
    pub method: String,
    pub target: String,
    pub status: u16,
    pub start_ns: i64,
    pub first_byte_ns: i64,
}

#[derive(Debug, Default)]
pub struct Joiner {
    lines: VecDeque<LogLineRow>,
    requests: VecDeque<(Candidate, i64)>,
}

fn compatible(line: &LogLineRow, c: &Candidate) -> bool {
    let (Some(method), Some(target), Some(status), Some(ts)) =
        (&line.method, &line.target, line.status, line.ts_ns)
    else {
        return false;
    };
    *method == c.method
        && *target == c.target
        && status == c.status
        && ts >= c.start_ns - 1_000_000_000 - (c.start_ns.rem_euclid(1_000_000_000))
        && ts <= c.first_byte_ns + SLACK
}

impl Joiner {
    /// Offers a request; returns the line rows this decided.
    pub fn request(&mut self, c: Candidate, now_ns: i64) -> Vec<Row> {
        let mut out = Vec::new();
        let found = self.lines.iter().position(|l| compatible(l, &c));
        match found.and_then(|i| self.lines.remove(i)) {
            Some(mut line) => {
                line.request_id = Some(c.id);
                out.push(Row::LogLine(Box::new(line)));
            }
            None => self.requests.push_back((c, now_ns)),
        }
        self.expire(now_ns, &mut out);
        out
    }

    /// Offers a line; returns the rows this decided.
    pub fn line(&mut self, mut line: LogLineRow, now_ns: i64) -> Vec<Row> {
        let mut out = Vec::new();
        if line.reason.is_some() || line.method.is_none() {
            // Rejected, or a valid line with an invalid request: nothing to match.
            out.push(Row::LogLine(Box::new(line)));
        } else {
            let mut best: Option<(usize, u64)> = None;
            for (i, (c, _)) in self.requests.iter().enumerate() {
                if !compatible(&line, c) {
                    continue;
                }
                // With a logged duration, prefer the closest; otherwise the oldest.
                let score = line.duration_us.map_or(0, |d| {
                    let took_us = (c.first_byte_ns - c.start_ns).max(0) as u64 / 1000;
                    took_us.abs_diff(d)
                });
                if best.is_none_or(|(_, s)| score < s) {
                    best = Some((i, score));
                }
            }
            match best.and_then(|(i, _)| self.requests.remove(i)) {
                Some((c, _)) => {
                    line.request_id = Some(c.id);
                    out.push(Row::LogLine(Box::new(line)));
                }
                None => self.lines.push_back(line),
            }
        }
        self.expire(now_ns, &mut out);
        out
    }

    /// Gives up on what has waited longer than [`WAIT`].
    fn expire(&mut self, now_ns: i64, out: &mut Vec<Row>) {
        while self
            .lines
            .front()
            .is_some_and(|l| now_ns - l.arrived_ns > WAIT)
        {
            if let Some(line) = self.lines.pop_front() {
                out.push(Row::LogLine(Box::new(line)));
            }
        }
        while self
            .requests
            .front()
            .is_some_and(|(_, at)| now_ns - at > WAIT)
        {
            self.requests.pop_front();
        }
    }

    /// Periodic expiry, when nothing new arrives.
    pub fn tick(&mut self, now_ns: i64) -> Vec<Row> {
        let mut out = Vec::new();
        self.expire(now_ns, &mut out);
        out
    }

    /// End of recording: every waiting line is written, unmatched.
    pub fn finish(&mut self) -> Vec<Row> {
        self.lines
            .drain(..)
            .map(|l| Row::LogLine(Box::new(l)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn line(target: &str, status: u16, ts: i64, arrived: i64, dur: Option<u64>) -> LogLineRow {
        LogLineRow {
            source: "access.log".into(),
            arrived_ns: arrived,
            ts_ns: Some(ts),
            method: Some("GET".into()),
            target: Some(target.into()),
            status: Some(status),
            duration_us: dur,
            ..LogLineRow::default()
        }
    }

    fn cand(id: i64, target: &str, status: u16, start: i64, first: i64) -> Candidate {
        Candidate {
            id,
            method: "GET".into(),
            target: target.into(),
            status,
            start_ns: start,
            first_byte_ns: first,
        }
    }

    fn matched(rows: &[Row]) -> Vec<(Option<String>, Option<i64>)> {
        rows.iter()
            .filter_map(|r| match r {
                Row::LogLine(l) => Some((l.target.clone(), l.request_id)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn line_after_request_matches() {
        let mut j = Joiner::default();
        assert!(
            j.request(cand(1, "/a", 200, 100 * S + 300, 100 * S + 900), 101 * S)
                .is_empty()
        );
        // Timestamp truncated to the second, like a log's.
        let rows = j.line(line("/a", 200, 100 * S, 101 * S, None), 101 * S);
        assert_eq!(matched(&rows), vec![(Some("/a".into()), Some(1))]);
    }

    #[test]
    fn request_after_line_matches_and_status_must_agree() {
        let mut j = Joiner::default();
        assert!(
            j.line(line("/a", 404, 50 * S, 50 * S, None), 50 * S)
                .is_empty()
        );
        assert!(
            j.request(cand(7, "/a", 200, 50 * S, 50 * S + 1), 50 * S)
                .is_empty()
        );
        let rows = j.request(cand(8, "/a", 404, 50 * S, 50 * S + 1), 50 * S);
        assert_eq!(matched(&rows), vec![(Some("/a".into()), Some(8))]);
    }

    #[test]
    fn far_timestamps_do_not_match_and_lines_expire_unmatched() {
        let mut j = Joiner::default();
        j.request(cand(1, "/a", 200, 10 * S, 10 * S), 10 * S);
        assert!(
            j.line(line("/a", 200, 30 * S, 30 * S, None), 30 * S)
                .is_empty()
        );
        let rows = j.tick(30 * S + WAIT + 1);
        assert_eq!(matched(&rows), vec![(Some("/a".into()), None)]);
    }

    #[test]
    fn duration_picks_the_closest_candidate() {
        let mut j = Joiner::default();
        j.request(cand(1, "/s", 200, 10 * S, 10 * S + 2_000_000), 10 * S);
        j.request(cand(2, "/s", 200, 10 * S, 10 * S + 300_000_000), 10 * S);
        let rows = j.line(line("/s", 200, 10 * S, 11 * S, Some(300_000)), 11 * S);
        assert_eq!(matched(&rows), vec![(Some("/s".into()), Some(2))]);
    }

    #[test]
    fn rejects_are_written_at_once() {
        let mut j = Joiner::default();
        let reject = LogLineRow {
            reason: Some("bad_status"),
            raw: Some("garbage".into()),
            ..LogLineRow::default()
        };
        assert_eq!(j.line(reject, 0).len(), 1);
    }
}
