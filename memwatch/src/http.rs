//! HTTP/1.x parsing over captured socket prefixes.
