//! Where the data comes from: the kernel side ([`probe`]: preflight, loading, the ring buffer's
//! typed events), /proc ([`procfs`]), access logs ([`accesslog`]: formats, parsing, and a file
//! followed through rotation; [`log_source`]: one log followed while recording, its lines as
//! rows), the traced command itself ([`spawn`]), and the call sites of growth ([`stacks`]:
//! unwinding and naming the kernel's stacks).

pub mod accesslog;
pub mod log_source;
pub mod probe;
pub mod procfs;
pub mod spawn;
pub mod stacks;
