//! What a user sees of a recording: the report ([`report`]), allocation profiles and their
//! comparison ([`profile`]), and the page with its JSON API ([`server`]).

pub mod profile;
pub mod report;
pub mod server;
