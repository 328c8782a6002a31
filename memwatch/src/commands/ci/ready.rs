//! `ci`'s readiness: the `--ready` URL taken apart up front, then asked with GET, through
//! hyper's HTTP/1 client, until the server answers below 500.

use std::{
    io,
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    http::{Request, Uri, header},
};
use hyper_util::rt::TokioIo;

/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the answer may take once the connection is open.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// The wait after a first refusal or 5xx, doubled after each one up to [`LONGEST_WAIT`].
const FIRST_WAIT: Duration = Duration::from_millis(20);
const LONGEST_WAIT: Duration = Duration::from_millis(500);

/// An `http://` URL: as given, where to connect (`host:port`), and what to ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ReadyUrl {
    pub url: String,
    pub authority: String,
    /// The path with its query; `/` when the URL has none.
    pub target: String,
}

impl ReadyUrl {
    /// `None` unless `url` is an `http://` URL.
    pub(super) fn parse(url: &str) -> Option<Self> {
        let uri: Uri = url.parse().ok()?;
        if uri.scheme_str() != Some("http") {
            return None;
        }
        let authority = uri.authority()?;
        let target = uri.path_and_query().map_or("/", |p| p.as_str());
        Some(Self {
            url: url.to_owned(),
            authority: format!(
                "{}:{}",
                authority.host(),
                authority.port_u16().unwrap_or(80)
            ),
            target: if target.is_empty() { "/" } else { target }.to_owned(),
        })
    }

    /// Asks until the server answers below 500, waiting longer after each refusal or 5xx, for
    /// at most `timeout`; stops at once when `alive` says the server has exited. `Err` says
    /// why it is not ready.
    pub(super) async fn wait(
        &self,
        timeout: Duration,
        alive: impl Fn() -> bool,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut wait = FIRST_WAIT;
        loop {
            if !alive() {
                return Err("the server exited before it answered".into());
            }
            let last = match get(&self.authority, &self.target).await {
                Ok(status) if status < 500 => return Ok(()),
                Ok(status) => format!("{} answered {status}", self.url),
                Err(e) => format!("{}: {e}", self.url),
            };
            if Instant::now() + wait > deadline {
                return Err(format!(
                    "not ready after {timeout:?} (last: {last}); raise --ready-timeout if it \
                     needs longer"
                ));
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(LONGEST_WAIT);
        }
    }
}

/// One `GET target` on `authority`, on a connection of its own: the status of the answer, or
/// why there is none.
pub(super) async fn get(authority: &str, target: &str) -> io::Result<u16> {
    let timed_out = |_| io::Error::from(io::ErrorKind::TimedOut);
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(authority))
        .await
        .map_err(timed_out)??;
    let request = Request::get(target)
        .header(header::HOST, authority)
        .header(header::CONNECTION, "close")
        .body(Body::empty())
        .map_err(io::Error::other)?;
    let answer = async {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(io::Error::other)?;
        // The connection is driven beside the request. Should it end first (the server answered
        // and closed), the answer, if there was one, is already in.
        let mut connection = std::pin::pin!(connection);
        let mut response = std::pin::pin!(sender.send_request(request));
        let response = tokio::select! {
            biased;
            response = &mut response => response,
            ended = &mut connection => {
                ended.map_err(io::Error::other)?;
                response.await
            }
        };
        response
            .map(|r| r.status().as_u16())
            .map_err(io::Error::other)
    };
    tokio::time::timeout(ANSWER_TIMEOUT, answer)
        .await
        .map_err(timed_out)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let parts = |url: &str| ReadyUrl::parse(url).map(|u| (u.authority, u.target));
        assert_eq!(
            parts("http://127.0.0.1:8080/health"),
            Some(("127.0.0.1:8080".into(), "/health".into()))
        );
        assert_eq!(
            parts("http://localhost"),
            Some(("localhost:80".into(), "/".into()))
        );
        assert_eq!(parts("https://x/"), None);
        assert_eq!(
            parts("http://[::1]:9000/ready?deep=1"),
            Some(("[::1]:9000".into(), "/ready?deep=1".into()))
        );
        assert_eq!(parts("not a url"), None);
    }

    /// A server that answers, one that answers 503 and closes, and one that answers with
    /// something other than HTTP: the status, the status, and an error.
    #[tokio::test]
    async fn get_reads_the_status_or_says_why_not() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let serve = |answer: &'static [u8]| async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let authority = listener.local_addr().unwrap().to_string();
            tokio::spawn(async move {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut head = [0u8; 1024];
                let _ = s.read(&mut head).await;
                let _ = s.write_all(answer).await;
            });
            authority
        };
        let ok = serve(b"HTTP/1.1 204 No Content\r\n\r\n").await;
        assert_eq!(get(&ok, "/health").await.unwrap(), 204);
        let busy =
            serve(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy").await;
        assert_eq!(get(&busy, "/").await.unwrap(), 503);
        let garbage = serve(b"SSH-2.0-OpenSSH_9.6\r\n").await;
        assert!(get(&garbage, "/").await.is_err());
        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().to_string()
        };
        assert!(get(&closed, "/").await.is_err());
    }
}
