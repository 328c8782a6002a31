//! One connection, served start to finish on its own thread: read a request, handle it, write
//! the response in one write, log it, repeat while the connection is kept alive. Pipelined
//! requests already buffered are served in order before reading again.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant, SystemTime};

use crate::accesslog::{AccessLog, Entry};
use crate::mem;
use crate::request::{self, Head, Parse};

/// Bytes asked for per read.
const READ_SIZE: usize = 8 * 1024;
/// Largest request body accepted (and discarded).
const MAX_BODY: usize = 1024 * 1024;
/// Largest `kb` for `/leak` and `/churn`: 1 GiB.
const MAX_KIB: u64 = 1024 * 1024;
/// Largest `ms` for `/slow`.
const MAX_MS: u64 = 60_000;

/// State shared by all connection threads.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The access log, if one was asked for.
    pub log: Option<AccessLog>,
    /// No per-request or error output on stderr.
    pub quiet: bool,
}

/// How serving a connection ended, short of an error.
enum Ending {
    /// The client closed, asked to close, or sent something unservable.
    Done,
    /// `/vanish`: the thread ends mid-request, neither answering nor closing the socket.
    Vanish,
}

/// Status of the reply `/vanish` never sends.
const VANISH: u16 = 0;

/// Serves `stream` until the client closes, asks to close, or sends something unservable.
pub(crate) fn serve(mut stream: TcpStream, peer: SocketAddr, shared: &Shared) {
    let result = serve_inner(&mut stream, peer, shared);
    if let Ok(Ending::Vanish) = result {
        // A thread that dies mid-request, as a crashed worker thread would: the socket stays
        // open (its fd leaks) and the client never gets an answer.
        std::mem::forget(stream);
        return;
    }
    if let Err(e) = result
        && !shared.quiet
        && !matches!(
            e.kind(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
        )
    {
        eprintln!("memwatch-demo: connection from {peer}: {e}");
    }
}

/// What a handler answers.
struct Reply {
    status: u16,
    body: String,
}

impl Reply {
    fn new(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            body: body.into(),
        }
    }
}

fn serve_inner(stream: &mut TcpStream, peer: SocketAddr, shared: &Shared) -> io::Result<Ending> {
    let mut buf: Vec<u8> = Vec::with_capacity(READ_SIZE);
    // When the first byte of the request at the front of `buf` was read.
    let mut received: Option<(SystemTime, Instant)> = None;
    loop {
        let head = match request::parse(&buf) {
            Parse::Partial => {
                let was_empty = buf.is_empty();
                if read_more(stream, &mut buf)? == 0 {
                    return Ok(Ending::Done);
                }
                if was_empty {
                    received = Some((SystemTime::now(), Instant::now()));
                }
                continue;
            }
            Parse::Reject(rejection) => {
                let reply = Reply::new(rejection.status, format!("{}\n", rejection.reason));
                let sent = respond(stream, &reply, false, false)?;
                finish(
                    shared,
                    peer,
                    received,
                    rejection.request_line.as_deref(),
                    None,
                    &reply,
                    sent,
                );
                return Ok(Ending::Done);
            }
            Parse::Complete(head) => head,
        };
        // A body over the limit is refused (and the connection closed) without reading it.
        let (reply, keep_alive) = if head.content_length > MAX_BODY {
            (Reply::new(413, "request body too large\n"), false)
        } else {
            let total = head.len + head.content_length;
            while buf.len() < total {
                if read_more(stream, &mut buf)? == 0 {
                    return Ok(Ending::Done);
                }
            }
            buf.drain(..total);
            (handle(&head), head.keep_alive)
        };
        if reply.status == VANISH {
            return Ok(Ending::Vanish);
        }
        let sent = respond(stream, &reply, keep_alive, head.method == "HEAD")?;
        finish(
            shared,
            peer,
            received,
            Some(&head.request_line),
            Some(&head),
            &reply,
            sent,
        );
        if !keep_alive {
            return Ok(Ending::Done);
        }
        // A pipelined request already read started arriving now, as far as we can tell.
        received = (!buf.is_empty()).then(|| (SystemTime::now(), Instant::now()));
    }
}

/// One read into the end of `buf`; returns the byte count (0 at end of stream).
fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    let old = buf.len();
    buf.resize(old + READ_SIZE, 0);
    let result = loop {
        match stream.read(&mut buf[old..]) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => break other,
        }
    };
    let n = *result.as_ref().unwrap_or(&0);
    buf.truncate(old + n);
    result
}

/// Writes the whole response (status line, headers, body) with one `write_all`; returns the body
/// bytes sent.
fn respond(
    stream: &mut TcpStream,
    reply: &Reply,
    keep_alive: bool,
    head_only: bool,
) -> io::Result<usize> {
    let body = if head_only { "" } else { reply.body.as_str() };
    let message = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n{body}",
        reply.status,
        reason(reply.status),
        reply.body.len(),
        if keep_alive { "keep-alive" } else { "close" },
    );
    stream.write_all(message.as_bytes())?;
    Ok(body.len())
}

