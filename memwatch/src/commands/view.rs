//! `memwatch view FILE` serves a finished recording; `memwatch view --access-log PATH` builds a
//! throwaway recording from the log alone (request volume and URLs, no memory series) and serves
//! that.

use std::path::{Path, PathBuf};

use crate::{
    capture::{accesslog::Format, log_source::LogSource},
    cli::ViewArgs,
    correlate::{interval::IntervalAttributor, route::Router},
    model::{Row, meta},
    recording::{Recording, Writer},
    session,
    views::server::{self, AppState},
};

/// A temporary recording removed when dropped.
struct TempRecording(PathBuf);

impl Drop for TempRecording {
    fn drop(&mut self) {
        crate::recording::remove(&self.0);
    }
}

/// Reads whole access logs into a new recording at `path`.
fn import_logs(path: &Path, logs: &[PathBuf], format: Option<&Format>) -> anyhow::Result<()> {
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
    let meta = [
        (meta::MEMWATCH_VERSION, env!("CARGO_PKG_VERSION").to_owned()),
        (meta::EBPF, "false".to_owned()),
        (
            meta::ACCESS_LOGS,
            logs.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        ),
    ];
    let writer = Writer::create(path, &meta)?;
    let router = Router::default();
    let mut attributor = IntervalAttributor::new(0);
    let (mut first, mut last) = (i64::MAX, i64::MIN);
    for (i, log) in logs.iter().enumerate() {
        let mut source = LogSource::new(log.clone(), format.cloned(), true);
        loop {
            let mut rows = Vec::new();
            let lines = source.poll(now);
            if lines.is_empty() {
                break;
            }
            for mut line in lines {
                if let Some(t) = line.target.as_deref() {
                    line.route = Some(router.route(t));
                }
                if let Some(ts) = line.ts_ns {
                    first = first.min(ts);
                    last = last.max(ts);
                }
                // Without memory samples the lines are requests with no growth charged.
                line.arrived_ns = line.ts_ns.unwrap_or(now);
                attributor.line(line, &mut rows);
            }
            attributor.sample(0, 0, &mut rows);
            writer.send(rows);
        }
        if let Some(name) = source.format_name() {
            writer.send(vec![Row::Meta(meta::access_log_format(i), name.to_owned())]);
        }
    }
    if first <= last {
        writer.send(vec![
            Row::Meta(meta::STARTED_NS.into(), first.to_string()),
            Row::Meta(meta::ENDED_NS.into(), last.to_string()),
        ]);
    }
    writer.finish()?;
    Ok(())
}

pub async fn run(args: ViewArgs) -> anyhow::Result<i32> {
    let options = args.serve.options(&args.hosts);
    server::check_exposure(
        "--listen",
        options.listen,
        "--token",
        options.token.as_deref(),
    )?;
    let listener = super::listen::bind(options.listen, "--listen")?;
    let (recording, _temp) = match &args.file {
        Some(file) => (Recording::open(file)?, None),
        None => {
            let format = session::check_access_logs(args.log_format.as_deref(), &args.access_logs)?;
            let path = std::env::temp_dir().join(format!(
                "memwatch-view-{}-{}.db",
                std::process::id(),
                chrono::Utc::now().timestamp_millis()
            ));
            let temp = TempRecording(path.clone());
            crate::recording::create::check_output(&path, false)?;
            import_logs(&path, &args.access_logs, format.as_ref())?;
            (Recording::open(&path)?, Some(temp))
        }
    };
    let state = AppState::new(recording, false, options.token.clone());
    // Listening before the page is announced: a Ctrl-C right after the address is not lost.
    let mut signals = session::StopSignals::new()?;
    let stop = async move {
        signals.recv().await;
        signals.escalate();
    };
    server::serve(state, listener, &options, stop).await?;
    Ok(crate::error::exit::OK)
}
