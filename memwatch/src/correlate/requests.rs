//! Request tracking: the [`Correlator`]'s socket boundaries turned into requests, per
//! connection (pipelined heads, non-HTTP verdicts) and per thread (which request a thread
//! serves, event loops, responses written by another thread); a request's memory syscalls held
//! until its end is known, its faults, and its end; which requests the heap probes follow.

use std::sync::Arc;

use memwatch_common::net::NetOp;

use super::{
    ConnKey, Correlator, InFlight, ReqId, Retained,
    conn::{self, ConnTrack, Parsed},
    heap_window, http, join, route,
};
use crate::{
    capture::probe::{
        NetRecord,
        conns::{ConnId, FoldedResponse},
    },
    model::{MemRow, RequestRow, Row},
};

/// Memory rows held for one request before they are written early.
pub(super) const MAX_HELD_ROWS: usize = 100_000;

/// A connection's traffic that is not HTTP/1.x, as a row.
fn non_http_row(ev: &NetRecord<'_>, conn: u64, ts_ns: i64, kind: conn::NonHttp, bytes: u64) -> Row {
    Row::NonHttp {
        ts_ns,
        pid: ev.meta.header.tgid,
        conn,
        kind: kind.name(),
        bytes,
    }
}

/// A request in flight as a thread serves it: its id, and its method and route as parsed so
/// far, shared with its row (interned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedRequest {
    pub id: ReqId,
    pub method: Option<Arc<str>>,
    pub route: Option<Arc<str>>,
}

impl Correlator {
    /// From `ts_ns` on the heap probes are `on`, or off: requests that start while they are
    /// off are sampled out.
    pub fn heap_probes(&mut self, ts_ns: i64, on: bool) {
        if let Some(w) = self.heap.as_mut() {
            w.set(ts_ns, on);
        }
    }

    /// Requests in flight that the heap probes follow: they are kept on until these end.
    pub fn followed_in_flight(&self) -> usize {
        self.inflight
            .values()
            .filter(|r| !r.row.sampled_out)
            .count()
    }

    /// Whether the heap probes were ever off while recording.
    pub fn heap_sampled(&self) -> bool {
        self.heap
            .as_ref()
            .is_some_and(heap_window::HeapWindows::sampled)
    }

    /// The request thread `tid` is serving now, if it is still in flight.
    pub(super) fn serving(&self, tid: u32) -> Option<ReqId> {
        self.threads
            .get(&tid)
            .and_then(|t| t.current)
            .filter(|id| self.inflight.contains_key(id))
    }

    /// The request thread `tid` serves, with its method and route as parsed so far: where Go's
    /// sampled allocations are charged (`session/go_samples.rs`).
    pub fn serving_route(&self, tid: u32) -> Option<ServedRequest> {
        let id = self.serving(tid)?;
        let row = &self.inflight.get(&id)?.row;
        Some(ServedRequest {
            id,
            method: row.method.clone(),
            route: row.route.clone(),
        })
    }

    /// Requests whose response has started since the last call, for the access-log join.
    pub fn take_candidates(&mut self) -> Vec<join::Candidate> {
        std::mem::take(&mut self.candidates)
    }

    /// Requests completed so far.
    pub fn requests(&self) -> u64 {
        self.completed
    }

    /// A memory syscall: charged to the request its thread is serving, if any.
    pub fn mem(&mut self, mut row: MemRow, out: &mut Vec<Row>) {
        let current = self.threads.get(&row.tid).and_then(|t| t.current);
        match current.and_then(|id| self.inflight.get_mut(&id)) {
            Some(req) => {
                row.request_id = Some(req.row.id);
                req.mem.push(row);
                if req.mem.len() >= MAX_HELD_ROWS {
                    // Bounded memory: write early; the request keeps its charge.
                    for r in req.mem.drain(..) {
                        req.row.vm_bytes += r.vm_delta;
                        req.row.mem_calls += 1;
                        out.push(Row::Mem(r));
                    }
                }
            }
            None => out.push(Row::Mem(row)),
        }
    }

