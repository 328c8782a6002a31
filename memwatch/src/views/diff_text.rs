//! A profile diff for people: as text, or as a markdown table for pull-request comments. The
//! [`Diff`] it renders is built in [`super::profile`] and knows nothing of its presentation.

use std::fmt::Write as _;

use super::profile::{Diff, Metric, RouteChange};
use crate::units::bytes;

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

    /// The change in percent, marked `*` when the base was under the metric's floor and the
    /// percentage is of the floor (`74 B -> 111 B` is +0.9% of a page, not +50%).
    fn pct(&self, c: &RouteChange) -> String {
        match c.growth_pct {
            None => "–".into(),
            Some(g) if self.under_floor(c) => format!("{g:+.1}%*"),
            Some(g) => format!("{g:+.1}%"),
        }
    }

    fn under_floor(&self, c: &RouteChange) -> bool {
        c.growth_pct.is_some() && c.base.is_some_and(|b| b < self.metric.floor())
    }

    /// How the percentages are taken, said under the table when some rest on the floor.
    fn floor_rule(&self) -> Option<String> {
        self.routes.iter().any(|c| self.under_floor(c)).then(|| {
            format!(
                "* of the {} floor, not of a smaller base: a change of less than {} per request \
                 is noise and never a regression",
                metric_value(self.metric, self.metric.floor()),
                metric_value(self.metric, self.metric.floor()),
            )
        })
    }

    /// Plain text.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{}: {} regression(s) ({} per request, threshold +{}%)",
            if self.regressions > 0 { "FAIL" } else { "ok" },
            self.regressions,
            self.metric.name(),
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
                self.pct(c),
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
        if let Some(rule) = self.floor_rule() {
            let _ = writeln!(s, "{rule}");
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
                self.pct(c),
                c.base_requests,
                c.head_requests
            );
        }
        let _ = writeln!(
            s,
            "\nMetric: {} per request; threshold +{}%. Whole-run RSS growth: {} → {} ({:+.1}%){}.",
            self.metric.name(),
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
        if let Some(rule) = self.floor_rule() {
            let _ = writeln!(s, "\n{}", rule.replacen('*', "\\*", 1));
        }
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

    fn change(route: &str, base: f64, head: f64) -> RouteChange {
        RouteChange {
            route: route.into(),
            base: Some(base),
            head: Some(head),
            growth_pct: Some((head - base) / base.max(Metric::Kept.floor()) * 100.0),
            base_requests: 100,
            head_requests: 100,
            regression: false,
            status: "compared",
        }
    }

    #[test]
    fn a_percentage_of_the_floor_is_marked_and_explained() {
        let diff = Diff {
            metric: Metric::Kept,
            max_growth_pct: 20.0,
            routes: vec![
                change("GET /tiny", 74.0, 111.0),
                change("GET /leak", 8192.0, 9011.0),
            ],
            run_rss_growth_base: 0,
            run_rss_growth_head: 0,
            run_growth_pct: 0.0,
            run_regression: false,
            regressions: 0,
        };
        let text = diff.to_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "ok: 0 regression(s) (kept per request, threshold +20%)"
        );
        assert!(
            lines[1].contains("74 B -> 111 B")
                && lines[1].ends_with("+0.9%*  (100 -> 100 requests)"),
            "{text}"
        );
        assert!(
            lines[2].ends_with("+10.0%  (100 -> 100 requests)"),
            "{text}"
        );
        assert_eq!(
            lines[3],
            "* of the 4.0 KiB floor, not of a smaller base: a change of less than 4.0 KiB per \
             request is noise and never a regression"
        );
        assert!(diff.to_markdown().contains("Metric: kept per request"));
    }
}
