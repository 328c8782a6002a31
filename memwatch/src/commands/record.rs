//! `memwatch record` and `memwatch serve`: a [`session`](crate::session) recording, with the live
//! page served from the file it fills (`serve`) and what a fleet takes beside it (`fleet.rs`),
//! then the report.

mod fleet;

use std::sync::Arc;

use self::fleet::{Metrics, Profiles};
use super::listen;
use crate::{
    recording::Recording,
    session::{self, Hooks, RecordOptions, Stop},
    views::{
        fleet::Fleet,
        report::Report,
        server::{self, ServeOptions},
    },
};

/// Runs `memwatch record` (and with `serve`, `memwatch serve`); returns the exit code.
pub async fn run(
    options: RecordOptions,
    serve: Option<ServeOptions>,
    fleet: Fleet,
) -> anyhow::Result<i32> {
    fleet.check()?;
    if let Some(page) = &serve {
        server::check_exposure("--listen", page.listen, "--token", page.token.as_deref())?;
    }
    run_with(options, serve, fleet, Hooks::default()).await
}

/// [`run`], driven by another command.
pub async fn run_with(
    options: RecordOptions,
    serve: Option<ServeOptions>,
    fleet: Fleet,
    hooks: Hooks,
) -> anyhow::Result<i32> {
    // The addresses first: one that cannot be had stops memwatch before anything is loaded.
    let page_listener = match &serve {
        Some(page) => Some(listen::bind(page.listen, "--listen")?),
        None => None,
    };
    let metrics_listener = match fleet.metrics {
        Some(addr) => Some(listen::bind(addr, "--metrics")?),
        None => None,
    };
    let session = session::start(options, hooks).await?;
    let output = session.output().to_owned();
    // The page reads the file the writer fills: live and offline views use the same reader.
    let page = match (serve, page_listener) {
        (Some(options), Some(listener)) => Some(LivePage::start(
            Recording::open(&output)?,
            listener,
            options,
            fleet.max_routes,
        )),
        _ => None,
    };
    let metrics = match metrics_listener {
        Some(listener) => Some(Metrics::start(Recording::open(&output)?, listener, &fleet)),
        None => None,
    };
    let profiles = fleet
        .pprof
        .clone()
        .map(|(dir, every)| Profiles::start(output.clone(), dir, every));
    let stop = session.run().await?;
    if let Some(profiles) = profiles {
        profiles.finished().await;
    }
    let readers = metrics.is_some() || page.is_some();
    if let Some(metrics) = metrics {
        metrics.finished().await;
    }
    // The summary, once, as soon as the recording is complete.
    let report = Report::build(&Recording::open(&output)?)?;
    super::print_out(&format!(
        "{}recording: {} {}\n{}\n",
        report.to_text(),
        output.display(),
        crate::private::describe(),
        holds(report.redact_query),
    ))?;
    if let Some(page) = page {
        page.finished(stop).await?;
    }
    if readers {
        // The page and /metrics read the file while it was written: now they are gone, it can
        // be one file again.
        crate::recording::finalize(&output)?;
    }
    Ok(crate::error::exit::OK)
}

/// What a recording holds, said under the line that names it (`docs/recording.md`).
fn holds(redact_query: Option<bool>) -> &'static str {
    if redact_query == Some(true) {
        "It holds request paths (query strings were dropped), Host names and the traced\n\
         processes' command lines."
    } else {
        "It holds request targets with their query strings (tokens in URLs too: --redact-query\n\
         drops them), Host names and the traced processes' command lines."
    }
}

/// The page served while recording, and after it until Ctrl-C when the recording ended by
/// itself.
struct LivePage {
    state: Arc<server::AppState>,
    stop: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl LivePage {
    fn start(
        recording: Recording,
        listener: std::net::TcpListener,
        options: ServeOptions,
        max_routes: usize,
    ) -> Self {
        let state =
            server::AppState::with_max_routes(recording, true, options.token.clone(), max_routes);
        let stop = Arc::new(tokio::sync::Notify::new());
        let stopped = Arc::clone(&stop);
        let shutdown = async move { stopped.notified().await };
        let task_state = Arc::clone(&state);
        let task = tokio::spawn(async move {
            if let Err(e) = server::serve(task_state, listener, &options, shutdown).await {
                say!("memwatch: the page server stopped: {e:#}");
            }
        });
        Self { state, stop, task }
    }

    /// The recording is complete. Stopped by Ctrl-C, the page goes with it; stopped by
    /// `--duration` or the targets' exit, the page says so and stays up until Ctrl-C.
    async fn finished(self, stop: Stop) -> anyhow::Result<()> {
        self.state.set_live(false);
        if stop != Stop::Signal {
            let mut signals = session::StopSignals::new()?;
            say!("memwatch: recording finished; the page stays up until Ctrl-C");
            signals.recv().await;
            signals.escalate();
        }
        self.stop.notify_one();
        let _ = self.task.await;
        Ok(())
    }
}