/// Logs a finished response.
fn finish(
    shared: &Shared,
    peer: SocketAddr,
    received: Option<(SystemTime, Instant)>,
    request_line: Option<&[u8]>,
    head: Option<&Head>,
    reply: &Reply,
    body_bytes: usize,
) {
    let (received_at, started) = received.unwrap_or_else(|| (SystemTime::now(), Instant::now()));
    if let Some(log) = &shared.log {
        let entry = Entry {
            client: peer.ip(),
            received: received_at,
            request_line,
            status: reply.status,
            body_bytes,
            referer: head.and_then(|h| h.referer.as_deref()),
            user_agent: head.and_then(|h| h.user_agent.as_deref()),
        };
        if let Err(e) = log.write(&entry)
            && !shared.quiet
        {
            eprintln!("memwatch-demo: access log: {e}");
        }
    }
    if !shared.quiet {
        let line = request_line.map_or_else(|| "-".into(), String::from_utf8_lossy);
        eprintln!(
            "{} \"{}\" {} {}B {:.3}ms",
            peer.ip(),
            line.escape_debug(),
            reply.status,
            body_bytes,
            started.elapsed().as_secs_f64() * 1e3
        );
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        _ => "Unknown",
    }
}

/// Dispatches on the path; any method is accepted (HEAD gets no body).
fn handle(head: &Head) -> Reply {
    let target = head.target.as_slice();
    let (path, query) = match target.iter().position(|&b| b == b'?') {
        Some(q) => (&target[..q], &target[q + 1..]),
        None => (target, &b""[..]),
    };
    match path {
        b"/" => Reply::new(200, "ok\n"),
        b"/leak" => match number(query, b"kb", MAX_KIB) {
            Ok(kb) => match mem::leak(kb) {
                Ok(()) => Reply::new(200, format!("leaked {kb} KiB\n")),
                Err(e) => Reply::new(500, format!("mmap failed: {e}\n")),
            },
            Err(reply) => reply,
        },
        b"/churn" => match number(query, b"kb", MAX_KIB) {
            Ok(kb) => match mem::churn(kb) {
                Ok(()) => Reply::new(200, format!("churned {kb} KiB\n")),
                Err(e) => Reply::new(500, format!("mmap failed: {e}\n")),
            },
            Err(reply) => reply,
        },
        b"/reuse" => match number(query, b"kb", MAX_KIB) {
            Ok(kb) => match mem::reuse(kb) {
                Ok(()) => Reply::new(200, format!("reused {kb} KiB\n")),
                Err(e) => Reply::new(500, format!("allocation failed: {e}\n")),
            },
            Err(reply) => reply,
        },
        b"/deferred" => match number(query, b"kb", MAX_KIB) {
            Ok(kb) => match mem::deferred(kb) {
                Ok(()) => Reply::new(200, format!("handed {kb} KiB to the collector\n")),
                Err(e) => Reply::new(500, format!("mmap failed: {e}\n")),
            },
            Err(reply) => reply,
        },
        b"/vanish" => match number(query, b"kb", MAX_KIB) {
            Ok(kb) => match mem::leak(kb) {
                Ok(()) => Reply::new(VANISH, ""),
                Err(e) => Reply::new(500, format!("mmap failed: {e}\n")),
            },
            Err(reply) => reply,
        },
        b"/slow" => match number(query, b"ms", MAX_MS) {
            Ok(ms) => {
                std::thread::sleep(Duration::from_millis(ms));
                Reply::new(200, format!("slept {ms} ms\n"))
            }
            Err(reply) => reply,
        },
        _ => Reply::new(404, "not found\n"),
    }
}

/// The decimal query parameter `key` (first occurrence), in `0..=max`; a 400 reply otherwise.
fn number(query: &[u8], key: &[u8], max: u64) -> Result<u64, Reply> {
    let value = query
        .split(|&b| b == b'&')
        .find_map(|pair| pair.strip_prefix(key)?.strip_prefix(b"="));
    let key = String::from_utf8_lossy(key);
    let parsed = value
        .filter(|v| !v.is_empty() && v.len() <= 20 && v.iter().all(u8::is_ascii_digit))
        .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok())
        .filter(|&n| n <= max);
    parsed.ok_or_else(|| Reply::new(400, format!("{key} must be an integer from 0 to {max}\n")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_numbers() {
        assert_eq!(number(b"kb=12", b"kb", 100).ok(), Some(12));
        assert_eq!(number(b"x=1&kb=0&kb=5", b"kb", 100).ok(), Some(0));
        for bad in [
            &b""[..],
            b"kb",
            b"kb=",
            b"kb=-1",
            b"kb=1x",
            b"kb=101",
            b"kbb=1",
            b"kb=99999999999999999999999",
        ] {
            let reply = number(bad, b"kb", 100).unwrap_err();
            assert_eq!(reply.status, 400, "{bad:?}");
        }
    }
}
