//! Who may talk to the page server: the `Host` (and, on the API, the `Origin`) a request names
//! must be one the user can have meant, and a token, when one is set, must be carried.
//!
//! The `Host` check stops DNS rebinding: a web page the user visits can make its own name
//! resolve to 127.0.0.1 and then read the API from the browser, but its requests still say
//! `Host: evil.example`. `Origin` is checked too where a browser sends it, so that another
//! site's script is refused even when the `Host` is right.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    extract::{Request, State},
    http::{StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::{ApiError, AppState};

/// The names a request's `Host` may give, and the port they must name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHosts {
    /// Lowercase host names and IP literals (IPv6 in brackets), each with the port it must
    /// name (`None`: the port the server listens on).
    names: Vec<(String, Option<u16>)>,
    /// The port the server listens on.
    port: u16,
}

impl AllowedHosts {
    /// 127.0.0.1, localhost and [::1], the address the server listens on (unless it is the
    /// unspecified address, which no client names), and `extra` (`--allow-host`: `NAME` or
    /// `NAME:PORT`).
    pub fn new(bound: SocketAddr, extra: &[String]) -> Self {
        let mut names: Vec<(String, Option<u16>)> = ["127.0.0.1", "localhost", "[::1]"]
            .iter()
            .map(|n| ((*n).to_owned(), None))
            .collect();
        if !bound.ip().is_unspecified() {
            let ip = match bound {
                SocketAddr::V4(a) => a.ip().to_string(),
                SocketAddr::V6(a) => format!("[{}]", a.ip()),
            };
            names.push((ip, None));
        }
        for e in extra {
            if let Some((name, port)) = split_host(e) {
                names.push((name, port));
            }
        }
        Self {
            names,
            port: bound.port(),
        }
    }

    /// Whether `host` (`NAME` or `NAME:PORT`, as a `Host` header gives it) is allowed. A
    /// missing port is accepted for a name that is allowed: the name is what matters.
    pub fn allows(&self, host: &str) -> bool {
        let Some((name, port)) = split_host(host) else {
            return false;
        };
        self.names.iter().any(|(allowed, allowed_port)| {
            *allowed == name && port.is_none_or(|p| p == allowed_port.unwrap_or(self.port))
        })
    }

    /// Whether an `Origin` (`http://NAME[:PORT]`) is one of the allowed hosts. `null` and any
    /// other scheme are not.
    pub fn allows_origin(&self, origin: &str) -> bool {
        let Some(rest) = origin.strip_prefix("http://") else {
            return false;
        };
        let Some((name, port)) = split_host(rest) else {
            return false;
        };
        // An origin without a port is on port 80.
        let port = port.unwrap_or(80);
        self.allows(&format!("{name}:{port}"))
    }
}

/// `NAME[:PORT]` or `[V6][:PORT]`, lowercased, without a trailing dot; `None` when it is not
/// a host at all (empty, a path, user info, a bad port).
pub fn split_host(s: &str) -> Option<(String, Option<u16>)> {
    let s = s.trim();
    if s.is_empty() || s.contains(['/', '@', ' ', '\\']) {
        return None;
    }
    let (name, port) = if let Some(rest) = s.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (format!("[{v6}]"), port)
    } else {
        match s.rsplit_once(':') {
            Some((name, port)) => (name.to_owned(), Some(port)),
            None => (s.to_owned(), None),
        }
    };
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    (!name.is_empty()).then_some((name, port))
}

/// Refuses a request whose `Host` is not allowed (421), and an API or `/metrics` request whose
/// `Origin`, when a browser sends one, is not (403).
pub(super) async fn check_host(
    State(allowed): State<Arc<AllowedHosts>>,
    req: Request,
    next: Next,
) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()));
    let Some(host) = host.clone().filter(|h| allowed.allows(h)) else {
        let shown = host.as_deref().map_or_else(
            || "no Host".to_owned(),
            |h| format!("Host {:?}", crate::units::cut(h, 100)),
        );
        return ApiError(
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "{shown} is not one memwatch answers to (127.0.0.1, localhost, [::1] and the \
                 --listen address are); to reach the page by another name, start memwatch \
                 with --allow-host NAME"
            ),
        )
        .into_response();
    };
    let path = req.uri().path();
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .map(|o| o.to_str().unwrap_or(""));
    if (path.starts_with("/api/") || path == "/metrics")
        && let Some(origin) = origin
        && !allowed.allows_origin(origin)
    {
        return ApiError(
            StatusCode::FORBIDDEN,
            format!(
                "Origin {:?} may not read this API (the page is served from {host}); to allow \
                 another name, start memwatch with --allow-host NAME",
                crate::units::cut(origin, 100)
            ),
        )
        .into_response();
    }
    next.run(req).await
}

/// Constant-time comparison, so the token cannot be guessed byte by byte from timing: every
/// byte of the longer input is looked at whatever the lengths.
pub(super) fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().max(b.len());
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..n {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    std::hint::black_box(diff) == 0
}

pub(super) async fn require_token(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn on(addr: &str, extra: &[&str]) -> AllowedHosts {
        let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        AllowedHosts::new(addr.parse().unwrap(), &extra)
    }

    #[test]
    fn token_comparison() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
        assert!(!same(b"", b"a"));
        assert!(same(b"", b""));
    }

    #[test]
    fn loopback_names_with_the_port_or_none() {
        let a = on("127.0.0.1:7070", &[]);
        for ok in [
            "127.0.0.1:7070",
            "127.0.0.1",
            "localhost:7070",
            "LOCALHOST.:7070",
            "[::1]:7070",
            "[::1]",
        ] {
            assert!(a.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example:7070",
            "evil.example",
            "127.0.0.1:7071",
            "localhost:80",
            "127.0.0.1.evil.example:7070",
            "",
            "user@127.0.0.1:7070",
            "[::1",
            "127.0.0.1:x",
        ] {
            assert!(!a.allows(bad), "{bad}");
        }
    }

    #[test]
    fn the_listen_address_and_allow_host_names() {
        let a = on("10.1.2.3:9000", &["memwatch.internal", "Proxy.Example:443"]);
        assert!(a.allows("10.1.2.3:9000"));
        assert!(a.allows("memwatch.internal:9000"));
        assert!(a.allows("proxy.example:443"));
        assert!(!a.allows("proxy.example:9000"));
        assert!(!a.allows("10.1.2.4:9000"));
        // Nobody names the unspecified address.
        let any = on("0.0.0.0:9000", &[]);
        assert!(!any.allows("0.0.0.0:9000"));
        let v6 = on("[fd00::5]:9000", &[]);
        assert!(v6.allows("[fd00::5]:9000"));
    }

    #[test]
    fn origins() {
        let a = on("127.0.0.1:7070", &["memwatch.internal:80"]);
        assert!(a.allows_origin("http://127.0.0.1:7070"));
        assert!(a.allows_origin("http://localhost:7070"));
        assert!(a.allows_origin("http://memwatch.internal"));
        assert!(!a.allows_origin("http://evil.example:7070"));
        assert!(!a.allows_origin("https://127.0.0.1:7070"));
        assert!(!a.allows_origin("null"));
        // Port 80 is implied, and 7070 is the page's: a page on localhost:80 is another origin.
        assert!(!a.allows_origin("http://localhost"));
    }
}
