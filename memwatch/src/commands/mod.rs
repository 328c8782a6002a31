//! One thin file per subcommand, gluing sources, correlation, recording and views.

pub mod record;
pub mod report;
pub mod view;
