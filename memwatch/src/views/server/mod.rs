//! The page and its JSON API (`docs/api.md`): axum on a loopback address by default, embedded
//! assets only, a Content-Security-Policy on every response, and an optional token.

mod api;
mod assets;

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use axum::{
    Router,
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};

use crate::{
    error::RecordingError,
    recording::Recording,
    views::metrics::{self, RouteLabels},
};

/// Served on every response: scripts and data only from this origin. uPlot sets inline
/// styles, hence `'unsafe-inline'` for styles alone.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                       img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
                       base-uri 'none'; form-action 'none'";

/// Where the page listens and what guards it (`--listen`, `--token` of `serve` and `view`).
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address for the page; port 0 picks a free port.
    pub listen: SocketAddr,
    /// A token every request must carry.
    pub token: Option<String>,
}

/// What the handlers share.
#[derive(Debug)]
pub struct AppState {
    pub recording: Mutex<Recording>,
    /// True while memwatch is still recording into the file.
    pub live: AtomicBool,
    token: Option<String>,
    pub path: PathBuf,
    /// Which routes have series of their own on `/metrics`, kept across scrapes.
    metrics: Mutex<RouteLabels>,
}

impl AppState {
    pub fn new(recording: Recording, live: bool, token: Option<String>) -> Arc<Self> {
        Self::with_max_routes(recording, live, token, metrics::DEFAULT_MAX_ROUTES)
    }

    /// [`AppState::new`], with at most `max_routes` routes labelled on `/metrics`.
    pub fn with_max_routes(
        recording: Recording,
        live: bool,
        token: Option<String>,
        max_routes: usize,
    ) -> Arc<Self> {
        let path = recording.path().to_owned();
        Arc::new(Self {
            recording: Mutex::new(recording),
            live: AtomicBool::new(live),
            token,
            path,
            metrics: Mutex::new(RouteLabels::new(max_routes)),
        })
    }

    pub fn set_live(&self, live: bool) {
        self.live.store(live, Ordering::Relaxed);
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

/// Constant-time comparison, so the token cannot be guessed byte by byte from timing.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn require_token(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Some(token) = state.token.as_deref() else {
        return next.run(req).await;
    };
    // The page itself is public (it holds no data); every API call and /metrics need the token.
    let path = req.uri().path();
    if !path.starts_with("/api/") && path != "/metrics" {
        return next.run(req).await;
    }
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let query = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="));
    if bearer
        .or(query)
        .is_some_and(|t| same(t.as_bytes(), token.as_bytes()))
    {
        next.run(req).await
    } else {
        ApiError(
            StatusCode::UNAUTHORIZED,
            "missing or wrong token: open the URL memwatch printed (it ends in #token=...), or \
             send Authorization: Bearer TOKEN"
                .into(),
        )
        .into_response()
    }
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
        let rec = state
            .recording
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut labels = state
            .metrics
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        metrics::render(&rec, &mut labels)
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    Ok(([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response())
}

/// `/metrics` alone, with the same token and headers as the page (`record --metrics`).
pub fn metrics_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// The whole router.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/api/summary", get(api::summary))
        .route("/api/timeline", get(api::timeline))
        .route("/api/endpoints", get(api::endpoints))
        .route("/api/retained", get(api::retained))
        .route("/api/requests", get(api::requests))
        .route("/api/stacks", get(api::stacks))
        .route("/api/log_lines", get(api::log_lines))
        .route("/api/stream", get(api::stream))
        .fallback(asset)
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// Binds, prints the URL, and serves until `shutdown` resolves.
pub async fn serve(
    state: Arc<AppState>,
    options: &ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|e| {
            anyhow::anyhow!(crate::error::UsageError(format!(
                "cannot listen on {}: {e}. Choose another address with --listen (port 0 picks \
                 a free one)",
                options.listen
            )))
        })?;
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() {
        say!(
            "memwatch: WARNING: serving on {addr}, reachable from other hosts{}",
            if options.token.is_some() {
                ""
            } else {
                "; anyone who can connect sees the recording (use --token)"
            }
        );
    }
    let fragment = options
        .token
        .as_deref()
        .map(|t| format!("#token={t}"))
        .unwrap_or_default();
    say!("memwatch: page at http://{addr}/{fragment}");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// Binds `/metrics` alone (`record --metrics`) and serves it until `shutdown` resolves. A
/// non-loopback address needs a token: checked by the caller before anything is loaded.
pub async fn serve_metrics(
    state: Arc<AppState>,
    listen: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        anyhow::anyhow!(crate::error::UsageError(format!(
            "cannot listen on {listen} for /metrics: {e}. Choose another address with --metrics \
             (port 0 picks a free one)"
        )))
    })?;
    let addr = listener.local_addr()?;
    say!("memwatch: metrics at http://{addr}/metrics");
    axum::serve(listener, metrics_router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
    }
}
