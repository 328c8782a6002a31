//! Arbitrary bytes as a profile document, read as `memwatch diff` and `memwatch ci --baseline`
//! read one, then everything they compute from it: the metric check, the diff against itself and
//! against a typical profile in both directions, and its text, markdown and JSON renderings.
//! Nothing may panic; a profile compared with itself shows no regression; a profile memwatch
//! writes back reads again.
#![no_main]

use std::{path::Path, sync::OnceLock};

use libfuzzer_sys::fuzz_target;
use memwatch::views::profile::{Metric, Profile, Thresholds, diff};

const METRICS: [Metric; 4] = [Metric::Kept, Metric::Rss, Metric::Vm, Metric::Duration];

/// A typical version 2 profile with two routes.
const TYPICAL: &str = r#"{"format":"memwatch-profile","version":2,"memwatch_version":"0.1.0",
"run":{"duration_s":10.5,"requests":2000,"rss_start_bytes":10485760,"rss_end_bytes":20971520,
"rss_peak_bytes":23068672,"rss_growth_bytes":10485760,"rss_growth_per_1000_requests":5242880,
"dropped_events":0},
"routes":{"GET /a":{"method":"GET","route":"/a","requests":1000,"statuses":{"2xx":1000},
"approximate":0,"vm_bytes_total":0,"rss_bytes_total":4096000,"vm_bytes_mean":0,"vm_bytes_p50":0,
"vm_bytes_p95":0,"rss_bytes_mean":4096,"rss_bytes_p50":4096,"rss_bytes_p95":8192,
"duration_ms_p50":1.5,"duration_ms_p95":3.0,"kept_per_request_bytes":4096,
"retained_bytes":4096000,"grown_bytes":4096000,"retention":"keeps"},
"POST /b":{"method":"POST","route":"/b","requests":1000,"statuses":{"2xx":990,"5xx":10},
"approximate":3,"vm_bytes_total":65536,"rss_bytes_total":0,"vm_bytes_mean":65,"vm_bytes_p50":0,
"vm_bytes_p95":0,"rss_bytes_mean":0,"rss_bytes_p50":0,"rss_bytes_p95":0,"duration_ms_p50":0.5,
"duration_ms_p95":0.9,"kept_per_request_bytes":0,"retained_bytes":0,"grown_bytes":0,
"retention":"none"}}}"#;

static TYPICAL_PROFILE: OnceLock<Profile> = OnceLock::new();

fn thresholds(metric: Metric) -> Thresholds {
    Thresholds {
        metric,
        max_growth_pct: 10.0,
        max_run_growth_pct: Some(25.0),
        min_requests: 50,
    }
}

fuzz_target!(|data: &[u8]| {
    let typical = TYPICAL_PROFILE.get_or_init(|| {
        Profile::from_json(TYPICAL.as_bytes(), "typical").expect("the typical profile reads")
    });
    let profile = match Profile::from_json(data, "fuzz.json") {
        Ok(profile) => profile,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    for metric in METRICS {
        if let Err(e) = profile.check_metric(Path::new("fuzz.json"), metric) {
            let _ = e.to_string();
        }
        let t = thresholds(metric);
        let same = diff(&profile, &profile, t);
        assert_eq!(
            same.regressions, 0,
            "a profile does not regress against itself"
        );
        for d in [same, diff(typical, &profile, t), diff(&profile, typical, t)] {
            let _ = d.to_text();
            let _ = d.to_markdown();
            serde_json::to_string(&d).expect("a diff serializes");
        }
    }
    let written = serde_json::to_string_pretty(&profile).expect("a profile serializes");
    Profile::from_json(written.as_bytes(), "written").expect("a written profile reads back");
});
