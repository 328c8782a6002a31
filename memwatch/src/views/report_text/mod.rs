//! The report as text for people: the answer first (the routes that keep memory), then the
//! evidence it rests on, then the processes and memwatch's own cost. No line is wider than
//! [`WIDTH`] columns, so the summary reads on an 80–100 column terminal; route names are cut to
//! their column, and lists wrap between their items.

use std::{collections::BTreeMap, fmt::Write as _};

use super::{
    call_sites::{CallSiteReport, route_label},
    report::{Endpoint, Memory, OwnCpu, Report, RetainedSummary},
};
use crate::units::{NS_PER_SEC, bytes};

mod notes;

/// The widest line the summary writes, in characters.
pub const WIDTH: usize = 100;

/// Routes listed in each table; the JSON lists them all.
const ROUTES_SHOWN: usize = 15;

/// Processes listed.
const PROCESSES_SHOWN: usize = 8;

/// The evidence section's labels are this wide, and its continuation lines indented as much.
const LABEL: usize = 14;

/// The route column's width in the tables.
const ROUTE: usize = 28;

impl Report {
    /// The summary, and the call sites when the report has them.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        self.headline(&mut s);
        self.routes(&mut s);
        self.evidence(&mut s);
        self.processes_text(&mut s);
        if let Some(stacks) = &self.stacks {
            s.push('\n');
            s.push_str(&stacks.to_text());
        }
        s
    }

    /// What was recorded, and anything that makes the figures below incomplete.
    fn headline(&self, s: &mut String) {
        let served = self
            .processes
            .first()
            .filter(|p| p.requests > 0)
            .map_or(String::new(), |p| {
                format!(" of {} (pid {})", p.process.comm, p.process.pid)
            });
        let _ = writeln!(
            s,
            "memwatch: {:.1} s{served}, {} request{}, {} process{}, {} events",
            self.duration_s,
            self.requests,
            plural(self.requests),
            self.processes.len(),
            if self.processes.len() == 1 { "" } else { "es" },
            self.events
        );
        let incomplete = match (self.complete, self.stop_reason.as_deref()) {
            (true, _) => None,
            (false, Some("disk_full")) => Some(format!(
                "INCOMPLETE: the disk filled up; {} rows were not written",
                self.unwritten_rows
            )),
            (false, Some("write_failed")) => Some(format!(
                "INCOMPLETE: writing failed; {} rows were not written",
                self.unwritten_rows
            )),
            (false, _) => Some("INCOMPLETE: memwatch was stopped abruptly".to_owned()),
        };
        if let Some(line) = incomplete {
            words(s, "", &line);
        }
        let lost = &self.lost;
        if [
            lost.dropped_events,
            lost.unpaired_exits,
            lost.map_full,
            lost.undecodable,
        ]
        .iter()
        .any(|&n| n > 0)
        {
            words(
                s,
                "",
                &format!(
                    "WARNING: lost {} events (ring buffer full), {} unpaired syscall exits, {} \
                     map-full, {} undecodable: counts are lower bounds",
                    lost.dropped_events, lost.unpaired_exits, lost.map_full, lost.undecodable
                ),
            );
        }
        if let Some(own) = &self.memwatch
            && own.writer_shed_rows > 0
        {
            words(
                s,
                "",
                &format!(
                    "WARNING: the recording writer fell behind and shed {} rows",
                    own.writer_shed_rows
                ),
            );
        }
        if let Some(stopped) = self.command_stopped_ns {
            let at = stopped.saturating_sub(self.started_ns).max(0) as f64 / NS_PER_SEC as f64;
            words(
                s,
                "",
                &format!(
                    "The routes' figures are taken at {at:.1} s, when memwatch stopped the \
                     command (SIGTERM): what its exit freed after that is no route's release."
                ),
            );
        }
    }

    /// The answer: routes by what each further request keeps, then their statuses and times.
    fn routes(&self, s: &mut String) {
        if self.endpoints.is_empty() {
            let _ = writeln!(s, "\nNo HTTP request was completed.");
            return;
        }
        let shown = &self.endpoints[..self.endpoints.len().min(ROUTES_SHOWN)];
        match &self.retained {
            Some(r) => {
                let _ = writeln!(
                    s,
                    "\nRoutes by memory kept per request (kept/req: what each further request \
                     keeps)"
                );
                let _ = writeln!(
                    s,
                    "{:<7} {:<ROUTE$} {:>8} {:>11} {:>11} {:>10}  retention",
                    "method", "route", "requests", "kept/req", "retained", "grown"
                );
                for e in shown {
                    kept_row(s, e);
                }
                self.more_routes(s);
                notes::answer_notes(s, r, &self.endpoints);
            }
            None => {
                let _ = writeln!(
                    s,
                    "\nRoutes by resident memory faulted in (this recording has no retained \
                     figures)"
                );
                let _ = writeln!(
                    s,
                    "{:<7} {:<ROUTE$} {:>8} {:>11} {:>11}",
                    "method", "route", "requests", "resident", "mapped"
                );
                for e in shown {
                    let _ = writeln!(
                        s,
                        "{} {:>11} {:>11}{}",
                        route_cells(e),
                        bytes(e.rss_bytes),
                        bytes(e.vm_bytes),
                        approximate(e)
                    );
                }
                self.more_routes(s);
            }
        }
        let _ = writeln!(s, "\nRequests by route");
        let _ = writeln!(
            s,
            "{:<7} {:<ROUTE$} {:>8} {:>9} {:>9}  statuses",
            "method", "route", "requests", "p50 ms", "p95 ms"
        );
        for e in shown {
            let line = format!(
                "{} {:>9.2} {:>9.2}  ",
                route_cells(e),
                e.duration_ms_p50,
                e.duration_ms_p95,
            );
            let room = WIDTH.saturating_sub(line.chars().count());
            let _ = writeln!(s, "{line}{}", truncate(&counts(&e.statuses), room));
        }
    }

    fn more_routes(&self, s: &mut String) {
        if self.endpoints.len() > ROUTES_SHOWN {
            let _ = writeln!(
                s,
                "({} more routes; `memwatch report --format json` lists them all)",
                self.endpoints.len() - ROUTES_SHOWN
            );
        }
    }

    /// How the figures add up, and what memwatch could not see.
    fn evidence(&self, s: &mut String) {
        let m = &self.memory;
        let _ = writeln!(s, "\nHow the figures add up (whole recording)");
        let non_http = if self.non_http.is_empty() {
            "none".to_owned()
        } else {
            counts(&self.non_http)
        };
        let approximate = if self.approximate_requests > 0 {
            format!(
                "{} approximate (served on a thread with other requests in flight)",
                self.approximate_requests
            )
        } else {
            "0 approximate".to_owned()
        };
        field(
            s,
            "requests",
            &[
                format!("{} completed", self.requests),
                approximate,
                format!("not HTTP: {non_http}"),
            ],
        );
        if let Some(r) = &self.retained {
            retained_fields(s, r);
        }
        field(
            s,
            "resident",
            &[
                format!("start {}", bytes(m.rss_start_bytes as i64)),
                format!("end {}", bytes(m.rss_end_bytes as i64)),
                format!(
                    "peak {} ({} samples)",
                    bytes(m.rss_peak_bytes as i64),
                    m.rss_samples
                ),
            ],
        );
        field(
            s,
            "mapped",
            &[
                format!("start {}", bytes(m.vm_start_bytes as i64)),
                format!("end {}", bytes(m.vm_end_bytes as i64)),
                format!("peak {}", bytes(m.vm_peak_bytes as i64)),
                format!("net {}", signed_bytes(m.vm_growth_bytes)),
            ],
        );
        field(s, "syscalls", &syscalls(m));
        field(
            s,
            "faults",
            &[
                format!("{} user page faults", m.page_faults),
                format!("{} failed calls", m.failed_calls),
            ],
        );
        if let Some(a) = &self.access_log {
            let mut items = vec![
                format!("{} ({})", a.format.join(", "), a.mode),
                format!("{} lines", a.lines),
                format!("{} parsed", a.parsed),
                format!("{} rejected", a.lines.saturating_sub(a.parsed)),
                format!("{} invalid requests", a.invalid_requests),
                format!("{} matched", a.matched),
                format!("{} unmatched lines", a.unmatched_lines),
                format!("{} unmatched requests", a.unmatched_requests),
            ];
            if !a.rejected.is_empty() {
                items.push(format!("rejected for: {}", counts(&a.rejected)));
            }
            field(s, "access log", &items);
        }
    }

    /// The traced processes, the servers first; then what recording cost memwatch.
    fn processes_text(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "\nProcesses: {}{}",
            self.processes.len(),
            if self.processes.len() > 1 {
                ", those that served requests first"
            } else {
                ""
            }
        );
        for p in self.processes.iter().take(PROCESSES_SHOWN) {
            let state = if p.process.exited_ns.is_some() {
                format!("{}, exited", p.process.origin)
            } else {
                p.process.origin.to_string()
            };
            let _ = writeln!(
                s,
                "  pid {:<8} {:<16} {:<24} {:>8} request{}",
                p.process.pid,
                truncate(&p.process.comm, 16),
                truncate(&state, 24),
                p.requests,
                plural(p.requests)
            );
        }
        if self.processes.len() > PROCESSES_SHOWN {
            let _ = writeln!(
                s,
                "  ... and {} more",
                self.processes.len() - PROCESSES_SHOWN
            );
        }
        if let Some(own) = &self.memwatch {
            if own.pids_reused > 0 {
                words(
                    s,
                    "",
                    &format!(
                        "note: {} PID(s) went to a new process during the recording; their \
                         per-process figures cover every process that held them",
                        own.pids_reused
                    ),
                );
            }
            let _ = writeln!(s, "\nmemwatch itself");
            field(s, "peak RSS", &[bytes(own.peak_rss_bytes as i64)]);
            field(
                s,
                "followed",
                &[
                    format!("at most {} connections", own.peak_conns),
                    format!("{} threads", own.peak_threads),
                    format!("{} requests in flight", own.peak_requests),
                    format!("{} requests holding memory", own.peak_retaining),
                ],
            );
            if let Some(cpu) = &own.cpu {
                own_cpu(s, cpu, self.duration_s);
            }
            if !own.bpf_programs.is_empty() {
                bpf_programs(s, &own.bpf_programs, self.duration_s);
            }
        }
    }
}

