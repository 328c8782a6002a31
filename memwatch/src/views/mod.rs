//! What a user sees of a recording: the report ([`report`]), allocation profiles and their
//! comparison ([`profile`]), their rendering as text and markdown ([`format`]), and the page with
//! its JSON API ([`server`]).

pub mod format;
pub mod profile;
pub mod report;
pub mod server;
