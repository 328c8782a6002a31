//! Sources of data other than the eBPF ring buffer.

pub mod accesslog;
pub mod logtail;
pub mod procfs;
