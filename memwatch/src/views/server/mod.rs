//! The page and its JSON API (`docs/api.md`): axum on a loopback address by default, embedded
//! assets only, a Content-Security-Policy on every response, requests checked for the `Host`
//! and `Origin` they name ([`guard`]), and an optional token. It stops within a second of being
//! told to, whatever its clients hold open.

mod api;
mod assets;
pub mod guard;

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use guard::AllowedHosts;

use crate::{
    error::{RecordingError, UsageError},
    private::Secret,
    recording::Recording,
    views::metrics::{self, RouteLabels},
};

/// Served on every response: scripts and data only from this origin. uPlot sets inline
/// styles, hence `'unsafe-inline'` for styles alone.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                       img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
                       base-uri 'none'; form-action 'none'";

/// Where the page listens and what guards it (`--listen`, `--token`, `--allow-host` of `serve`
/// and `view`).
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address for the page; port 0 picks a free port.
    pub listen: SocketAddr,
    /// A token every request must carry.
    pub token: Option<Secret>,
    /// Names besides loopback and the `--listen` address that a request's `Host` may give.
    pub allow_hosts: Vec<String>,
}

/// One rule for every listener memwatch opens (`view`, `serve`, `--metrics`): an address other
/// than loopback is refused without a token, before anything is loaded. `flag` and
/// `token_flag` name the options the user gave and should give.
pub fn check_exposure(
    flag: &str,
    addr: SocketAddr,
    token_flag: &str,
    token: Option<&str>,
) -> Result<(), UsageError> {
    if addr.ip().is_loopback() || token.is_some() {
        return Ok(());
    }
    Err(UsageError(format!(
        "{flag} {addr} is reachable from other hosts, and what memwatch serves names your \
         routes, requests and processes: pass {token_flag} TOKEN, or listen on 127.0.0.1"
    )))
}

/// How long connections get to finish once the server is told to stop; then they are closed.
const GRACE: Duration = Duration::from_secs(1);

/// What the handlers share.
#[derive(Debug)]
pub struct AppState {
    /// `None` once the server has stopped: a connection that outlives it holds no recording
    /// open (the file is made one file again after the last reader is gone).
    recording: Mutex<Option<Recording>>,
    /// True while memwatch is still recording into the file.
    pub live: AtomicBool,
    token: Option<Secret>,
    pub path: PathBuf,
    /// Which routes have series of their own on `/metrics`, kept across scrapes.
    metrics: Mutex<RouteLabels>,
    /// Set when the server stops: the stream ends, so no client holds the server open.
    closing: tokio::sync::watch::Sender<bool>,
}

impl AppState {
    pub fn new(recording: Recording, live: bool, token: Option<Secret>) -> Arc<Self> {
        Self::with_max_routes(recording, live, token, metrics::DEFAULT_MAX_ROUTES)
    }

    /// [`AppState::new`], with at most `max_routes` routes labelled on `/metrics`.
    pub fn with_max_routes(
        recording: Recording,
        live: bool,
        token: Option<Secret>,
        max_routes: usize,
    ) -> Arc<Self> {
        let path = recording.path().to_owned();
        Arc::new(Self {
            recording: Mutex::new(Some(recording)),
            live: AtomicBool::new(live),
            token,
            path,
            metrics: Mutex::new(RouteLabels::new(max_routes)),
            closing: tokio::sync::watch::Sender::new(false),
        })
    }

    pub fn set_live(&self, live: bool) {
        self.live.store(live, Ordering::Relaxed);
    }

    /// Runs `f` with the recording, or says the server is stopping.
    fn read<T>(&self, f: impl FnOnce(&Recording) -> Result<T, ApiError>) -> Result<T, ApiError> {
        let rec = self
            .recording
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match rec.as_ref() {
            Some(rec) => f(rec),
            None => Err(ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                "memwatch is stopping: the recording is closed".into(),
            )),
        }
    }

    /// Resolves once the server is told to stop.
    async fn closed(&self) {
        let mut rx = self.closing.subscribe();
        let _ = rx.wait_for(|closing| *closing).await;
    }

    /// Ends the streams and closes the recording.
    fn close(&self) {
        self.closing.send_replace(true);
    }

    fn drop_recording(&self) {
        self.recording
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
    }
}

/// An API error: a 4xx (or 500) with `{"error": ...}`.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

/// The body of every error answer.
#[derive(Debug, serde::Serialize)]
pub struct ErrorBody {
    pub error: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let Self(status, error) = self;
        (status, axum::Json(ErrorBody { error })).into_response()
    }
}

