//! Access logs: formats, parsing, tailing.
//!
//! A web server's access log is one of memwatch's sources: each line says which request was
//! served, when, with what status and (with `%D`/`%T`) how long it took. This module turns lines
//! into [`AccessLine`]s and follows the file through rotation. It is pure logic: no threads, no
//! async; the caller polls.
//!
//! - [`Format`]: a built-in format by name (`combined`, `common`, `vhost_combined`, `nginx`) or
//!   any Apache `LogFormat` string, compiled once into a matcher (no regex).
//! - [`detect_format`]: picks a built-in format from the first lines.
//! - [`LogParser`]: parses lines with one format and keeps [`IngestCounts`]. A line that does not
//!   parse is a [`Reject`] with a [`RejectReason`]; it never stops ingestion.
//! - [`Tailer`]: follows a file by name through rename-and-create and copytruncate rotation.
//!
//! All input is treated as hostile: lines are bounded ([`MAX_LINE_LEN`]), rejected text is
//! bounded ([`MAX_REJECT_RAW`]), and parsing never panics (see the `accesslog_line` fuzz target).
//! See `docs/accesslog.md` for formats, escaping, rejects and tailing semantics.
//!
//! ```no_run
//! use memwatch::capture::accesslog::{LogParser, StartAt, TailOptions, Tailer, detect_format, Format};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut tailer = Tailer::new("/var/log/nginx/access.log", TailOptions {
//!     start: StartAt::Beginning,
//!     ..TailOptions::default()
//! });
//! let first = tailer.poll()?;
//! // Or Format::from_name_or_log_format("%h %l %u %t \"%r\" %>s %b %D")?
//! let format: Format = detect_format(&first)?.format;
//! let mut parser = LogParser::new(format);
//! let mut batch = first;
//! loop {
//!     for line in &batch {
//!         match parser.parse(line) {
//!             Ok(l) => tracing::info!(?l.method, ?l.target, ?l.status, ?l.time, "request"),
//!             Err(reject) => tracing::debug!(%reject, "skipped"),
//!         }
//!     }
//!     std::thread::sleep(std::time::Duration::from_millis(200));
//!     batch = tailer.poll()?;
//! #   break;
//! }
//! tracing::info!(counts = ?parser.counts(), "done");
//! # Ok(())
//! # }
//! ```

mod counts;
mod detect;
mod error;
mod escape;
mod format;
mod line;
mod parse;
mod request;
mod tail;
mod time;

pub use counts::IngestCounts;
pub use detect::{DETECT_SAMPLE_LINES, Detection, detect_format};
pub use error::AccessLogError;
pub use format::{BUILTIN_NAMES, Format};
pub use line::{AccessLine, TimeAnchor};
pub use parse::{LogParser, MAX_LINE_LEN, MAX_REJECT_RAW, Reject, RejectReason};
pub use tail::{StartAt, TailOptions, Tailer};

#[cfg(test)]
mod tests;
