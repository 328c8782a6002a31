//! One thin file per subcommand, gluing sources, correlation, recording and views.

pub mod ci;
pub mod profile;
pub mod record;
pub mod report;
pub mod view;