/// memwatch's CPU by stage, as a share of one core over the recording, and the ring buffer's
/// traffic.
fn own_cpu(s: &mut String, cpu: &OwnCpu, duration_s: f64) {
    let share = |us: u64| {
        if duration_s > 0.0 {
            format!("{:.1}%", us as f64 / 1e4 / duration_s)
        } else {
            "-".to_owned()
        }
    };
    field(
        s,
        "CPU",
        &[
            format!("{} of a core in all", share(cpu.total_us)),
            format!("decode {}", share(cpu.decode_us)),
            format!("correlate {}", share(cpu.correlate_us)),
            format!("hand to writer {}", share(cpu.flush_us)),
            format!("write {}", share(cpu.write_us)),
        ],
    );
    field(
        s,
        "ring buffer",
        &[
            format!("{} read", bytes(cpu.ring_bytes as i64)),
            format!(
                "{} drains, {} woken by the kernel side",
                cpu.ring_drains, cpu.ring_wakeups
            ),
        ],
    );
}

/// Each BPF program's runs and mean run time (`--bpf-stats`), the costliest five.
fn bpf_programs(s: &mut String, programs: &[crate::model::ProgramStats], duration_s: f64) {
    let items: Vec<String> = programs
        .iter()
        .filter(|p| p.runs > 0)
        .take(5)
        .map(|p| {
            format!(
                "{} {}/s at {} ns",
                truncate(&p.name, 24),
                (p.runs as f64 / duration_s.max(1e-3)).round() as u64,
                p.run_ns / p.runs.max(1)
            )
        })
        .collect();
    if !items.is_empty() {
        field(s, "BPF programs", &items);
    }
}