/// A recording that cannot answer is the server's failure, not the client's.
impl From<RecordingError> for ApiError {
    fn from(e: RecordingError) -> Self {
        Self(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

async fn asset(req: Request) -> Response {
    match assets::lookup(req.uri().path()) {
        Some((ty, body)) => ([(header::CONTENT_TYPE, ty)], body).into_response(),
        None => ApiError(
            StatusCode::NOT_FOUND,
            "no such page: the page is at / and the API under /api/ (see docs/api.md)".into(),
        )
        .into_response(),
    }
}

/// `/metrics`: the recording's figures in the OpenMetrics text format (`docs/metrics.md`).
async fn metrics_handler(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let text = tokio::task::spawn_blocking(move || {
        state.read(|rec| {
            let mut labels = state
                .metrics
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Ok(metrics::render(rec, &mut labels)?)
        })
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    Ok(([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response())
}

/// The layers every router has, outermost last: the token, the `Host`/`Origin` check, the
/// security headers on every answer (refusals included).
fn guarded(router: Router<Arc<AppState>>, state: Arc<AppState>, allowed: AllowedHosts) -> Router {
    router
        .layer(middleware::from_fn_with_state(
            state.clone(),
            guard::require_token,
        ))
        .layer(middleware::from_fn_with_state(
            Arc::new(allowed),
            guard::check_host,
        ))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// `/metrics` alone, with the same guards and headers as the page (`record --metrics`).
pub fn metrics_router(state: Arc<AppState>, allowed: AllowedHosts) -> Router {
    guarded(
        Router::new().route("/metrics", get(metrics_handler)),
        state,
        allowed,
    )
}

/// The whole router.
pub fn router(state: Arc<AppState>, allowed: AllowedHosts) -> Router {
    guarded(
        Router::new()
            .route("/metrics", get(metrics_handler))
            .merge(api::routes())
            .fallback(asset),
        state,
        allowed,
    )
}

/// Serves `router` on `listener` until `shutdown` resolves; then the stream ends, connections
/// get [`GRACE`] to finish and are closed, and the recording is let go.
async fn run(
    state: Arc<AppState>,
    listener: std::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let closing = Arc::clone(&state);
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        closing.close();
    });
    let grace = async {
        state.closed().await;
        tokio::time::sleep(GRACE).await;
    };
    tokio::select! {
        served = server => served?,
        () = grace => tracing::info!(
            grace = ?GRACE,
            "connections still open after the grace period: closed"
        ),
    }
    // Whatever a connection task still holds, it holds no recording: the file can be closed.
    state.drop_recording();
    Ok(())
}

/// Prints the page's URL and serves it on `listener` (bound before anything was loaded) until `shutdown`
/// resolves.
pub async fn serve(
    state: Arc<AppState>,
    listener: std::net::TcpListener,
    options: &ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() {
        say!(
            "memwatch: WARNING: serving on {addr}, reachable from other hosts; requests must \
             carry the token, and name this host as {} or a name given with --allow-host",
            if addr.ip().is_unspecified() {
                "127.0.0.1 or localhost".to_owned()
            } else {
                addr.ip().to_string()
            }
        );
    }
    // The token is shown on a terminal only: stderr kept in a log or a journal never holds it.
    let fragment = match options.token.as_deref() {
        Some(t) if std::io::IsTerminal::is_terminal(&std::io::stderr()) => format!("#token={t}"),
        Some(_) => " (open it with #token=TOKEN appended, TOKEN being the one you gave)".to_owned(),
        None => String::new(),
    };
    say!("memwatch: page at http://{addr}/{fragment}");
    let allowed = AllowedHosts::new(addr, &options.allow_hosts);
    run(
        Arc::clone(&state),
        listener,
        router(state, allowed),
        shutdown,
    )
    .await
}

/// Serves `/metrics` alone (`record --metrics`) on `listener` until `shutdown` resolves. A
/// non-loopback address needs a token: checked by the caller before anything is loaded.
pub async fn serve_metrics(
    state: Arc<AppState>,
    listener: std::net::TcpListener,
    allow_hosts: &[String],
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    say!("memwatch: metrics at http://{addr}/metrics");
    let allowed = AllowedHosts::new(addr, allow_hosts);
    run(
        Arc::clone(&state),
        listener,
        metrics_router(state, allowed),
        shutdown,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_for_every_listener() {
        let open: SocketAddr = "0.0.0.0:7070".parse().unwrap();
        let lo: SocketAddr = "127.0.0.1:7070".parse().unwrap();
        assert!(check_exposure("--listen", lo, "--token", None).is_ok());
        assert!(check_exposure("--listen", open, "--token", Some("t")).is_ok());
        let page = check_exposure("--listen", open, "--token", None).unwrap_err();
        let metrics = check_exposure("--metrics", open, "--metrics-token", None).unwrap_err();
        assert_eq!(
            page.0,
            "--listen 0.0.0.0:7070 is reachable from other hosts, and what memwatch serves names \
             your routes, requests and processes: pass --token TOKEN, or listen on 127.0.0.1"
        );
        assert_eq!(
            metrics.0,
            page.0
                .replace("--listen", "--metrics")
                .replace("--token", "--metrics-token")
        );
    }
}
