//! One connection's read side: captured reads in, request heads (or a non-HTTP verdict) out.

use std::collections::VecDeque;

use super::http::{
    NonHttpKind,
    stream::{ReadMeta, RequestStream, StreamEvent},
};

/// A request head, reduced to what the recording keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub method: Option<String>,
    pub target: Option<String>,
    pub host: Option<String>,
}

/// The request heads one read completed: one, held inline, unless pipelined.
pub type Heads = smallvec::SmallVec<[Head; 1]>;

/// What a read told us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// One or more request heads completed (several when pipelined).
    Requests(Heads),
    /// Nothing new yet: a head still incomplete, or body bytes.
    More,
    /// The bytes are not HTTP/1.x; the kind's stable name.
    NonHttp(NonHttp),
}

/// Kinds of traffic that is not HTTP/1.x, counted in the recording under these names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonHttp {
    Http(NonHttpKind),
    /// A request head that never completed before the next response or close.
    Incomplete,
}

impl NonHttp {
    pub fn name(self) -> &'static str {
        match self {
            Self::Http(k) => k.as_str(),
            Self::Incomplete => "incomplete",
        }
    }
}

/// Per-connection state in user space.
#[derive(Debug, Default)]
pub struct ConnTrack {
    /// The connection's number in this recording (1, 2, ... in order first seen): the
    /// `conn` column. Small integers keep request rows short on disk.
    pub serial: u64,
    stream: RequestStream,
    /// Requests read on this connection and not yet answered, oldest first.
    pub awaiting: VecDeque<i64>,
    /// The request whose response is being written.
    pub responding: Option<i64>,
    /// Set once the connection is known not to carry HTTP/1.x; it is then ignored.
    pub non_http: Option<NonHttp>,
    /// Bytes read since the current request phase began, and requests found in it.
    phase_bytes: u64,
    phase_requests: usize,
    /// The phase's bytes were already counted as not a request (oversized, malformed): its end
    /// is not an incomplete head as well.
    phase_counted: bool,
    /// The phase that just ended left the start of the next head buffered: the next phase
    /// carries it on rather than parsing afresh (see [`Self::abandon_phase`]).
    carry_head: bool,
}

impl ConnTrack {
    /// A connection seen for the first time, numbered `serial`.
    pub fn new(serial: u64) -> Self {
        Self {
            serial,
            ..Self::default()
        }
    }

    /// Feeds a read. Call [`Self::abandon_phase`] first when `start`. `start` is true for the read that begins a request (after a response, or
    /// the connection's first): the parser starts afresh at a head boundary there, since body
    /// bytes beyond the capture are not sent by the kernel side.
    pub fn push(&mut self, captured: &[u8], real_len: u64, start: bool) -> Parsed {
        if start && !std::mem::take(&mut self.carry_head) {
            self.stream.restart();
        }
        self.phase_bytes += real_len;
        self.feed(captured, real_len)
    }

    fn feed(&mut self, captured: &[u8], real_len: u64) -> Parsed {
        let mut heads = Heads::new();
        for ev in self.stream.push(captured, ReadMeta::new(real_len, ())) {
            match ev {
                StreamEvent::Request(r) => {
                    // The target's bytes become the string without a copy when valid UTF-8.
                    let target = String::from_utf8(r.target)
                        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
                    heads.push(Head {
                        method: Some(r.method),
                        target: Some(target),
                        host: r.host,
                    });
                }
                StreamEvent::NotRequest { kind, .. } if heads.is_empty() => {
                    self.phase_counted = true;
                    return Parsed::NonHttp(NonHttp::Http(kind));
                }
                StreamEvent::NotRequest { .. } | StreamEvent::LostSync { .. } => break,
            }
        }
        if heads.is_empty() {
            Parsed::More
        } else {
            self.phase_requests += heads.len();
            Parsed::Requests(heads)
        }
    }

    /// Ends the current phase; `Some` when bytes were read but no request completed.
    ///
    /// A phase that completed a request and then buffered the start of another head ends with
    /// that start kept for the next: a server thread can read the first bytes of the next
    /// request before the thread that wrote the response has left its write (Go's net/http
    /// reads one byte in the background while a handler runs), so the kernel side counts that
    /// read as more of the last request and the rest of the head as a new one.
    pub fn abandon_phase(&mut self) -> Option<NonHttp> {
        self.carry_head = self.phase_requests > 0 && self.stream.partial_head();
        let incomplete = self.phase_bytes > 0 && self.phase_requests == 0 && !self.phase_counted;
        self.phase_bytes = 0;
        self.phase_requests = 0;
        self.phase_counted = false;
        incomplete.then_some(NonHttp::Incomplete)
    }
}

