//! Allocation profiles and their diff: a small, stable, versioned JSON document of per-route
//! figures (`docs/profile.md`), and the comparison that CI gates on. [`super::format`] renders a
//! diff as text or markdown.

use std::{collections::BTreeMap, path::Path};

use serde::{Deserialize, Serialize};

use crate::{
    recording::Recording,
    units::signed,
    views::report::{Endpoint, Report, Retention},
};

/// The `format` field of every profile.
pub const FORMAT: &str = "memwatch-profile";
/// The profile version this memwatch writes and the newest it reads. Version 2 added the
/// retained-memory figures (`kept_per_request_bytes`, `retained_bytes`, `grown_bytes`,
/// `retention`); version 1 profiles still read, and compare on every other metric.
pub const VERSION: u32 = 2;

/// Failures reading a profile or recording for `diff`.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error(
        "{path} is a directory, not a memwatch profile or recording.\n  Pass a file written by \
         `memwatch profile -o FILE` or `memwatch record -o FILE`"
    )]
    IsDirectory { path: String },
    #[error(
        "{path} is empty: not a memwatch profile or recording (was it cut off while being \
         written?).\n  Pass a file written by `memwatch profile -o FILE` or `memwatch record -o \
         FILE`"
    )]
    Empty { path: String },
    #[error("{path}: cannot read it: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} is neither a memwatch profile (JSON with \"format\": \"{FORMAT}\") nor a \
         recording: {reason}.\n  Pass a file written by `memwatch profile` or `memwatch record`"
    )]
    NotAProfile { path: String, reason: String },
    #[error(
        "{path} is a version {found} profile; this memwatch reads up to version {VERSION}.\n  \
         Upgrade memwatch, or regenerate the profile with this version from its recording"
    )]
    NewerVersion { path: String, found: u32 },
    #[error(
        "{path} has no retained-memory figures ({why}), so routes cannot be compared on what \
         they keep per request.\n  Regenerate the profile with this memwatch from a recording \
         made with eBPF (`memwatch profile RECORDING -o FILE`), or compare another figure with \
         --metric rss, vm or duration"
    )]
    NoRetainedFigures { path: String, why: String },
    #[error(transparent)]
    Recording(#[from] crate::error::RecordingError),
}

/// Whole-run figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunFigures {
    pub duration_s: f64,
    pub requests: u64,
    pub rss_start_bytes: u64,
    pub rss_end_bytes: u64,
    pub rss_peak_bytes: u64,
    /// `rss_end - rss_start`.
    pub rss_growth_bytes: i64,
    /// RSS growth per 1,000 requests (0 without requests).
    pub rss_growth_per_1000_requests: i64,
    pub dropped_events: u64,
}

/// One route's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteFigures {
    pub method: String,
    pub route: String,
    pub requests: u64,
    pub statuses: BTreeMap<String, u64>,
    pub approximate: u64,
    pub vm_bytes_total: i64,
    pub rss_bytes_total: i64,
    pub vm_bytes_mean: i64,
    pub vm_bytes_p50: i64,
    pub vm_bytes_p95: i64,
    pub rss_bytes_mean: i64,
    pub rss_bytes_p50: i64,
    pub rss_bytes_p95: i64,
    pub duration_ms_p50: f64,
    pub duration_ms_p95: f64,
    /// What each further request keeps (profile version 2; 0 in version 1).
    #[serde(default)]
    pub kept_per_request_bytes: i64,
    /// Still held at the end of the run.
    #[serde(default)]
    pub retained_bytes: i64,
    /// Made resident by the route's requests (each page once).
    #[serde(default)]
    pub grown_bytes: i64,
    /// `keeps`, `high-water`, `none`, `too-few`, or `unknown` (a recording without retained
    /// figures, or a version 1 profile).
    #[serde(default)]
    pub retention: Retention,
}

