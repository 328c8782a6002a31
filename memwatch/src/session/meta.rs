//! What the recording says about the run itself: its head (how memwatch was run, the command
//! line with its tokens hidden) and the rows that close it (its end, memwatch's own state, the
//! heap budget's and the stacks' figures, why it stopped).

use super::{RecordOptions, Session, Stop, wall_ns};
use crate::{
    capture::{probe::ProbeConfig, procfs},
    correlate::StateSizes,
    model::{Row, meta},
};

/// The recording's head: which memwatch, when, how it was run, on what, and with which
/// options. `heap`: the heap probes could be loaded.
pub(super) fn head_meta(
    args: &RecordOptions,
    config: &ProbeConfig,
    clock_offset: i64,
    page_size: u64,
    heap: bool,
) -> Vec<(&'static str, String)> {
    let started_ns = wall_ns();
    let argv = redact_tokens(std::env::args());
    [
        (meta::MEMWATCH_VERSION, env!("CARGO_PKG_VERSION").to_owned()),
        (meta::STARTED_NS, started_ns.to_string()),
        (meta::CLOCK_OFFSET_NS, clock_offset.to_string()),
        (meta::COMMAND_LINE, argv.join(" ")),
        (meta::REDACT_QUERY, args.redact_query.to_string()),
        (
            meta::SAMPLE_INTERVAL_MS,
            args.sample_interval.as_millis().to_string(),
        ),
        (meta::CAPTURE_BYTES, config.capture_len.to_string()),
        (meta::FOLLOW_FORKS, config.follow_forks.to_string()),
        (meta::NET, config.net.to_string()),
        (meta::EBPF, args.ebpf.to_string()),
        (
            meta::ACCESS_LOGS,
            args.access_logs
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        (
            meta::KERNEL,
            procfs::kernel_release().unwrap_or_else(|| "unknown".into()),
        ),
        (meta::PAGE_SIZE, page_size.to_string()),
        (meta::HEAP, heap.to_string()),
        (meta::HEAP_BUDGET, args.heap_budget.to_string()),
    ]
    .into_iter()
    .chain((config.stack_every != 0).then(|| (meta::STACK_EVERY, config.stack_every.to_string())))
    .collect()
}

impl Session {
    /// The rows that close the recording: its end, the correlator's and memwatch's own figures,
    /// the heap budget's, the stacks' last rows and counts, and why it stopped.
    pub(super) fn close_rows(&mut self, stop: Stop) {
        let ended_ns = wall_ns();
        self.rows
            .push(Row::Meta(meta::ENDED_NS.into(), ended_ns.to_string()));
        self.rows.push(Row::Meta(
            meta::ORIGIN_SPANS.into(),
            self.correlator.origin_spans().to_string(),
        ));
        self.rows.push(Row::Meta(
            meta::VM_UNMATCHED_RELEASE_BYTES.into(),
            self.correlator.vm_unmatched_release_bytes().to_string(),
        ));
        let state = self.state_meta();
        self.rows.extend(state);
        let own = self.own.meta(self.writer.cpu_ns(), self.probe.as_ref());
        self.rows.extend(own);
        self.rows.push(Row::Meta(
            meta::GC_NOT_FOLLOWED.into(),
            self.gc.not_followed.to_string(),
        ));
        self.rows.push(Row::Meta(
            meta::GC_EVENTS.into(),
            self.gc.events.to_string(),
        ));
        self.rows.push(Row::Meta(
            meta::GC_REPORTS.into(),
            self.gc.reports.to_string(),
        ));
        if self.gc.samples.any() {
            let c = self.gc.samples.counts;
            for (key, value) in [
                (meta::GO_SAMPLE_RATES, self.gc.samples.rates()),
                (meta::GO_SAMPLES, c.samples.to_string()),
                (meta::GO_SAMPLES_OUTSIDE, c.outside.to_string()),
                (meta::GO_SAMPLES_FREED, c.freed.to_string()),
                (meta::GO_SAMPLE_UNKNOWN_FREES, c.unknown_frees.to_string()),
            ] {
                self.rows.push(Row::Meta(key.into(), value));
            }
        }
        if let Some(heap) = &self.heap {
            self.rows.extend(heap.meta(self.probe.as_ref()));
        }
        if let Some(stacks) = self.stacks.take() {
            let (rows, counts) = stacks.finish();
            self.rows.extend(rows);
            let kernel_lost = self.counters.stacks_lost;
            tracing::info!(?counts, kernel_lost, "stacks");
            for (key, value) in [
                (meta::STACK_SAMPLES, counts.samples),
                (meta::STACKS_LOST, counts.lost + kernel_lost),
                (meta::STACKS_SKIPPED, counts.skipped),
                (meta::STACK_FALLBACKS, counts.fallbacks),
                (meta::STACKS_CUT_AT_NO_CODE, counts.cut_at_no_code),
                (meta::FRAMES_UNSYMBOLIZED, counts.unsymbolized),
                (meta::STACK_RESOLVE_US, counts.resolve.as_micros() as u64),
                (meta::SYMBOLIZE_US, counts.symbolize.as_micros() as u64),
            ] {
                self.rows.push(Row::Meta(key.into(), value.to_string()));
            }
        }
        self.rows.push(Row::Meta(
            meta::STOP_REASON.into(),
            format!("{stop:?}").to_lowercase(),
        ));
    }

    /// What memwatch's own state came to: its peak resident set, the correlator's peak sizes,
    /// and what the kernel maps hold now that the targets' traffic is over.
    pub(super) fn state_meta(&mut self) -> Vec<Row> {
        self.sweep_conns();
        let StateSizes {
            conns,
            threads,
            requests,
            retaining,
        } = self.peaks.max(self.correlator.state_sizes());
        let mut pairs = vec![
            (meta::PEAK_CONNS, conns),
            (meta::PEAK_THREADS, threads),
            (meta::PEAK_REQUESTS, requests),
            (meta::PEAK_RETAINING, retaining),
            (meta::CONNS_SWEPT, self.conns_swept),
            (meta::PIDS_REUSED, self.pids_reused),
            (meta::MADVISE_RELEASED_BYTES, self.madvise_released_bytes),
        ];
        if let Some(hwm) = procfs::own_peak_rss() {
            pairs.push((meta::PEAK_RSS_BYTES, hwm));
        }
        let mut rows: Vec<Row> = pairs
            .into_iter()
            .map(|(key, value)| Row::Meta(key.into(), value.to_string()))
            .collect();
        if let Some(probe) = self.probe.as_ref() {
            let entries = probe.map_entries();
            tracing::info!(?entries, "kernel maps at stop");
            let list = entries
                .pairs()
                .iter()
                .map(|(name, n)| format!("{name}={n}"))
                .collect::<Vec<_>>()
                .join(" ");
            rows.push(Row::Meta(meta::KERNEL_MAP_ENTRIES.into(), list));
        }
        rows
    }
}

/// The command line with the values of the token options replaced: a token guards the page and
/// `/metrics`, and never goes into the recording.
pub(super) fn redact_tokens(args: impl IntoIterator<Item = String>) -> Vec<String> {
    const SECRET: [&str; 2] = ["--token", "--metrics-token"];
    let mut out = Vec::new();
    let mut hide_next = false;
    for arg in args {
        if std::mem::take(&mut hide_next) {
            out.push("***".to_owned());
        } else if SECRET.contains(&arg.as_str()) {
            hide_next = true;
            out.push(arg);
        } else if let Some((flag, _)) = arg.split_once('=')
            && SECRET.contains(&flag)
        {
            out.push(format!("{flag}=***"));
        } else {
            out.push(arg);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_never_reach_the_recorded_command_line() {
        let argv = [
            "memwatch",
            "serve",
            "--token",
            "s3cret",
            "--metrics-token=m3tric",
            "-p",
            "42",
            "--tokenizer",
        ]
        .map(String::from);
        assert_eq!(
            redact_tokens(argv).join(" "),
            "memwatch serve --token *** --metrics-token=*** -p 42 --tokenizer"
        );
    }
}
