//! One thin file per subcommand: each turns its options into a session or a view and prints
//! the outcome. The exit code of any error that reaches `main` is worked out here, at the top of
//! the flow, where every module's errors are in sight.

pub mod ci;
mod listen;
pub mod pprof;
pub mod profile;
pub mod record;
pub mod report;
pub mod view;

use crate::{
    capture::accesslog::AccessLogError,
    correlate::route::RouteError,
    error::{RecordingError, SetupError, UsageError, WriteError, exit},
    views::{pprof::PprofError, profile::ProfileError},
};

/// Writes a command's output to stdout. A reader that went away (`memwatch report FILE | head`)
/// ends the output, not the command: it is not an error, and nothing panics.
pub fn print_out(text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Refuses to overwrite `path` (a command's `-o`) unless `force`, as `record` does; checked
/// before anything is read.
pub fn check_overwrite(path: &std::path::Path, force: bool) -> Result<(), SetupError> {
    if !force && path.symlink_metadata().is_ok() {
        return Err(SetupError::OutputExists {
            path: path.to_owned(),
        });
    }
    Ok(())
}

/// The documented exit code for an error that reached `main`.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    if let Some(e) = err.downcast_ref::<SetupError>() {
        e.exit_code()
    } else if let Some(e) = err.downcast_ref::<RecordingError>() {
        e.exit_code()
    } else if let Some(e) = err.downcast_ref::<WriteError>() {
        e.exit_code()
    } else if let Some(e) = err.downcast_ref::<PprofError>() {
        e.exit_code()
    } else if err.downcast_ref::<UsageError>().is_some()
        || err.downcast_ref::<RouteError>().is_some()
        || err.downcast_ref::<AccessLogError>().is_some()
        || err.downcast_ref::<ProfileError>().is_some()
    {
        exit::INPUT
    } else {
        exit::RUNTIME
    }
}

#[cfg(test)]
mod tests {
    use aya::{EbpfError, programs::ProgramError};

    use super::*;
    use crate::{capture::probe::error::LoadError, error::message};

    #[test]
    fn message_does_not_repeat_a_cause_its_error_already_shows() {
        // EbpfError::ProgramError prints "program error: {0}" and has the ProgramError as its
        // source.
        let err = anyhow::Error::from(SetupError::from(LoadError::Object(
            EbpfError::ProgramError(ProgramError::NotLoaded),
        )));
        let text = message(&err);
        assert!(
            text.starts_with("cannot load memwatch's eBPF object ("),
            "{text}"
        );
        assert!(
            text.ends_with("): program error: the program is not loaded"),
            "{text}"
        );
        assert_eq!(text.matches("the program is not loaded").count(), 1);
        assert_eq!(exit_code(&err), exit::ENVIRONMENT);
    }

    #[test]
    fn message_keeps_every_new_cause() {
        let io = std::io::Error::from_raw_os_error(libc::ENOENT);
        let err = anyhow::Error::from(io)
            .context("reading x")
            .context("starting");
        assert_eq!(
            message(&err),
            "starting: reading x: No such file or directory (os error 2)"
        );
    }
}