impl From<Endpoint> for RouteFigures {
    fn from(e: Endpoint) -> Self {
        let Endpoint {
            method,
            route,
            requests,
            statuses,
            vm_bytes,
            rss_bytes,
            // Not in the profile document (`docs/profile.md`).
            page_faults: _,
            mem_calls: _,
            approximate,
            vm_bytes_mean,
            rss_bytes_mean,
            vm_bytes_per_request_p50,
            vm_bytes_per_request_p95,
            rss_bytes_per_request_p50,
            rss_bytes_per_request_p95,
            duration_ms_p50,
            duration_ms_p95,
            grown_bytes,
            released_bytes: _,
            retained_bytes,
            kept_per_request_bytes,
            retention,
            // Address-space origin is not in profile version 2.
            vm_mapped_bytes: _,
            vm_released_bytes: _,
            vm_retained_bytes: _,
            // Whether figures are sampled, and the regression's second estimate, are the
            // recording's to say; a profile compares its figures.
            sampled: _,
            regression: _,
            kept_from: _,
            sampled_heap: _,
        } = e;
        Self {
            method,
            route,
            requests,
            statuses,
            approximate,
            vm_bytes_total: vm_bytes,
            rss_bytes_total: rss_bytes,
            vm_bytes_mean,
            vm_bytes_p50: vm_bytes_per_request_p50,
            vm_bytes_p95: vm_bytes_per_request_p95,
            rss_bytes_mean,
            rss_bytes_p50: rss_bytes_per_request_p50,
            rss_bytes_p95: rss_bytes_per_request_p95,
            duration_ms_p50,
            duration_ms_p95,
            kept_per_request_bytes,
            retained_bytes,
            grown_bytes,
            retention,
        }
    }
}

/// A profile. Routes are keyed `"METHOD route"` in a sorted map, so the document is stable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub format: String,
    pub version: u32,
    pub memwatch_version: String,
    pub run: RunFigures,
    pub routes: BTreeMap<String, RouteFigures>,
}

impl Profile {
    /// Builds the profile of a recording from its report (which reads it through
    /// [`crate::recording::query`]): the routes are the report's endpoints.
    pub fn from_recording(rec: &Recording) -> Result<Self, ProfileError> {
        let Report {
            duration_s,
            dropped_events,
            memory: m,
            requests,
            endpoints,
            ..
        } = Report::build(rec)?;
        // Saturating: the figures come from a file, which may be corrupt.
        let growth = signed(m.rss_end_bytes).saturating_sub(signed(m.rss_start_bytes));
        let routes = endpoints
            .into_iter()
            .map(RouteFigures::from)
            .map(|figures| (format!("{} {}", figures.method, figures.route), figures))
            .collect();
        Ok(Self {
            format: FORMAT.into(),
            version: VERSION,
            memwatch_version: env!("CARGO_PKG_VERSION").into(),
            run: RunFigures {
                duration_s,
                requests,
                rss_start_bytes: m.rss_start_bytes,
                rss_end_bytes: m.rss_end_bytes,
                rss_peak_bytes: m.rss_peak_bytes,
                rss_growth_bytes: growth,
                rss_growth_per_1000_requests: if requests > 0 {
                    growth.saturating_mul(1000) / signed(requests)
                } else {
                    0
                },
                dropped_events,
            },
            routes,
        })
    }

    /// Reads a profile, or builds one from a recording: SQLite files are told apart by their
    /// header.
    pub fn load(path: &Path) -> Result<Self, ProfileError> {
        let shown = path.display().to_string();
        if path.is_dir() {
            return Err(ProfileError::IsDirectory { path: shown });
        }
        let bytes = std::fs::read(path).map_err(|source| ProfileError::Read {
            path: shown.clone(),
            source,
        })?;
        if bytes.is_empty() {
            return Err(ProfileError::Empty { path: shown });
        }
        if bytes.starts_with(b"SQLite format 3\0") {
            return Self::from_recording(&Recording::open(path)?);
        }
        Self::from_json(&bytes, &shown)
    }

    /// Reads a profile document from `bytes`; `shown` names where they came from in errors.
    /// Any bytes give a profile or an error (the `profile_json` fuzz target).
    pub fn from_json(bytes: &[u8], shown: &str) -> Result<Self, ProfileError> {
        Self::parse(bytes).map_err(|e| match e {
            ParseError::Newer(found) => ProfileError::NewerVersion {
                path: shown.to_owned(),
                found,
            },
            ParseError::Invalid(reason) => ProfileError::NotAProfile {
                path: shown.to_owned(),
                reason,
            },
        })
    }

