//! `memwatch record` and `memwatch serve`: a [`session`](crate::session) recording, with the live
//! page served from the file it fills (`serve`), then the report.

use std::sync::Arc;

use crate::{
    recording::Recording,
    session::{self, Hooks, RecordOptions},
    views::{
        report::Report,
        server::{self, ServeOptions},
    },
};

/// Runs `memwatch record` (and with `serve`, `memwatch serve`); returns the exit code.
pub async fn run(options: RecordOptions, serve: Option<ServeOptions>) -> anyhow::Result<i32> {
    run_with(options, serve, Hooks::default()).await
}

/// [`run`], driven by another command.
pub async fn run_with(
    options: RecordOptions,
    serve: Option<ServeOptions>,
    hooks: Hooks,
) -> anyhow::Result<i32> {
    let session = session::start(options, hooks).await?;
    let output = session.output().to_owned();
    // The page reads the file the writer fills: live and offline views use the same reader.
    let page = match serve {
        Some(options) => Some(LivePage::start(Recording::open(&output)?, options)),
        None => None,
    };
    session.run().await?;
    if let Some(page) = page {
        page.finished().await?;
    }
    let report = Report::build(&Recording::open(&output)?)?;
    print!("{}", report.to_text());
    println!("recording: {}", output.display());
    Ok(crate::error::exit::OK)
}

/// The page served while recording, and after it until Ctrl-C.
struct LivePage {
    state: Arc<server::AppState>,
    stop: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl LivePage {
    fn start(recording: Recording, options: ServeOptions) -> Self {
        let state = server::AppState::new(recording, true, options.token.clone());
        let stop = Arc::new(tokio::sync::Notify::new());
        let stopped = Arc::clone(&stop);
        let shutdown = async move { stopped.notified().await };
        let task_state = Arc::clone(&state);
        let task = tokio::spawn(async move {
            if let Err(e) = server::serve(task_state, &options, shutdown).await {
                eprintln!("memwatch: the page server stopped: {e:#}");
            }
        });
        Self { state, stop, task }
    }

    /// The recording is complete: the page says so and stays up until Ctrl-C.
    async fn finished(self) -> anyhow::Result<()> {
        self.state.set_live(false);
        eprintln!("memwatch: recording finished; the page stays up until Ctrl-C");
        session::wait_for_stop().await?;
        self.stop.notify_one();
        let _ = self.task.await;
        Ok(())
    }
}
