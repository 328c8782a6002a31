//! One thin file per subcommand: each turns its options into a session or a view and prints
//! the outcome. The exit code of any error that reaches `main` is worked out here, at the top of
//! the flow, where every module's errors are in sight.

pub mod ci;
pub mod profile;
pub mod record;
pub mod report;
pub mod view;

use crate::{
    capture::accesslog::AccessLogError,
    correlate::route::RouteError,
    error::{RecordingError, SetupError, UsageError, WriteError, exit},
    views::profile::ProfileError,
};

/// The documented exit code for an error that reached `main`.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    if let Some(e) = err.downcast_ref::<SetupError>() {
        e.exit_code()
    } else if let Some(e) = err.downcast_ref::<RecordingError>() {
        e.exit_code()
    } else if let Some(e) = err.downcast_ref::<WriteError>() {
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
