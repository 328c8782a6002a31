//! One thin file per subcommand, gluing sources, correlation, recording and views.

pub mod ci;
pub mod profile;
pub mod record;
pub mod report;
pub mod view;

use std::path::PathBuf;

use crate::source::{accesslog::Format, logtail};

/// `--log-format` and `--access-log`, checked before anything is loaded: the format parses and
/// every log is readable (or its directory exists, to wait for it).
fn check_access_logs(log_format: Option<&str>, logs: &[PathBuf]) -> anyhow::Result<Option<Format>> {
    let format = log_format
        .map(Format::from_name_or_log_format)
        .transpose()?;
    for log in logs {
        logtail::check(log)?;
    }
    Ok(format)
}