/// One route of the kept table, and its second estimate and sampling under it.
fn kept_row(s: &mut String, e: &Endpoint) {
    let _ = writeln!(
        s,
        "{} {:>11} {:>11} {:>10}  {}{}",
        route_cells(e),
        signed_bytes(e.kept_per_request_bytes),
        signed_bytes(e.retained_bytes),
        bytes(e.grown_bytes),
        e.retention,
        approximate(e)
    );
    if let Some(g) = &e.regression {
        let _ = writeln!(
            s,
            "        by regression: {} per request{}",
            signed_bytes(g.kept_per_request_bytes),
            match (g.kept_per_request_low_bytes, g.kept_per_request_high_bytes) {
                (Some(lo), Some(hi)) => format!(
                    " (95% interval {} to {})",
                    signed_bytes(lo),
                    signed_bytes(hi)
                ),
                _ => " (not separable from another route)".to_owned(),
            }
        );
    }
    if let Some(h) = &e.sampled_heap {
        let _ = writeln!(
            s,
            "        by Go's sampled heap: {} per request (95% interval {} to {}; {} of {} \
             samples kept over {} requests judged)",
            signed_bytes(h.kept_per_request_bytes),
            signed_bytes(h.kept_per_request_low_bytes),
            signed_bytes(h.kept_per_request_high_bytes),
            h.samples_kept,
            h.samples,
            h.requests
        );
    }
    if let Some(sm) = &e.sampled {
        let _ = writeln!(
            s,
            "        sampled: {} of {} requests followed; kept/req 95% interval {} to {}",
            sm.followed_requests,
            e.requests,
            sm.kept_per_request_low_bytes
                .map_or("?".into(), signed_bytes),
            sm.kept_per_request_high_bytes
                .map_or("?".into(), signed_bytes),
        );
    }
}

