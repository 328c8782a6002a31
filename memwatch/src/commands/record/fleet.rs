//! What a fleet takes while `record` or `serve` runs (`views::fleet`): `/metrics` served from
//! the recording as it is written, and a pprof profile of the call sites written every period.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use crate::{
    recording::{Recording, query::Range},
    session::wall_ns,
    units::NS_PER_SEC,
    views::{
        fleet::Fleet,
        pprof::{self, Selection},
        server,
    },
};

/// `/metrics` served while recording (`--metrics`), stopped with it.
pub(super) struct Metrics {
    stop: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Metrics {
    pub(super) fn start(
        recording: Recording,
        listener: std::net::TcpListener,
        fleet: &Fleet,
    ) -> Self {
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

    pub(super) async fn finished(self) {
        self.stop.notify_one();
        let _ = self.task.await;
    }
}

/// A pprof profile of the call sites written every period while recording (`--pprof-dir`).
pub(super) struct Profiles {
    stop: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Profiles {
    pub(super) fn start(recording: PathBuf, dir: PathBuf, every: Duration) -> Self {
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

    pub(super) async fn finished(self) {
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
