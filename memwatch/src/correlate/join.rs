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

use std::{
    collections::{HashMap, VecDeque},
    hash::{BuildHasher, RandomState},
};

use crate::{
    model::{LogLineRow, Row},
    units::NS_PER_SEC,
};

/// How long a line or a request waits for its twin.
pub const WAIT: i64 = 10_000_000_000;
/// How long after the first response byte a line's timestamp may be.
pub const SLACK: i64 = 5_000_000_000;
/// Shortest time between two sweeps for expired entries outside [`Joiner::tick`].
const SWEEP_EVERY: i64 = 250_000_000;

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

/// Lines and requests waiting for their twin that share one (method, target, status), oldest
/// first.
#[derive(Debug, Default)]
struct Bucket {
    lines: VecDeque<LogLineRow>,
    requests: VecDeque<(Candidate, i64)>,
}

/// Waiting lines and requests, bucketed by a keyed hash of (method, target, status): at
/// 50k requests/s, 10 s of them wait at once, and a linear scan per line would be quadratic.
/// The hash is SipHash with a random key because targets come from traffic; a collision only
/// shares a bucket, since [`compatible`] still compares the fields.
#[derive(Debug, Default)]
pub struct Joiner {
    buckets: HashMap<u64, Bucket>,
    hasher: RandomState,
    last_sweep: Option<i64>,
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
        && ts >= c.start_ns - NS_PER_SEC - (c.start_ns.rem_euclid(NS_PER_SEC))
        && ts <= c.first_byte_ns + SLACK
}

impl Joiner {
    fn key(&self, method: &str, target: &str, status: u16) -> u64 {
        self.hasher.hash_one((method, target, status))
    }

    /// Offers a request; returns the line rows this decided.
    pub fn request(&mut self, c: Candidate, now_ns: i64) -> Vec<Row> {
        let mut out = Vec::new();
        let key = self.key(&c.method, &c.target, c.status);
        let bucket = self.buckets.entry(key).or_default();
        let found = bucket.lines.iter().position(|l| compatible(l, &c));
        match found.and_then(|i| bucket.lines.remove(i)) {
            Some(mut line) => {
                line.request_id = Some(c.id);
                out.push(Row::LogLine(Box::new(line)));
            }
            None => bucket.requests.push_back((c, now_ns)),
        }
        self.sweep(now_ns, false, &mut out);
        out
    }

    /// Offers a line; returns the rows this decided.
    pub fn line(&mut self, mut line: LogLineRow, now_ns: i64) -> Vec<Row> {
        let mut out = Vec::new();
        let (Some(method), Some(target), Some(status), None) =
            (&line.method, &line.target, line.status, line.reason)
        else {
            // Rejected, or a valid line with an invalid request: nothing to match.
            out.push(Row::LogLine(Box::new(line)));
            return out;
        };
        let key = self.key(method, target, status);
        let bucket = self.buckets.entry(key).or_default();
        let mut best: Option<(usize, u64)> = None;
        for (i, (c, _)) in bucket.requests.iter().enumerate() {
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
        match best.and_then(|(i, _)| bucket.requests.remove(i)) {
            Some((c, _)) => {
                line.request_id = Some(c.id);
                out.push(Row::LogLine(Box::new(line)));
            }
            None => bucket.lines.push_back(line),
        }
        self.sweep(now_ns, false, &mut out);
        out
    }

    /// Gives up on what has waited longer than [`WAIT`]: lines are written unmatched, requests
    /// dropped from the join. Unless `force`, at most every [`SWEEP_EVERY`].
    fn sweep(&mut self, now_ns: i64, force: bool, out: &mut Vec<Row>) {
        if !force && self.last_sweep.is_some_and(|t| now_ns - t < SWEEP_EVERY) {
            return;
        }
        self.last_sweep = Some(now_ns);
        self.buckets.retain(|_, b| {
            while b
                .lines
                .front()
                .is_some_and(|l| now_ns - l.arrived_ns > WAIT)
            {
                if let Some(line) = b.lines.pop_front() {
                    out.push(Row::LogLine(Box::new(line)));
                }
            }
            while b.requests.front().is_some_and(|(_, at)| now_ns - at > WAIT) {
                b.requests.pop_front();
            }
            !(b.lines.is_empty() && b.requests.is_empty())
        });
    }

    /// Periodic expiry, when nothing new arrives.
    pub fn tick(&mut self, now_ns: i64) -> Vec<Row> {
        let mut out = Vec::new();
        self.sweep(now_ns, true, &mut out);
        out
    }

    /// Requests offered at or after `since_ns` that still wait for their line.
    pub fn waiting_since(&self, since_ns: i64) -> usize {
        self.buckets
            .values()
            .map(|b| b.requests.iter().filter(|(_, at)| *at >= since_ns).count())
            .sum()
    }

    /// End of recording: every waiting line is written, unmatched.
    pub fn finish(&mut self) -> Vec<Row> {
        let mut lines: Vec<LogLineRow> = self.buckets.drain().flat_map(|(_, b)| b.lines).collect();
        lines.sort_by_key(|l| l.arrived_ns);
        lines
            .into_iter()
            .map(|l| Row::LogLine(Box::new(l)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::units::NS_PER_SEC as S;

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

    /// What the stop waits on: requests offered since an instant that have no line yet.
    #[test]
    fn waiting_since_counts_the_recent_requests_still_without_a_line() {
        let mut j = Joiner::default();
        j.request(cand(1, "/a", 200, 10 * S, 10 * S), 10 * S);
        j.request(cand(2, "/b", 200, 12 * S, 12 * S), 12 * S);
        j.request(cand(3, "/b", 200, 13 * S, 13 * S), 13 * S);
        assert_eq!(j.waiting_since(0), 3);
        assert_eq!(j.waiting_since(12 * S), 2);
        // The line takes the oldest of the two /b requests.
        j.line(line("/b", 200, 12 * S, 13 * S, None), 13 * S);
        assert_eq!(j.waiting_since(12 * S), 1);
        assert_eq!(j.waiting_since(0), 2);
        assert_eq!(j.waiting_since(14 * S), 0);
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

    #[test]
    fn many_targets_each_join_their_own_request() {
        let mut j = Joiner::default();
        for i in 0..1000 {
            let t = format!("/item/{}", i % 250);
            assert!(
                j.request(cand(i, &t, 200, 10 * S + i, 10 * S + i), 10 * S)
                    .is_empty()
            );
        }
        // Lines arrive newest target first; each (target, status) has four requests and four
        // lines, matched oldest first.
        let mut ids = Vec::new();
        for i in (0..1000).rev() {
            let t = format!("/item/{}", i % 250);
            let rows = j.line(line(&t, 200, 10 * S, 11 * S, None), 11 * S);
            let got = matched(&rows);
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].0.as_deref(), Some(t.as_str()));
            let id = got[0].1.unwrap();
            assert_eq!(id % 250, i % 250);
            ids.push(id);
        }
        ids.sort_unstable();
        assert_eq!(ids, (0..1000).collect::<Vec<_>>());
        assert!(j.finish().is_empty());
    }
}