/// Retained memory and its reconciliation with the resident set.
fn retained_fields(s: &mut String, r: &RetainedSummary) {
    field(
        s,
        "retained",
        &[
            format!("{} by requests", signed_bytes(r.retained_bytes)),
            format!("grown {}", bytes(r.grown_bytes)),
            format!("released {}", bytes(r.released_bytes)),
        ],
    );
    field(
        s,
        "outside",
        &[
            format!("grown {}", bytes(r.outside_grown_bytes)),
            format!(
                "released {} while no request was served",
                bytes(r.outside_released_bytes)
            ),
        ],
    );
    field(
        s,
        "reconciled",
        &[
            format!("RSS changed {}", signed_bytes(r.rss_change_bytes)),
            format!("{} accounted for", signed_bytes(r.attributed_change_bytes)),
            format!("{} not", signed_bytes(r.unexplained_bytes)),
        ],
    );
    let mut unknown = vec![
        format!("untracked {}", bytes(r.untracked_bytes)),
        format!(
            "releases of unknown origin {}",
            bytes(r.unmatched_release_bytes)
        ),
    ];
    if let Some(b) = r.unseen_release_bytes {
        unknown.push(format!(
            "address space released never seen resident {}",
            bytes(b)
        ));
    }
    field(s, "not known", &unknown);
    let h = &r.heap;
    if h.followed {
        let pct = |v: Option<f64>| v.map_or("?".to_owned(), |v| format!("{:.1}%", v * 100.0));
        field(
            s,
            "heap",
            &[
                format!("followed: {} blocks changed hands", h.blocks),
                if h.runtimes_not_followed > 0 {
                    format!(
                        "{} processes not followed ({} collected runtimes)",
                        h.processes_not_followed + h.runtimes_not_followed,
                        h.runtimes_not_followed
                    )
                } else {
                    format!("{} processes not followed", h.processes_not_followed)
                },
                format!(
                    "probes cost {} of a core (budget {})",
                    pct(h.cost_share),
                    pct(h.budget_share)
                ),
                format!("on {} of the time", pct(h.on_fraction)),
                format!(
                    "{} collections seen, {} recorded",
                    h.collections, h.collections_recorded
                ),
            ],
        );
    } else {
        field(s, "heap", &["not followed".to_owned()]);
    }
}

/// Calls and what they did: address space named, and for madvise the resident pages it gave
/// back (the lengths it names are address space, often far more than was resident).
fn syscalls(m: &Memory) -> Vec<String> {
    let madvise = match m.madvise_released_bytes {
        Some(b) => format!(
            "madvise {} (gave back {} resident)",
            m.madvise_calls,
            bytes(b as i64)
        ),
        None => format!(
            "madvise {} (over {} of address space)",
            m.madvise_calls,
            bytes(m.madvise_bytes as i64)
        ),
    };
    vec![
        format!("mmap {} ({})", m.mmap_calls, bytes(m.mmap_bytes as i64)),
        format!(
            "munmap {} ({})",
            m.munmap_calls,
            bytes(m.munmap_bytes as i64)
        ),
        format!(
            "mremap {} ({})",
            m.mremap_calls,
            signed_bytes(m.mremap_growth_bytes)
        ),
        format!("brk {} ({})", m.brk_calls, signed_bytes(m.brk_growth_bytes)),
        format!(
            "mprotect {} ({} made writable)",
            m.mprotect_calls,
            bytes(m.mprotect_rw_bytes as i64)
        ),
        madvise,
    ]
}

