//! What a user sees of a recording: the report ([`report`]), allocation profiles and their
//! comparison ([`profile`]), their rendering as text and markdown ([`format`]), retained memory
//! by call site as a tree ([`flame`]), and the page with its JSON API ([`server`]).

pub mod flame;
pub mod format;
pub mod profile;
pub mod report;
pub mod server;
