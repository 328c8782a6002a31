//! Rendering for people: the report as one screen of text, and a profile diff as text or as a
//! markdown table for pull-request comments. The models they render ([`Report`], [`Diff`]) are
//! built elsewhere in [`super`] and know nothing of their presentation.

use std::fmt::Write as _;

use super::{
    call_sites::{CallSiteReport, route_label},
    profile::{Diff, Metric, RouteChange},
    report::Report,
};
use crate::units::bytes;

impl Report {
    /// One screen of text, and the call sites when the report has them.
    pub fn to_text(&self) -> String {
        let mut s = self.summary_text();
        if let Some(stacks) = &self.stacks {
            s.push('\n');
            s.push_str(&stacks.to_text());
        }
        s
    }

    fn summary_text(&self) -> String {
        let mut s = String::new();
        let m = &self.memory;
        let _ = writeln!(
            s,
            "memwatch recording: {:.1} s{}, {} process(es), {} events",
            self.duration_s,
            match (self.complete, self.stop_reason.as_deref()) {
                (true, _) => String::new(),
                (false, Some("disk_full")) => format!(
                    " (INCOMPLETE: the disk filled up; {} rows were not written)",
                    self.unwritten_rows
                ),
                (false, Some("write_failed")) => format!(
                    " (INCOMPLETE: writing failed; {} rows were not written)",
                    self.unwritten_rows
                ),
                (false, _) => " (INCOMPLETE: memwatch was stopped abruptly)".to_owned(),
            },
            self.processes.len(),
            self.events
        );
        for p in self.processes.iter().take(8) {
            let exited = if p.exited_ns.is_some() {
                " (exited)"
            } else {
                ""
            };
            let _ = writeln!(s, "  pid {:<7} {:<16} {}{exited}", p.pid, p.comm, p.origin);
        }
        if self.processes.len() > 8 {
            let _ = writeln!(s, "  ... and {} more", self.processes.len() - 8);
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
            let _ = writeln!(
                s,
                "WARNING: lost {} events (ring buffer full), {} unpaired syscall exits, {} map-full, \
                 {} undecodable: counts are lower bounds",
                lost.dropped_events, lost.unpaired_exits, lost.map_full, lost.undecodable
            );
        }
        if let Some(own) = &self.memwatch {
            if own.writer_shed_rows > 0 {
                let _ = writeln!(
                    s,
                    "WARNING: the recording writer fell behind and shed {} rows",
                    own.writer_shed_rows
                );
            }
            if own.pids_reused > 0 {
                let _ = writeln!(
                    s,
                    "note: {} PID(s) went to a new process during the recording; their \
                     per-process figures cover every process that held them",
                    own.pids_reused
                );
            }
            let _ = writeln!(
                s,
                "memwatch itself: peak RSS {}; at most {} connections, {} threads, {} requests in \
                 flight, {} requests holding memory",
                bytes(own.peak_rss_bytes as i64),
                own.peak_conns,
                own.peak_threads,
                own.peak_requests,
                own.peak_retaining
            );
        }
        let _ = writeln!(
            s,
            "RSS     start {}  end {}  peak {}  ({} samples)",
            bytes(m.rss_start_bytes as i64),
            bytes(m.rss_end_bytes as i64),
            bytes(m.rss_peak_bytes as i64),
            m.rss_samples
        );
        let _ = writeln!(
            s,
            "VmSize  start {}  end {}  peak {}",
            bytes(m.vm_start_bytes as i64),
            bytes(m.vm_end_bytes as i64),
            bytes(m.vm_peak_bytes as i64)
        );
        let _ = writeln!(
            s,
            "mmap {} calls {} | munmap {} calls {} | mremap {} calls {} | brk {} calls {} | \
             mprotect {} calls ({} made writable) | madvise {} calls {}",
            m.mmap_calls,
            bytes(m.mmap_bytes as i64),
            m.munmap_calls,
            bytes(m.munmap_bytes as i64),
            m.mremap_calls,
            signed_bytes(m.mremap_growth_bytes),
            m.brk_calls,
            signed_bytes(m.brk_growth_bytes),
            m.mprotect_calls,
            bytes(m.mprotect_rw_bytes as i64),
            m.madvise_calls,
            bytes(m.madvise_bytes as i64)
        );
        let _ = writeln!(
            s,
            "net mapped {}, {} page faults, {} failed calls",
            signed_bytes(m.vm_growth_bytes),
            m.page_faults,
            m.failed_calls
        );
        if let Some(a) = &self.access_log {
            let _ = writeln!(
                s,
                "access log ({}, {}): {} lines, {} parsed, {} rejected {:?}, {} invalid requests; \
                 {} matched, {} unmatched lines, {} unmatched requests",
                a.format.join(", "),
                a.mode,
                a.lines,
                a.parsed,
                a.lines.saturating_sub(a.parsed),
                a.rejected,
                a.invalid_requests,
                a.matched,
                a.unmatched_lines,
                a.unmatched_requests
            );
        }
        if self.requests > 0 || !self.non_http.is_empty() {
            let _ = writeln!(
                s,
                "\n{} requests ({} approximate), non-HTTP: {:?}",
                self.requests, self.approximate_requests, self.non_http
            );
            if let Some(r) = &self.retained {
                let _ = writeln!(
                    s,
                    "retained {} (grown {}, released {}) | outside requests: grown {}, released \
                     {} | RSS changed {}, {} accounted for, {} not | untracked {}, releases of \
                     unknown origin {}{}",
                    signed_bytes(r.retained_bytes),
                    bytes(r.grown_bytes),
                    bytes(r.released_bytes),
                    bytes(r.outside_grown_bytes),
                    bytes(r.outside_released_bytes),
                    signed_bytes(r.rss_change_bytes),
                    signed_bytes(r.attributed_change_bytes),
                    signed_bytes(r.unexplained_bytes),
                    bytes(r.untracked_bytes),
                    bytes(r.unmatched_release_bytes),
                    r.unseen_release_bytes.map_or(String::new(), |b| format!(
                        " (and {} of address space never seen resident)",
                        bytes(b)
                    ))
                );
                if r.heap.followed {
                    let h = &r.heap;
                    let pct =
                        |v: Option<f64>| v.map_or("?".to_owned(), |v| format!("{:.1}%", v * 100.0));
                    let _ = writeln!(
                        s,
                        "heap followed: {} blocks changed hands, {} processes not followed; probes \
                         cost {} of a core (budget {}), on {} of the time",
                        h.blocks,
                        h.processes_not_followed,
                        pct(h.cost_share),
                        pct(h.budget_share),
                        pct(h.on_fraction)
                    );
                    if let Some(sm) = &h.sampling {
                        let _ = writeln!(
                            s,
                            "heap SAMPLED: {} of {} requests followed; kept/req rests on those \
                             (95% interval per route below); {} blocks found freed while off",
                            sm.requests_followed,
                            sm.requests_followed + sm.requests_sampled_out,
                            sm.frees_found + sm.frees_overlapped
                        );
                    }
                }
                if let Some(note) = r.heap.note {
                    let _ = writeln!(s, "note: {note}");
                }
                if let Some(g) = &r.regression {
                    for d in &g.disagreements {
                        let _ = writeln!(
                            s,
                            "estimates disagree on {} {}: the origin says {} kept per request, the \
                             regression {}; trust the {}: {}",
                            d.method,
                            d.route,
                            signed_bytes(d.origin_bytes),
                            signed_bytes(d.regression_bytes),
                            d.trust,
                            d.why
                        );
                    }
                    if !g.collinear.is_empty() {
                        let _ = writeln!(
                            s,
                            "the regression cannot tell apart routes hit together: {}",
                            g.collinear.join(", ")
                        );
                    }
                }
                let _ = writeln!(
                    s,
                    "{:<7} {:<32} {:>8} {:>11} {:>11} {:>11} {:<10} {:>11} {:>9} {:>9}  statuses",
                    "method",
                    "route",
                    "requests",
                    "kept/req",
                    "retained",
                    "grown",
                    "retention",
                    "faulted",
                    "p50 ms",
                    "p95 ms"
                );
                for e in self.endpoints.iter().take(15) {
                    let _ = writeln!(
                        s,
                        "{:<7} {:<32} {:>8} {:>11} {:>11} {:>11} {:<10} {:>11} {:>9.2} {:>9.2}  \
                         {:?}{}",
                        e.method,
                        truncate(&e.route, 32),
                        e.requests,
                        signed_bytes(e.kept_per_request_bytes),
                        signed_bytes(e.retained_bytes),
                        bytes(e.grown_bytes),
                        e.retention,
                        bytes(e.rss_bytes),
                        e.duration_ms_p50,
                        e.duration_ms_p95,
                        e.statuses,
                        if e.approximate > 0 { " ~" } else { "" }
                    );
                    if let Some(g) = &e.regression {
                        let _ = writeln!(
                            s,
                            "        by regression on the resident set: {} per request{}",
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
                return s;
            }
            let _ = writeln!(
                s,
                "{:<7} {:<32} {:>8} {:>11} {:>11} {:>9} {:>9}  statuses",
                "method", "route", "requests", "rss", "vm", "p50 ms", "p95 ms"
            );
            for e in self.endpoints.iter().take(15) {
                let _ = writeln!(
                    s,
                    "{:<7} {:<32} {:>8} {:>11} {:>11} {:>9.2} {:>9.2}  {:?}{}",
                    e.method,
                    truncate(&e.route, 32),
                    e.requests,
                    bytes(e.rss_bytes),
                    bytes(e.vm_bytes),
                    e.duration_ms_p50,
                    e.duration_ms_p95,
                    e.statuses,
                    if e.approximate > 0 { " ~" } else { "" }
                );
            }
        }
        s
    }
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

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
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

impl Diff {
    fn arrow(c: &RouteChange) -> &'static str {
        match (c.status, c.growth_pct) {
            ("appeared", _) => "🆕",
            ("disappeared", _) => "➖",
            (_, Some(_)) if c.regression => "🔺",
            (_, Some(g)) if g > 0.5 => "↗",
            (_, Some(g)) if g < -0.5 => "↘",
            _ => "→",
        }
    }

    fn cell(&self, v: Option<f64>) -> String {
        v.map_or_else(|| "–".into(), |v| metric_value(self.metric, v))
    }

    fn pct(c: &RouteChange) -> String {
        c.growth_pct
            .map_or_else(|| "–".into(), |g| format!("{g:+.1}%"))
    }

    /// Plain text.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{}: {} regression(s) (metric {:?}, threshold +{}% per request)",
            if self.regressions > 0 { "FAIL" } else { "ok" },
            self.regressions,
            self.metric,
            self.max_growth_pct
        );
        for c in &self.routes {
            let _ = writeln!(
                s,
                "{} {:<40} {:>12} -> {:<12} {:>8}  ({} -> {} requests){}",
                Self::arrow(c),
                c.route,
                self.cell(c.base),
                self.cell(c.head),
                Self::pct(c),
                c.base_requests,
                c.head_requests,
                match c.status {
                    "too_few_requests" => " [too few requests to judge]",
                    "appeared" => " [new route]",
                    "disappeared" => " [route gone]",
                    _ if c.regression => " REGRESSION",
                    _ => "",
                }
            );
        }
        let _ = writeln!(
            s,
            "whole run RSS growth: {} -> {} ({:+.1}%){}",
            bytes(self.run_rss_growth_base),
            bytes(self.run_rss_growth_head),
            self.run_growth_pct,
            if self.run_regression {
                " REGRESSION"
            } else {
                ""
            }
        );
        s
    }

    /// A pull-request comment: a table, worst regression first, an arrow per change.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "### memwatch: {}\n",
            if self.regressions > 0 {
                format!("{} memory regression(s)", self.regressions)
            } else {
                "no memory regression".into()
            }
        );
        let _ = writeln!(
            s,
            "| | route | base | head | change | requests (base → head) |\n|---|---|---:|---:|---:|---:|"
        );
        for c in &self.routes {
            // Routes come from traffic: keep table syntax out of them.
            let route = c.route.replace('|', "\\|").replace('`', "'");
            let _ = writeln!(
                s,
                "| {} | `{}` | {} | {} | {} | {} → {} |",
                Self::arrow(c),
                route,
                self.cell(c.base),
                self.cell(c.head),
                Self::pct(c),
                c.base_requests,
                c.head_requests
            );
        }
        let _ = writeln!(
            s,
            "\nMetric: {:?} per request; threshold +{}%. Whole-run RSS growth: {} → {} ({:+.1}%){}.",
            self.metric,
            self.max_growth_pct,
            bytes(self.run_rss_growth_base),
            bytes(self.run_rss_growth_head),
            self.run_growth_pct,
            if self.run_regression {
                " **regression**"
            } else {
                ""
            }
        );
        s
    }
}

/// A figure of `metric` with its unit: bytes, or milliseconds.
fn metric_value(metric: Metric, v: f64) -> String {
    match metric {
        Metric::Kept | Metric::Rss | Metric::Vm => bytes(v as i64),
        Metric::Duration => format!("{v:.2} ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_bytes() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(-2048), "-2.0 KiB");
        assert_eq!(bytes(40 * 1024 * 1024), "40.0 MiB");
        assert_eq!(signed_bytes(2 * 1024 * 1024), "+2.0 MiB");
        assert_eq!(signed_bytes(-4096), "-4.0 KiB");
        assert_eq!(signed_bytes(0), "0 B");
    }
}