    fn parse(bytes: &[u8]) -> Result<Self, ParseError> {
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| ParseError::Invalid(format!("not JSON ({e})")))?;
        if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            return Err(ParseError::Invalid(format!(
                "its \"format\" is {}, not \"{FORMAT}\"",
                value
                    .get("format")
                    .map_or("missing".into(), ToString::to_string)
            )));
        }
        let version = value
            .get("version")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| ParseError::Invalid("\"version\" is missing or not a number".into()))?;
        if version > u64::from(VERSION) {
            return Err(ParseError::Newer(
                u32::try_from(version).unwrap_or(u32::MAX),
            ));
        }
        serde_json::from_value(value).map_err(|e| ParseError::Invalid(e.to_string()))
    }
}

enum ParseError {
    Newer(u32),
    Invalid(String),
}

impl Profile {
    /// Checks that `metric` can be compared with this profile: kept memory needs figures that
    /// version 1 profiles and recordings without eBPF lack.
    pub fn check_metric(&self, path: &Path, metric: Metric) -> Result<(), ProfileError> {
        if metric != Metric::Kept {
            return Ok(());
        }
        let why = if self.version < 2 {
            format!("it is a version {} profile", self.version)
        } else if self
            .routes
            .values()
            .any(|r| r.retention == Retention::Unknown)
        {
            "its recording has none: recorded before memwatch kept them, or with --no-ebpf".into()
        } else {
            return Ok(());
        };
        Err(ProfileError::NoRetainedFigures {
            path: path.display().to_string(),
            why,
        })
    }
}

/// Which per-request figure `diff` compares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Resident memory each further request keeps (the slope of retained memory against the
    /// request count).
    #[default]
    Kept,
    /// Resident bytes faulted in per request (mean, gross).
    Rss,
    /// Virtual bytes per request (mean).
    Vm,
    /// Duration per request (p50).
    Duration,
}

impl Metric {
    fn of(self, r: &RouteFigures) -> f64 {
        match self {
            Self::Kept => r.kept_per_request_bytes as f64,
            Self::Rss => r.rss_bytes_mean as f64,
            Self::Vm => r.vm_bytes_mean as f64,
            Self::Duration => r.duration_ms_p50,
        }
    }

    /// The name users give it (`--metric kept`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Kept => "kept",
            Self::Rss => "rss",
            Self::Vm => "vm",
            Self::Duration => "duration",
        }
    }

    /// Changes up to this are noise: one page, or one millisecond.
    pub fn floor(self) -> f64 {
        match self {
            Self::Kept | Self::Rss | Self::Vm => 4096.0,
            Self::Duration => 1.0,
        }
    }
}

/// Thresholds for `diff`.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    pub metric: Metric,
    /// Per-request growth, in percent, above which a route regressed.
    pub max_growth_pct: f64,
    /// Whole-run RSS growth, in percent of the base run's, above which the run regressed.
    pub max_run_growth_pct: Option<f64>,
    /// Routes with fewer requests in either run are compared but never fail the build.
    pub min_requests: u64,
}

/// How one route changed.
#[derive(Debug, Clone, Serialize)]
pub struct RouteChange {
    pub route: String,
    pub base: Option<f64>,
    pub head: Option<f64>,
    /// Percent change against `max(base, floor)`; `None` for routes in only one run.
    pub growth_pct: Option<f64>,
    pub base_requests: u64,
    pub head_requests: u64,
    pub regression: bool,
    /// `appeared`, `disappeared`, `compared` or `too_few_requests`.
    pub status: &'static str,
}

/// The outcome of `diff`.
#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    pub metric: Metric,
    pub max_growth_pct: f64,
    pub routes: Vec<RouteChange>,
    pub run_rss_growth_base: i64,
    pub run_rss_growth_head: i64,
    pub run_growth_pct: f64,
    pub run_regression: bool,
    pub regressions: usize,
}

