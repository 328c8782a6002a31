//! What the recording says about the run itself: memwatch's own state at stop, and the command
//! line with its tokens hidden.

use super::Session;
use crate::{
    capture::procfs,
    correlate::StateSizes,
    model::{Row, meta},
};

impl Session {
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
