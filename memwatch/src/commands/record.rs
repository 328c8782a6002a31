//! `memwatch record` and `memwatch serve`: a [`session`](crate::session) recording, with the live
//! page served from the file it fills (`serve`), then the report.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use super::listen;
use crate::{
    recording::{Recording, query::Range},
    session::{self, Hooks, RecordOptions, Stop, wall_ns},
    units::NS_PER_SEC,
    views::{
        fleet::Fleet,
        pprof::{self, Selection},
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

/// `/metrics` served while recording (`--metrics`), stopped with it.
struct Metrics {
    stop: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Metrics {
    fn start(recording: Recording, listener: std::net::TcpListener, fleet: &Fleet) -> Self {
        let state = server::AppState::with_max_routes(
            recording,
            true,
            fleet.metrics_token.clone(),
            fleet.max_routes,
        );
        let stop = Arc::new(tokio::sync::Notify::new());
        let stopped = Arc::clone(&stop);
        let hosts = fleet.allow_hosts.clone();
        let task = tokio::spawn(async move {
            let shutdown = async move { stopped.notified().await };
            if let Err(e) = server::serve_metrics(state, listener, &hosts, shutdown).await {
                say!("memwatch: the metrics server stopped: {e:#}");
            }
        });
        Self { stop, task }
    }

    async fn finished(self) {
        self.stop.notify_one();
        let _ = self.task.await;
    }
}

/// A pprof profile of the call sites written every period while recording (`--pprof-dir`).
struct Profiles {
    stop: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Profiles {
    fn start(recording: PathBuf, dir: PathBuf, every: Duration) -> Self {
        let stop = Arc::new(tokio::sync::Notify::new());
        let stopped = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            // Periods are whole seconds, so that no second is in two profiles.
            let mut from_s = wall_ns() / NS_PER_SEC;
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                let last = tokio::select! {
                    _ = tick.tick() => false,
                    () = stopped.notified() => true,
                };
                // The last period runs to the end of the recording, its last second included.
                let to_s = wall_ns() / NS_PER_SEC + i64::from(last);
                if to_s > from_s {
                    let (recording, dir) = (recording.clone(), dir.clone());
                    let written = tokio::task::spawn_blocking(move || {
                        write_period(&recording, &dir, from_s, to_s)
                    })
                    .await;
                    match written {
                        Ok(Ok(path)) => tracing::info!(path = %path.display(), "profile written"),
                        Ok(Err(e)) => tracing::warn!("{:#}", e),
                        Err(e) => tracing::warn!(error = %e, "profile writer failed"),
                    }
                    from_s = to_s;
                }
                if last {
                    break;
                }
            }
        });
        Self { stop, task }
    }

    async fn finished(self) {
        self.stop.notify_one();
        let _ = self.task.await;
    }
}

/// Writes the call sites of the requests that ended in seconds `[from_s, to_s)` to
/// `dir/memwatch-FROM-TO.pb.gz`, through a temporary name so that an uploader never reads half
/// a file.
fn write_period(recording: &Path, dir: &Path, from_s: i64, to_s: i64) -> anyhow::Result<PathBuf> {
    let rec = Recording::open(recording)?;
    let selection = Selection {
        range: Range {
            from_ns: Some(from_s * NS_PER_SEC),
            to_ns: Some(to_s * NS_PER_SEC - 1),
        },
        route: None,
    };
    let name = format!("memwatch-{from_s}-{to_s}.pb.gz");
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(&name);
    let bytes = pprof::encode(&pprof::build(&rec, &selection)?);
    crate::private::write(&tmp, &bytes)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            anyhow::anyhow!(
                "--pprof-dir {}: could not write {name} ({e}); this period's profile is lost, \
                 recording goes on. Free space in that directory or make it writable",
                dir.display()
            )
        })?;
    Ok(path)
}