    /// Charges the faults a thread took since its last boundary, up to `now_faults`.
    fn charge_faults(&mut self, tid: u32, now_faults: u64) {
        let t = self.threads.entry(tid).or_default();
        let delta = now_faults.saturating_sub(t.faults_seen);
        t.faults_seen = now_faults;
        // Faults outside any request are not kept here: the report derives them as the
        // process total minus what requests were charged.
        if let Some(req) = t.current.and_then(|id| self.inflight.get_mut(&id)) {
            req.row.faults += delta;
        }
    }

    /// Makes `tid` work for request `id` from now on. Its growth has no call site until its next
    /// stack (the kernel side takes one at its next growth).
    fn set_current(&mut self, tid: u32, id: ReqId) {
        let t = self.threads.entry(tid).or_default();
        if t.current != Some(id) {
            t.stack = 0;
        }
        t.current = Some(id);
        if let Some(r) = self.inflight.get_mut(&id)
            && !r.serving.contains(&tid)
        {
            r.serving.push(tid);
        }
    }

    fn mark_approximate(&mut self, id: ReqId) {
        if let Some(r) = self.inflight.get_mut(&id) {
            r.row.exact = false;
        }
    }

    /// A socket boundary event. `offset` turns monotonic into wall-clock ns.
    pub fn net(&mut self, ev: &NetRecord<'_>, offset: i64, out: &mut Vec<Row>) {
        let m = &ev.meta;
        let tid = m.header.tid;
        let pid = m.header.tgid;
        let key = (pid, m.fd, m.generation);
        let wall = |mono: u64| mono as i64 + offset;
        let now = wall(m.header.ts_ns);

        // A response whose start the kernel side folded into this event: it came first.
        if m.response_ns != 0 {
            let status = u16::try_from(m.response_status).ok().filter(|&s| s != 0);
            self.response_starts(key, wall(m.response_ns), status, None, out);
        }

        // The previous response on this connection is complete: its last write is known.
        if matches!(ev.op, NetOp::ReadStart | NetOp::Close)
            && let Some(id) = self.conns.get_mut(&key).and_then(|c| c.responding.take())
        {
            let writer = m.last_write_tid;
            if writer != 0 && self.threads.get(&writer).and_then(|t| t.current) == Some(id) {
                self.charge_faults(writer, m.last_write_faults);
            }
            let end = if m.last_write_ns != 0 {
                wall(m.last_write_ns)
            } else {
                now
            };
            self.finish(id, end, Some(m.last_bytes_out), out);
        }
        self.charge_faults(tid, m.faults);

        match ev.op {
            NetOp::Accept => {
                self.conn_serial += 1;
                self.conns.insert(key, ConnTrack::new(self.conn_serial));
            }
            NetOp::ReadStart | NetOp::ReadMore => {
                // A connection accepted before attach is first seen at a read.
                let conn = self.conns.entry(key).or_insert_with(|| {
                    self.conn_serial += 1;
                    ConnTrack::new(self.conn_serial)
                });
                let serial = conn.serial;
                if conn.non_http.is_some() {
                    return;
                }
                if ev.op == NetOp::ReadStart
                    && let Some(kind) = conn.abandon_phase()
                {
                    out.push(non_http_row(ev, serial, now, kind, 0));
                }
                let parsed = conn.push(ev.data, m.bytes, ev.op == NetOp::ReadStart);
                match parsed {
                    Parsed::Requests(heads) => {
                        let pipelined = heads.len() > 1;
                        let mut first = None;
                        for head in heads {
                            let id = self.next_id;
                            self.next_id += 1;
                            let target = head.target.map(|t| {
                                if self.redact_query {
                                    route::redact_query(&t).into_owned()
                                } else {
                                    t
                                }
                            });
                            let route = target
                                .as_deref()
                                .map(|t| self.routes.route(&self.router, t));
                            // A target that is its route (no query, nothing normalised) shares
                            // the route's string.
                            let target = target.map(|t| match &route {
                                Some(r) if **r == *t => Arc::clone(r),
                                _ => Arc::from(t),
                            });
                            let row = RequestRow {
                                id,
                                pid,
                                tid,
                                conn: serial,
                                method: head.method.as_deref().map(|m| self.names.get(m)),
                                target,
                                route,
                                host: head.host.as_deref().map(|h| self.names.get(h)),
                                start_ns: now,
                                end_ns: now,
                                bytes_in: m.bytes,
                                exact: !pipelined,
                                sampled_out: self.heap.as_ref().is_some_and(|w| !w.on_at(now)),
                                ..RequestRow::default()
                            };
                            self.inflight.insert(
                                id,
                                InFlight {
                                    row,
                                    key,
                                    mem: Vec::new(),
                                    serving: smallvec::SmallVec::new(),
                                    vm_grown: 0,
                                    stacks: Vec::new(),
                                    vm_released: 0,
                                },
                            );
                            if let Some(c) = self.conns.get_mut(&key) {
                                c.awaiting.push_back(id);
                            }
                            first.get_or_insert(id);
                        }
                        if let Some(id) = first {
                            let previous = self.threads.entry(tid).or_default().current;
                            if let Some(prev) = previous
                                && self.inflight.contains_key(&prev)
                            {
                                // The thread already serves another request: an event loop.
                                self.mark_approximate(prev);
                                self.mark_approximate(id);
                            }
                            self.set_current(tid, id);
                        }
                    }
                    Parsed::More => {
                        if let Some(id) = conn.awaiting.back().copied()
                            && let Some(r) = self.inflight.get_mut(&id)
                        {
                            r.row.bytes_in += m.bytes;
                        }
                    }
                    Parsed::NonHttp(kind) => {
                        if kind.is_permanent() {
                            conn.non_http = Some(kind);
                        }
                        out.push(non_http_row(ev, serial, now, kind, m.bytes));
                    }
                }
            }
            NetOp::WriteStart => {
                let status = http::response::parse_status(ev.data).map(|s| s.code);
                self.response_starts(key, now, status, Some(tid), out);
            }
            NetOp::Close => self.close_conn(key, now, out),
        }
    }