/// ` ~` after a route some of whose requests were charged approximately.
fn approximate(e: &Endpoint) -> &'static str {
    if e.approximate > 0 { " ~" } else { "" }
}

/// The first cells of every routes table: method, route (cut to its column) and requests.
fn route_cells(e: &Endpoint) -> String {
    format!(
        "{:<7} {:<ROUTE$} {:>8}",
        truncate(&e.method, 7),
        truncate(&e.route, ROUTE),
        e.requests
    )
}

/// `key: n, key: n` (`200: 30, 404: 1`), in the map's order.
fn counts(map: &BTreeMap<String, u64>) -> String {
    map.iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An evidence line: `  label         item, item, item`, wrapped between items.
fn field(s: &mut String, label: &str, items: &[String]) {
    // A label as wide as the column still gets a space before its items.
    let head = format!(
        "  {label:<w$}",
        w = (LABEL - 2).max(label.chars().count() + 1)
    );
    wrap(s, &head, items, ", ");
}

/// Prose, wrapped between words, continuation lines indented like `head`.
fn words(s: &mut String, head: &str, text: &str) {
    let items: Vec<String> = text.split(' ').map(str::to_owned).collect();
    wrap(s, head, &items, " ");
}

/// Writes `head` and `items` joined by `sep`, breaking before an item that would pass
/// [`WIDTH`]; continuation lines are indented by `head`'s width (at least two columns).
fn wrap(s: &mut String, head: &str, items: &[String], sep: &str) {
    let indent = head.chars().count().max(2);
    let mut line = head.to_owned();
    let mut empty = true;
    for item in items {
        let add = if empty {
            item.chars().count()
        } else {
            sep.chars().count() + item.chars().count()
        };
        if !empty && line.chars().count() + add > WIDTH {
            // The separator stays at the end of the line it follows: `a, b,` / `c`.
            line.push_str(sep.trim_end());
            let _ = writeln!(s, "{}", line.trim_end());
            line = " ".repeat(indent);
            empty = true;
        }
        if !empty {
            line.push_str(sep);
        }
        line.push_str(item);
        empty = false;
    }
    let _ = writeln!(s, "{}", line.trim_end());
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

impl CallSiteReport {
    /// Each route's call sites, a line each: retained, grown, then the leaf frame and its
    /// nearest callers.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        if let Some(note) = self.note {
            let _ = writeln!(s, "{note}");
            return s;
        }
        if self.routes.is_empty() {
            let _ = writeln!(s, "call sites: none made memory resident");
            return s;
        }
        let _ = writeln!(
            s,
            "call sites: the top {} per route by retained memory (leaf frame first, then its \
             callers)",
            self.top
        );
        let _ = writeln!(s, "  {:>11} {:>11}  call site", "retained", "grown");
        for r in &self.routes {
            if r.route.is_empty() {
                let _ = writeln!(s, "{}", route_label(&r.route));
            } else {
                let _ = writeln!(s, "{} {}", r.method, r.route);
            }
            for site in &r.sites {
                let more = if site.depth > site.frames.len() {
                    " ← …"
                } else {
                    ""
                };
                let _ = writeln!(
                    s,
                    "  {:>11} {:>11}  {}{more}",
                    signed_bytes(site.retained_bytes),
                    bytes(site.grown_bytes),
                    site.frames.join(" ← ")
                );
            }
            if r.more_sites > 0 {
                let _ = writeln!(
                    s,
                    "  {:>11} {:>11}  ({} more call site{})",
                    signed_bytes(r.more_retained_bytes),
                    bytes(r.more_grown_bytes),
                    r.more_sites,
                    if r.more_sites == 1 { "" } else { "s" }
                );
            }
        }
        s
    }
}

/// `s` cut to `n` characters, its last one an ellipsis when cut.
pub fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else if n == 0 {
        String::new()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

/// A change in bytes, always with its sign: `+2.0 MiB`, `-4.0 KiB`, `0 B`.
pub fn signed_bytes(b: i64) -> String {
    if b > 0 {
        format!("+{}", bytes(b))
    } else {
        bytes(b)
    }
}

#[cfg(test)]
mod tests;
