//! `--no-ebpf`: the 2008 method. Without kernel events, each sampling interval's growth of RSS
//! and VmSize is shared equally among the access-log lines that arrived in it, and every such
//! request is marked approximate. Pure logic.

use crate::model::{LogLineRow, RequestRow, Row};

/// Shares interval growth among log lines.
#[derive(Debug)]
pub struct IntervalAttributor {
    pid: u32,
    next_id: i64,
    pending: Vec<LogLineRow>,
    last: Option<(u64, u64)>,
    completed: u64,
}

impl IntervalAttributor {
    /// Requests are charged to `pid` (the first target) for lack of anything better.
    pub fn new(pid: u32) -> Self {
        Self {
            pid,
            next_id: 1,
            pending: Vec::new(),
            last: None,
            completed: 0,
        }
    }

    pub fn requests(&self) -> u64 {
        self.completed
    }

    /// A log line arrived. Rejected lines and invalid requests are written at once.
    pub fn line(&mut self, line: LogLineRow, out: &mut Vec<Row>) {
        if line.reason.is_some() || line.method.is_none() {
            out.push(Row::LogLine(Box::new(line)));
        } else {
            self.pending.push(line);
        }
    }

    /// A sample of the targets' total RSS and VmSize: the lines since the previous sample share
    /// the growth between the two.
    pub fn sample(&mut self, rss: u64, vm: u64, out: &mut Vec<Row>) {
        let (d_rss, d_vm) = match self.last.replace((rss, vm)) {
            Some((r, v)) => (rss as i64 - r as i64, vm as i64 - v as i64),
            None => (0, 0),
        };
        let n = self.pending.len() as i64;
        for (i, mut line) in self.pending.drain(..).enumerate() {
            // Integer shares that add up to exactly the whole delta.
            let i = i as i64;
            let share = |d: i64| (d * (i + 1)).div_euclid(n) - (d * i).div_euclid(n);
            let id = self.next_id;
            self.next_id += 1;
            let end = line.ts_ns.unwrap_or(line.arrived_ns).max(0);
            let start = end - line.duration_us.map_or(0, |d| d as i64 * 1000);
            out.push(Row::Request(RequestRow {
                id,
                pid: self.pid,
                tid: 0,
                conn: 0, // derived from the access log, no connection
                method: line.method.as_deref().map(Into::into),
                target: line.target.as_deref().map(Into::into),
                route: line.route.as_deref().map(Into::into),
                status: line.status,
                start_ns: start,
                first_byte_ns: None,
                end_ns: end,
                bytes_out: line.bytes.unwrap_or(0),
                vm_bytes: share(d_vm),
                rss_bytes: share(d_rss),
                exact: false,
                ..RequestRow::default()
            }));
            line.request_id = Some(id);
            out.push(Row::LogLine(Box::new(line)));
            self.completed += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::NS_PER_SEC;

    fn line(target: &str) -> LogLineRow {
        LogLineRow {
            source: "a.log".into(),
            arrived_ns: 5,
            ts_ns: Some(NS_PER_SEC),
            method: Some("GET".into()),
            target: Some(target.into()),
            route: Some(target.into()),
            status: Some(200),
            ..LogLineRow::default()
        }
    }

    fn charged(rows: &[Row]) -> Vec<(String, i64, bool)> {
        rows.iter()
            .filter_map(|r| match r {
                Row::Request(q) => Some((
                    q.target.as_deref().unwrap_or_default().to_owned(),
                    q.rss_bytes,
                    q.exact,
                )),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn growth_is_shared_by_the_lines_of_the_interval() {
        let mut a = IntervalAttributor::new(9);
        let mut out = Vec::new();
        a.sample(1000, 5000, &mut out);
        a.line(line("/leak"), &mut out);
        a.line(line("/"), &mut out);
        a.sample(1000 + 4097, 5000, &mut out);
        assert_eq!(
            charged(&out),
            vec![("/leak".into(), 2048, false), ("/".into(), 2049, false)]
        );
        assert_eq!(a.requests(), 2);
        // Every line row carries the request it became.
        let ids: Vec<Option<i64>> = out
            .iter()
            .filter_map(|r| match r {
                Row::LogLine(l) => Some(l.request_id),
                _ => None,
            })
            .collect();
        assert_eq!(ids, vec![Some(1), Some(2)]);
    }

    #[test]
    fn shrinking_is_shared_too() {
        let mut a = IntervalAttributor::new(9);
        let mut out = Vec::new();
        a.sample(10_000, 0, &mut out);
        a.line(line("/free"), &mut out);
        a.sample(6_000, 0, &mut out);
        assert_eq!(charged(&out), vec![("/free".into(), -4000, false)]);
    }
}