    /// A response starts on connection `key` at `ts_ns`: the oldest request awaiting one gets
    /// it. `writer` is the thread that writes it, which from now on serves that request; `None`
    /// for a start the kernel side folded into a later event (`ConnState::response_ns` in the
    /// common crate), whose thread already served that request when it wrote.
    pub(super) fn response_starts(
        &mut self,
        key: ConnKey,
        ts_ns: i64,
        status: Option<u16>,
        writer: Option<u32>,
        out: &mut Vec<Row>,
    ) {
        let Some(conn) = self.conns.get_mut(&key) else {
            return;
        };
        if conn.non_http.is_some() {
            return;
        }
        let Some(id) = conn.awaiting.pop_front() else {
            return;
        };
        let previous = conn.responding.replace(id);
        if let Some(prev) = previous {
            // Pipelined responses written back to back: the previous one ended here.
            self.finish(prev, ts_ns, None, out);
        }
        if let Some(r) = self.inflight.get_mut(&id) {
            r.row.first_byte_ns = Some(ts_ns);
            r.row.status = status;
            if self.joining
                && let (Some(method), Some(target), Some(status)) =
                    (&r.row.method, &r.row.target, r.row.status)
            {
                self.candidates.push(join::Candidate {
                    id,
                    method: method.to_string(),
                    target: target.to_string(),
                    status,
                    start_ns: r.row.start_ns,
                    first_byte_ns: ts_ns,
                });
            }
            if let Some(tid) = writer
                && r.row.tid != tid
            {
                r.row.exact = false;
            }
        }
        if let Some(tid) = writer {
            self.set_current(tid, id);
        }
    }

    /// The connections, of `pid` or of every process, with a request awaiting its response:
    /// where the kernel side may still hold a folded start when recording stops or the process
    /// goes ([`Self::folded_responses`]).
    pub fn awaiting_conns(&self, pid: Option<u32>) -> Vec<ConnId> {
        self.conns
            .iter()
            .filter(|&(&(p, _, _), c)| pid.is_none_or(|pid| pid == p) && !c.awaiting.is_empty())
            .map(|(&(pid, fd, generation), _)| ConnId {
                pid,
                fd,
                generation,
            })
            .collect()
    }

