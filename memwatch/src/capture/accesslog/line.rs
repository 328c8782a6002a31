//! One parsed access-log line.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, FixedOffset, TimeDelta};

/// What instant a line's timestamp marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeAnchor {
    /// When the request was received: Apache's `%t` and `%{begin:...}t`.
    RequestStart,
    /// When the response was finished (the log was written): nginx's `$time_local`, Apache's
    /// `%{end:...}t`.
    ResponseEnd,
}

/// A parsed access-log line. Absent fields and `-` are `None`.
///
/// Text fields are decoded (Apache `\"`, `\xhh` and nginx `\xHH` escapes), except
/// [`request_line`](Self::request_line), which is kept exactly as logged so that binary garbage
/// stays printable.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessLine {
    /// Client address (`%h`, `%a`): an IPv4/IPv6 address, a host name, or an
    /// `X-Forwarded-For`-style list `"10.0.0.2, 10.0.0.1"` (see [`AccessLine::client_addrs`]).
    pub client: Option<String>,
    /// RFC 1413 identity (`%l`), almost always `None`.
    pub ident: Option<String>,
    /// Authenticated user (`%u`).
    pub user: Option<String>,
    /// The line's timestamp, with the offset it was written in; see [`AccessLine::time_anchor`].
    pub time: Option<DateTime<FixedOffset>>,
    /// What instant [`time`](Self::time) marks.
    pub time_anchor: TimeAnchor,
    /// The request line (`%r`) as logged, escapes included: `GET /x HTTP/1.1`, `-`, ``,
    /// `\x16\x03\x01`. `None` if the format has no `%r`.
    pub request_line: Option<String>,
    /// Request method, if the request line is a valid HTTP request (or from `%m`).
    pub method: Option<String>,
    /// Request target, path and query (`/a?b=1`), decoded, if the request is valid (or from
    /// `%U%q`).
    pub target: Option<String>,
    /// Protocol, e.g. `HTTP/1.1` (from `%r` or `%H`); see [`AccessLine::http_version`].
    pub protocol: Option<String>,
    /// Final status (`%>s`, `%s`).
    pub status: Option<u16>,
    /// Response size in bytes (`%b`, `%B`, or `%O` when it is the only size); `None` for `-`.
    pub bytes: Option<u64>,
    /// `%{Referer}i`.
    pub referer: Option<String>,
    /// `%{User-Agent}i`.
    pub user_agent: Option<String>,
    /// Time taken to serve the request in microseconds (`%D`, or `%T` scaled).
    pub duration_us: Option<u64>,
    /// Virtual host (`%v`, `%V`), without a `:port` suffix.
    pub vhost: Option<String>,
    /// Other directives' values, keyed by the directive as written in the format, e.g.
    /// `%{X-Forwarded-For}i`, `%p`, `%I`. `-` values are left out.
    pub fields: BTreeMap<String, String>,
    /// Extra fields after the end of the format (e.g. nginx's `"$http_x_forwarded_for"` appended
    /// to `combined`), decoded, quotes removed.
    pub trailing: Vec<String>,
}

impl AccessLine {
    /// An empty line (every field `None`).
    pub(crate) fn empty(time_anchor: TimeAnchor) -> Self {
        Self {
            client: None,
            ident: None,
            user: None,
            time: None,
            time_anchor,
            request_line: None,
            method: None,
            target: None,
            protocol: None,
            status: None,
            bytes: None,
            referer: None,
            user_agent: None,
            duration_us: None,
            vhost: None,
            fields: BTreeMap::new(),
            trailing: Vec::new(),
        }
    }

    /// `true` if the request line was a valid HTTP request (method and target known).
    pub fn has_valid_request(&self) -> bool {
        self.method.is_some() && self.target.is_some()
    }

    /// The HTTP version without `HTTP/`: `1.1`, `2.0`.
    pub fn http_version(&self) -> Option<&str> {
        self.protocol.as_deref()?.strip_prefix("HTTP/")
    }

    /// The addresses in [`client`](Self::client), split on commas: for `"10.0.0.2, 10.0.0.1"`,
    /// `["10.0.0.2", "10.0.0.1"]`. The last one is the peer that connected.
    pub fn client_addrs(&self) -> impl Iterator<Item = &str> {
        self.client
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(|s| s.trim_matches(|c: char| c == ' ' || c == '"'))
            .filter(|s| !s.is_empty())
    }

    /// Best estimate of when the response ended, at the timestamp's resolution (one second for
    /// `%t`): the time itself for [`TimeAnchor::ResponseEnd`], time + duration for
    /// [`TimeAnchor::RequestStart`] when the duration was logged, else the time itself.
    pub fn approx_response_end(&self) -> Option<DateTime<FixedOffset>> {
        let time = self.time?;
        match (self.time_anchor, self.duration_us) {
            (TimeAnchor::RequestStart, Some(us)) => {
                let us = i64::try_from(us).ok()?;
                time.checked_add_signed(TimeDelta::microseconds(us))
            }
            (TimeAnchor::RequestStart, None) | (TimeAnchor::ResponseEnd, _) => Some(time),
        }
    }
}

/// Shows only the fields that are present, on one line.
impl fmt::Debug for AccessLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            client,
            ident,
            user,
            time,
            time_anchor,
            request_line,
            method,
            target,
            protocol,
            status,
            bytes,
            referer,
            user_agent,
            duration_us,
            vhost,
            fields,
            trailing,
        } = self;
        let mut d = f.debug_struct("AccessLine");
        fn opt<'a, 'b, T: fmt::Debug>(
            d: &mut fmt::DebugStruct<'a, 'b>,
            name: &str,
            value: Option<&T>,
        ) {
            if let Some(v) = value {
                d.field(name, v);
            }
        }
        opt(&mut d, "vhost", vhost.as_ref());
        opt(&mut d, "client", client.as_ref());
        opt(&mut d, "ident", ident.as_ref());
        opt(&mut d, "user", user.as_ref());
        if let Some(t) = time {
            d.field(
                "time",
                &format_args!("{} ({time_anchor:?})", t.to_rfc3339()),
            );
        }
        opt(&mut d, "request_line", request_line.as_ref());
        opt(&mut d, "method", method.as_ref());
        opt(&mut d, "target", target.as_ref());
        opt(&mut d, "protocol", protocol.as_ref());
        opt(&mut d, "status", status.as_ref());
        opt(&mut d, "bytes", bytes.as_ref());
        opt(&mut d, "duration_us", duration_us.as_ref());
        opt(&mut d, "referer", referer.as_ref());
        opt(&mut d, "user_agent", user_agent.as_ref());
        if !fields.is_empty() {
            d.field("fields", fields);
        }
        if !trailing.is_empty() {
            d.field("trailing", trailing);
        }
        d.finish()
    }
}