/// Compares two profiles route by route.
pub fn diff(base: &Profile, head: &Profile, t: Thresholds) -> Diff {
    let floor = t.metric.floor();
    let keys: std::collections::BTreeSet<&String> =
        base.routes.keys().chain(head.routes.keys()).collect();
    let mut routes: Vec<RouteChange> = keys
        .into_iter()
        .map(|k| {
            let b = base.routes.get(k);
            let h = head.routes.get(k);
            let (bv, hv) = (b.map(|r| t.metric.of(r)), h.map(|r| t.metric.of(r)));
            let (bn, hn) = (b.map_or(0, |r| r.requests), h.map_or(0, |r| r.requests));
            let (growth, status, regression) = match (bv, hv) {
                (Some(bv), Some(hv)) => {
                    let g = (hv - bv) / bv.max(floor) * 100.0;
                    if bn < t.min_requests || hn < t.min_requests {
                        (Some(g), "too_few_requests", false)
                    } else {
                        // A change smaller than the floor (a page, a millisecond) is noise,
                        // whatever its percentage.
                        (Some(g), "compared", g > t.max_growth_pct && hv - bv > floor)
                    }
                }
                (None, Some(_)) => (None, "appeared", false),
                _ => (None, "disappeared", false),
            };
            RouteChange {
                route: k.clone(),
                base: bv,
                head: hv,
                growth_pct: growth,
                base_requests: bn,
                head_requests: hn,
                regression,
                status,
            }
        })
        .collect();
    // Worst first: regressions, then by growth.
    routes.sort_by(|a, b| {
        b.regression.cmp(&a.regression).then(
            b.growth_pct
                .unwrap_or(f64::MIN)
                .total_cmp(&a.growth_pct.unwrap_or(f64::MIN)),
        )
    });
    let (rb, rh) = (base.run.rss_growth_bytes, head.run.rss_growth_bytes);
    // Whole-run growth below 1 MiB is noise (allocator and library warm-up).
    // In f64: the figures come from files, and their difference may not fit an i64.
    let run_growth_pct = (rh as f64 - rb as f64) / (rb.max(1 << 20) as f64) * 100.0;
    let run_regression = t.max_run_growth_pct.is_some_and(|max| run_growth_pct > max);
    let regressions = routes.iter().filter(|r| r.regression).count() + usize::from(run_regression);
    Diff {
        metric: t.metric,
        max_growth_pct: t.max_growth_pct,
        routes,
        run_rss_growth_base: rb,
        run_rss_growth_head: rh,
        run_growth_pct,
        run_regression,
        regressions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(routes: &[(&str, u64, i64)], growth: i64) -> Profile {
        Profile {
            format: FORMAT.into(),
            version: VERSION,
            memwatch_version: "test".into(),
            run: RunFigures {
                rss_growth_bytes: growth,
                ..RunFigures::default()
            },
            routes: routes
                .iter()
                .map(|(r, n, rss)| {
                    (
                        format!("GET {r}"),
                        RouteFigures {
                            method: "GET".into(),
                            route: (*r).into(),
                            requests: *n,
                            rss_bytes_mean: *rss,
                            ..RouteFigures::default()
                        },
                    )
                })
                .collect(),
        }
    }

    const T: Thresholds = Thresholds {
        metric: Metric::Rss,
        max_growth_pct: 20.0,
        max_run_growth_pct: None,
        min_requests: 10,
    };

    /// Found by the `profile_json` fuzz target: whole-run growths whose difference does not fit
    /// an i64 overflowed (a panic in debug builds, a wrong percentage in release ones).
    #[test]
    fn extreme_run_growths_do_not_overflow() {
        let base = profile(&[("/a", 100, 4096)], i64::MIN);
        let head = profile(&[("/a", 100, 4096)], 20_971_520);
        let d = diff(&base, &head, T);
        assert!(d.run_growth_pct.is_finite() && d.run_growth_pct > 0.0);
        let d = diff(&head, &base, T);
        assert!(d.run_growth_pct < 0.0);
        let d = diff(&profile(&[], i64::MAX), &profile(&[], i64::MIN), T);
        assert!(d.run_growth_pct.is_finite());
        assert_eq!(d.regressions, 0);
    }

    #[test]
    fn doubled_route_is_a_regression_and_comes_first() {
        let base = profile(&[("/", 100, 0), ("/leak", 20, 262_144)], 0);
        let head = profile(&[("/", 100, 0), ("/leak", 20, 524_288)], 0);
        let d = diff(&base, &head, T);
        assert_eq!(d.regressions, 1);
        assert_eq!(d.routes[0].route, "GET /leak");
        assert_eq!(d.routes[0].growth_pct, Some(100.0));
        assert!(
            d.to_markdown()
                .contains("| 🔺 | `GET /leak` | 256.0 KiB | 512.0 KiB | +100.0% |")
        );
    }

    #[test]
    fn noise_below_a_page_and_rare_routes_never_fail() {
        let base = profile(&[("/", 100, 0), ("/rare", 2, 1000)], 0);
        let head = profile(&[("/", 100, 3000), ("/rare", 2, 900_000)], 0);
        let d = diff(&base, &head, T);
        assert_eq!(d.regressions, 0, "{}", d.to_text());
        assert!(d.to_text().contains("too few requests"));
    }

    #[test]
    fn appearing_and_disappearing_routes_are_named() {
        let d = diff(
            &profile(&[("/old", 50, 0)], 0),
            &profile(&[("/new", 50, 0)], 0),
            T,
        );
        let statuses: Vec<(&str, &str)> = d
            .routes
            .iter()
            .map(|r| (r.route.as_str(), r.status))
            .collect();
        assert!(statuses.contains(&("GET /new", "appeared")));
        assert!(statuses.contains(&("GET /old", "disappeared")));
    }

    #[test]
    fn run_growth_threshold() {
        let t = Thresholds {
            max_run_growth_pct: Some(50.0),
            ..T
        };
        let d = diff(&profile(&[], 4 << 20), &profile(&[], 8 << 20), t);
        assert!(d.run_regression);
        assert_eq!(d.run_growth_pct, 100.0);
    }

    #[test]
    fn rejects_foreign_and_newer_documents() {
        assert!(matches!(Profile::parse(b"{}"), Err(ParseError::Invalid(_))));
        assert!(matches!(
            Profile::parse(b"not json"),
            Err(ParseError::Invalid(_))
        ));
        let newer = br#"{"format": "memwatch-profile", "version": 99}"#;
        assert!(matches!(Profile::parse(newer), Err(ParseError::Newer(99))));
        let good = serde_json::to_vec(&profile(&[("/", 1, 0)], 0)).unwrap();
        assert!(Profile::parse(&good).is_ok());
    }

    /// A version 1 profile still reads and compares on the gross figures, but not on kept
    /// memory, which it lacks: that is refused with a message saying what to do.
    #[test]
    fn version_1_profiles_compare_on_everything_but_kept_memory() {
        let v1 = br#"{"format": "memwatch-profile", "version": 1, "memwatch_version": "0.1.0",
            "run": {"duration_s": 1.0, "requests": 20, "rss_start_bytes": 0, "rss_end_bytes": 0,
                    "rss_peak_bytes": 0, "rss_growth_bytes": 0, "rss_growth_per_1000_requests": 0,
                    "dropped_events": 0},
            "routes": {"GET /leak": {"method": "GET", "route": "/leak", "requests": 20,
                "statuses": {"200": 20}, "approximate": 0, "vm_bytes_total": 0,
                "rss_bytes_total": 0, "vm_bytes_mean": 0, "vm_bytes_p50": 0, "vm_bytes_p95": 0,
                "rss_bytes_mean": 262144, "rss_bytes_p50": 0, "rss_bytes_p95": 0,
                "duration_ms_p50": 0.1, "duration_ms_p95": 0.2}}}"#;
        let Ok(old) = Profile::parse(v1) else {
            panic!("a version 1 profile reads")
        };
        assert_eq!(old.routes["GET /leak"].retention, Retention::Unknown);
        let path = Path::new("base.json");
        assert!(old.check_metric(path, Metric::Rss).is_ok());
        let err = old
            .check_metric(path, Metric::Kept)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("base.json has no retained-memory figures (it is a version 1 profile)"),
            "{err}"
        );
        assert!(err.contains("--metric rss"), "{err}");
        let mut new = profile(&[("/leak", 20, 0)], 0);
        for r in new.routes.values_mut() {
            r.retention = Retention::Keeps;
            r.kept_per_request_bytes = 262_144;
        }
        assert!(new.check_metric(path, Metric::Kept).is_ok());
    }
}