    /// Responses whose start the kernel side folded and still holds when recording stops or
    /// a process goes. Applied before the requests still open are ended, so that they keep
    /// their status and first byte. `offset` turns monotonic into wall-clock ns.
    pub fn folded_responses(&mut self, folded: &[FoldedResponse], offset: i64, out: &mut Vec<Row>) {
        for f in folded {
            let key = (f.conn.pid, f.conn.fd, f.conn.generation);
            let status = Some(f.status).filter(|&s| s != 0);
            self.response_starts(key, f.first_write_ns as i64 + offset, status, None, out);
        }
    }

    /// Completes a request: memory after `end` is not its own.
    fn finish(&mut self, id: ReqId, end: i64, bytes_out: Option<u64>, out: &mut Vec<Row>) {
        let Some(mut req) = self.inflight.remove(&id) else {
            return;
        };
        for tid in &req.serving {
            if let Some(t) = self.threads.get_mut(tid)
                && t.current == Some(id)
            {
                t.current = None;
                t.stack = 0;
            }
        }
        if let Some(conn) = self.conns.get_mut(&req.key) {
            conn.awaiting.retain(|&a| a != id);
            if conn.responding == Some(id) {
                conn.responding = None;
            }
        }
        req.row.end_ns = end.max(req.row.start_ns);
        if let Some(b) = bytes_out {
            req.row.bytes_out = b;
        }
        for mut m in std::mem::take(&mut req.mem) {
            if m.ts_ns <= req.row.end_ns {
                req.row.vm_bytes += m.vm_delta;
                req.row.mem_calls += 1;
            } else {
                m.request_id = None;
            }
            out.push(Row::Mem(m));
        }
        req.row.rss_bytes = req.row.faults as i64 * self.page_size;
        self.vm_finish(id, &req, out);
        self.stack_finish(&req, out);
        let held = req.row.grown.saturating_sub(req.row.released);
        if held > 0 {
            self.retained.insert(
                id,
                Retained {
                    end_ns: req.row.end_ns,
                    method: req.row.method.clone(),
                    route: req.row.route.clone(),
                    held,
                },
            );
        }
        self.completed += 1;
        out.push(Row::Request(req.row));
    }

    /// A traced thread exited.
    pub fn thread_exit(&mut self, tid: u32) {
        self.threads.remove(&tid);
    }

    /// Connection `key` closed at `ts_ns` (by a close, or by its process's exit): a request head
    /// still incomplete is counted as such, and its requests still open end now.
    fn close_conn(&mut self, key: ConnKey, ts_ns: i64, out: &mut Vec<Row>) {
        let Some(mut conn) = self.conns.remove(&key) else {
            return;
        };
        if conn.non_http.is_none()
            && let Some(kind) = conn.abandon_phase()
        {
            out.push(Row::NonHttp {
                ts_ns,
                pid: key.0,
                conn: conn.serial,
                kind: kind.name(),
                bytes: 0,
            });
        }
        for id in conn.awaiting.into_iter().chain(conn.responding) {
            self.finish(id, ts_ns, None, out);
        }
    }

    /// Process `pid` is gone. The exit closed its connections without a close syscall, so
    /// their state goes here: a request head still incomplete is counted as such, and requests
    /// still open end now. (A later process given the same PID starts with none of it.)
    pub fn process_gone(&mut self, ts_ns: i64, pid: u32, out: &mut Vec<Row>) {
        let keys: Vec<ConnKey> = self
            .conns
            .keys()
            .filter(|&&(p, _, _)| p == pid)
            .copied()
            .collect();
        for key in keys {
            self.close_conn(key, ts_ns, out);
        }
        let mut open: Vec<ReqId> = self
            .inflight
            .iter()
            .filter(|(_, r)| r.row.pid == pid)
            .map(|(&id, _)| id)
            .collect();
        open.sort_unstable();
        for id in open {
            self.finish(id, ts_ns, None, out);
        }
    }

    /// End of recording: requests still open are written as they are.
    pub fn finish_all(&mut self, out: &mut Vec<Row>) {
        let mut ids: Vec<(ReqId, i64)> = self
            .inflight
            .iter()
            .map(|(&id, r)| (id, r.row.first_byte_ns.unwrap_or(r.row.start_ns)))
            .collect();
        ids.sort_unstable();
        for (id, end) in ids {
            self.finish(id, end, None, out);
        }
    }
}
