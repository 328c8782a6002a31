//! One access log as a source of the recording's rows: its lines taken from a [`Tailer`]
//! (which follows the file through rotation and knows nothing of formats), its format given or
//! detected, and every line (parsed or rejected) turned into a [`LogLineRow`]. Nothing is
//! dropped: a reject is a row with its reason and bounded raw text. Also the check of a log's
//! path before anything is loaded.

use std::{path::PathBuf, sync::Arc};

use super::accesslog::{
    AccessLine, DETECT_SAMPLE_LINES, Format, LogParser, StartAt, TailOptions, Tailer, detect_format,
};
use crate::model::LogLineRow;

/// One access log being followed.
pub struct LogSource {
    source: Arc<str>,
    tailer: Tailer,
    parser: Option<LogParser>,
}

impl std::fmt::Debug for LogSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSource")
            .field("source", &self.source)
            .field("format", &self.format_name())
            .finish_non_exhaustive()
    }
}

impl LogSource {
    /// Follows `path`; `format` is `None` for auto-detection.
    pub fn new(path: PathBuf, format: Option<Format>, from_start: bool) -> Self {
        let source: Arc<str> = path.display().to_string().into();
        let options = TailOptions {
            start: if from_start {
                StartAt::Beginning
            } else {
                StartAt::End
            },
            ..TailOptions::default()
        };
        Self {
            source,
            tailer: Tailer::new(path, options),
            parser: format.map(LogParser::new),
        }
    }

    /// The format in use, once known.
    pub fn format_name(&self) -> Option<&str> {
        self.parser.as_ref().map(|p| p.format().name())
    }

    /// Reads what the log gained since the last call. `now_ns` stamps the lines' arrival.
    ///
    /// Without a given format, the first poll that returns lines detects it from them (up to
    /// [`DETECT_SAMPLE_LINES`]): lines are never held back, because `--no-ebpf` charges each
    /// line the memory growth of the interval in which it arrived.
    pub fn poll(&mut self, now_ns: i64) -> Vec<LogLineRow> {
        let lines = match self.tailer.poll() {
            Ok(lines) => lines,
            Err(e) => {
                tracing::warn!(source = %self.source, "reading the access log failed: {e}");
                Vec::new()
            }
        };
        if self.parser.is_none() && !lines.is_empty() {
            let sample = lines.iter().take(DETECT_SAMPLE_LINES);
            let format = match detect_format(sample) {
                Ok(d) => {
                    tracing::info!(source = %self.source, format = d.format.name(),
                        "access log format detected");
                    Ok(d.format)
                }
                Err(e) => {
                    say!(
                        "memwatch: {e}; reading {} as `combined` (pass --log-format to say which)",
                        self.source
                    );
                    Format::named("combined")
                }
            };
            match format {
                Ok(f) => self.parser = Some(LogParser::new(f)),
                Err(e) => tracing::error!("built-in format unavailable: {e}"),
            }
        }
        lines.iter().map(|l| self.parse(now_ns, l)).collect()
    }

    fn parse(&mut self, arrived_ns: i64, line: &[u8]) -> LogLineRow {
        let source = Arc::clone(&self.source);
        let Some(parser) = self.parser.as_mut() else {
            return LogLineRow::default();
        };
        match parser.parse(line) {
            Ok(l) => row(source, arrived_ns, l),
            Err(reject) => LogLineRow {
                source,
                arrived_ns,
                reason: Some(reject.reason.as_str()),
                raw: Some(reject.raw),
                ..LogLineRow::default()
            },
        }
    }
}

fn row(source: Arc<str>, arrived_ns: i64, l: AccessLine) -> LogLineRow {
    let AccessLine {
        client,
        time,
        method,
        target,
        status,
        bytes,
        user_agent,
        duration_us,
        ..
    } = l;
    LogLineRow {
        source,
        arrived_ns,
        ts_ns: time.and_then(|t| t.timestamp_nanos_opt()),
        method,
        target,
        status,
        bytes,
        duration_us,
        client,
        user_agent,
        ..LogLineRow::default()
    }
}

/// Checks a log path before anything is loaded: a file, readable if it exists, else its
/// directory exists (the file is waited for). A directory is refused here, not polled in vain.
pub fn check(path: &std::path::Path) -> Result<(), crate::error::SetupError> {
    use crate::error::SetupError;
    if path.is_dir() {
        return Err(SetupError::LogIsDirectory {
            path: path.to_owned(),
        });
    }
    match std::fs::File::open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            if dir.is_dir() {
                say!(
                    "memwatch: {} does not exist yet; waiting for it",
                    path.display()
                );
                Ok(())
            } else {
                Err(SetupError::LogDirMissing {
                    path: path.to_owned(),
                })
            }
        }
        Err(source) => Err(SetupError::LogUnreadable {
            path: path.to_owned(),
            source,
        }),
    }
}