impl NonHttp {
    /// TLS, HTTP/2 and binary traffic make the whole connection not HTTP/1.x; an oversized,
    /// malformed or incomplete head spoils only its own request.
    pub fn is_permanent(self) -> bool {
        use NonHttpKind as K;
        matches!(self, Self::Http(K::Tls | K::Http2 | K::Binary))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A head too long for the capture is counted once, as oversized, not also as incomplete
    /// when its connection closes.
    #[test]
    fn an_oversized_head_is_not_also_incomplete() {
        let mut c = ConnTrack::default();
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(16 * 1024));
        let captured = &long.as_bytes()[..512];
        assert_eq!(
            c.push(captured, long.len() as u64, true),
            Parsed::NonHttp(NonHttp::Http(NonHttpKind::Oversized))
        );
        assert_eq!(c.abandon_phase(), None);
        // The next phase counts afresh.
        assert_eq!(c.push(b"GET /a HT", 9, true), Parsed::More);
        assert_eq!(c.abandon_phase(), Some(NonHttp::Incomplete));
    }

    #[test]
    fn split_request_line_completes() {
        let mut c = ConnTrack::default();
        let req = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n";
        let mut got = Vec::new();
        for (i, b) in req.iter().enumerate() {
            match c.push(&[*b], 1, i == 0) {
                Parsed::Requests(h) => got.extend(h),
                Parsed::More => {}
                Parsed::NonHttp(k) => panic!("unexpected {k:?}"),
            }
        }
        assert_eq!(
            got,
            vec![Head {
                method: Some("GET".into()),
                target: Some("/x".into()),
                host: Some("a".into())
            }]
        );
    }

    #[test]
    fn pipelined_three() {
        let mut c = ConnTrack::default();
        let data = b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\n\r\n";
        match c.push(data, data.len() as u64, true) {
            Parsed::Requests(h) => assert_eq!(h.len(), 3),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn tls_is_not_http() {
        let mut c = ConnTrack::default();
        let hello = [
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
        ];
        assert_eq!(
            c.push(&hello, 517, true),
            Parsed::NonHttp(NonHttp::Http(NonHttpKind::Tls))
        );
    }

    /// The first byte of the next request read before the response's write was seen to end
    /// (so as more of the last request), the rest read after it: one request, not a malformed
    /// head.
    #[test]
    fn a_heads_first_byte_read_before_the_response_ended_is_kept() {
        let mut c = ConnTrack::default();
        let first = b"GET /a HTTP/1.1\r\n\r\n";
        assert!(matches!(c.push(first, 19, true), Parsed::Requests(h) if h.len() == 1));
        assert_eq!(c.push(b"G", 1, false), Parsed::More);
        assert_eq!(c.abandon_phase(), None);
        assert_eq!(
            c.push(b"ET /b HTTP/1.1\r\n\r\n", 18, true),
            Parsed::Requests(smallvec::smallvec![Head {
                method: Some("GET".into()),
                target: Some("/b".into()),
                host: None,
            }])
        );
        // The phase after it parses afresh again.
        assert_eq!(c.abandon_phase(), None);
        assert_eq!(c.push(b"GET /c", 6, true), Parsed::More);
        assert_eq!(c.abandon_phase(), Some(NonHttp::Incomplete));
        assert!(matches!(
            c.push(b"GET /d HTTP/1.1\r\n\r\n", 19, true),
            Parsed::Requests(h) if h.len() == 1
        ));
    }

    #[test]
    fn incomplete_head_reported_at_next_phase() {
        let mut c = ConnTrack::default();
        assert_eq!(c.abandon_phase(), None);
        assert_eq!(c.push(b"GET /aaaa", 9, true), Parsed::More);
        assert_eq!(c.abandon_phase(), Some(NonHttp::Incomplete));
        assert!(matches!(
            c.push(b"GET / HTTP/1.1\r\n\r\n", 18, true),
            Parsed::Requests(_)
        ));
    }
}
