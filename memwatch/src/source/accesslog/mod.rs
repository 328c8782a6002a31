//! Access logs: formats, parsing, tailing.
