//! memwatch-demo: a small thread-per-request HTTP/1.1 server whose memory behaviour is known
//! exactly, for testing memwatch.
//!
//! One accept loop; one OS thread per connection, so the thread that reads a request is the
//! thread that serves it and its memory syscalls and page faults happen on that thread.
//!
//! Endpoints (any method; `HEAD` gets no body):
//! - `/` → 200 `ok`.
//! - `/leak?kb=N` → maps N KiB (rounded up to pages) with anonymous `mmap`, writes one byte per
//!   4 KiB page and keeps it forever. 200 `leaked N KiB`.
//! - `/churn?kb=N` → the same mapping, touched, then `munmap`ed: no net growth. 200.
//! - `/reuse?kb=N` → writes N KiB of one process-wide buffer that only grows: memory is kept once
//!   (the high-water mark), then reused by every later request. 200.
//! - `/deferred?kb=N` → maps and touches N KiB and hands it to a collector thread that unmaps it
//!   200 ms later: freed after the request, by another thread, as a garbage collector does. 200.
//! - `/slow?ms=N` → sleeps N ms. 200.
//! - `/vanish?kb=N` → maps and touches N KiB that are never freed, then the connection's thread
//!   ends without answering or closing the socket (a worker thread dying mid-request).
//! - anything else → 404. N out of range (kb ≤ 1048576, ms ≤ 60000) or missing → 400; a request
//!   that is not HTTP/1.x → 400 and close; `Transfer-Encoding` → 501; a body over 1 MiB → 413.

mod accesslog;
mod conn;
mod mem;
mod request;

use std::ffi::OsString;
use std::io::{self, Write};
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use accesslog::AccessLog;
use conn::Shared;

const USAGE: &str = "\
usage: memwatch-demo [--listen ADDR] [--access-log PATH] [--quiet]

  --listen ADDR       address to listen on (default 127.0.0.1:0; port 0 picks a free port).
                      The first stdout line is `listening on IP:PORT`.
  --access-log PATH   append a combined-format access log line per response to PATH
  --quiet             no per-request or error lines on stderr

endpoints: /  /leak?kb=N  /churn?kb=N  /reuse?kb=N  /deferred?kb=N  /slow?ms=N  /vanish?kb=N";

/// Command-line arguments.
#[derive(Debug, PartialEq, Eq)]
struct Args {
    listen: String,
    access_log: Option<PathBuf>,
    quiet: bool,
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    Serve(Args),
    Help,
}

fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Command, String> {
    let mut parsed = Args {
        listen: "127.0.0.1:0".to_owned(),
        access_log: None,
        quiet: false,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let arg = arg
            .into_string()
            .map_err(|a| format!("argument is not UTF-8: {a:?}"))?;
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(OsString::from(v))),
            _ => (arg, None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "--listen" => {
                parsed.listen = value("--listen")?
                    .into_string()
                    .map_err(|a| format!("--listen is not UTF-8: {a:?}"))?;
            }
            "--access-log" => parsed.access_log = Some(PathBuf::from(value("--access-log")?)),
            "--quiet" | "-q" => parsed.quiet = true,
            "--help" | "-h" => return Ok(Command::Help),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Command::Serve(parsed))
}

/// Set when SIGINT or SIGTERM arrived.
static SHUTDOWN: AtomicBool = AtomicBool::new(false);

/// Blocks SIGINT and SIGTERM in this thread (and so in every thread spawned later) and returns
/// the set, for `sigwait`.
fn block_exit_signals() -> libc::sigset_t {
    // SAFETY: `sigset_t` is plain data; sigemptyset initialises it before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable sigset_t; the calls only touch it and this thread's mask.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    set
}

/// Waits for SIGINT/SIGTERM on a thread of its own, then stops the accept loop by shutting the
/// listening socket down (a blocked `accept` then fails).
fn spawn_signal_waiter(set: libc::sigset_t, listener_fd: i32) -> io::Result<()> {
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut signal = 0;
            // SAFETY: `set` is initialised and `signal` is writable; sigwait only reads/writes them.
            while unsafe { libc::sigwait(&set, &mut signal) } != 0 {}
            SHUTDOWN.store(true, Ordering::SeqCst);
            // SAFETY: shutting down a socket descriptor owned by the listener, which lives until
            // the process exits; no memory is involved.
            unsafe { libc::shutdown(listener_fd, libc::SHUT_RDWR) };
        })
        .map(drop)
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args_os().skip(1)) {
        Ok(Command::Serve(args)) => args,
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("memwatch-demo: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("memwatch-demo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> io::Result<()> {
    let signals = block_exit_signals();
    let log = match &args.access_log {
        Some(path) => Some(AccessLog::open(path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot open access log {}: {e}", path.display()),
            )
        })?),
        None => None,
    };
    let listener = TcpListener::bind(&args.listen)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {}: {e}", args.listen)))?;
    let addr = listener.local_addr()?;
    {
        let mut stdout = io::stdout().lock();
        writeln!(stdout, "listening on {addr}")?;
        stdout.flush()?;
    }
    spawn_signal_waiter(signals, listener.as_raw_fd())?;

    let shared = Arc::new(Shared {
        log,
        quiet: args.quiet,
    });
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                let shared = Arc::clone(&shared);
                let spawned = std::thread::Builder::new()
                    .name("conn".into())
                    .spawn(move || conn::serve(stream, peer, &shared));
                if let Err(e) = spawned
                    && !args.quiet
                {
                    eprintln!("memwatch-demo: cannot start a thread for {peer}: {e}");
                }
            }
            Err(_) if SHUTDOWN.load(Ordering::SeqCst) => return Ok(()),
            Err(e) => {
                if !args.quiet {
                    eprintln!("memwatch-demo: accept: {e}");
                }
                // Out of descriptors or similar: do not spin.
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, String> {
        parse_args(args.iter().map(OsString::from))
    }

    #[test]
    fn arguments() {
        assert_eq!(
            parse(&[]),
            Ok(Command::Serve(Args {
                listen: "127.0.0.1:0".into(),
                access_log: None,
                quiet: false
            }))
        );
        assert_eq!(
            parse(&[
                "--listen",
                "0.0.0.0:8080",
                "--access-log=/tmp/a.log",
                "--quiet"
            ]),
            Ok(Command::Serve(Args {
                listen: "0.0.0.0:8080".into(),
                access_log: Some("/tmp/a.log".into()),
                quiet: true
            }))
        );
        assert_eq!(parse(&["-h"]), Ok(Command::Help));
        assert!(parse(&["--listen"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
    }
}
