//! The event ABI shared by the kernel side (`memwatch-ebpf`) and user space (`memwatch`).
//!
//! Every struct here is `#[repr(C)]` with explicit padding so both sides agree on the layout;
//! `tests/layout.rs` in this crate pins every size and field offset, and the connection-key
//! layout. Kinds and ops are plain integers, not Rust enums, because a value read from the kernel
//! must never be an invalid enum discriminant.
//!
//! One module per concern: [`event`] (the header every ring-buffer record starts with),
//! [`mem`] (memory syscalls), [`heap`] (glibc's allocator, with `--heap`), [`gc`] (collected
//! runtimes' live heap), [`proc`] (process lifecycle and page-fault counters), [`net`]
//! (socket syscalls), [`stack`] (call sites, with `--stacks`), [`config`] (load-time globals and map names), [`tracepoint`] (where the
//! kernel side reads tracepoint records).
#![no_std]

pub mod config;
pub mod event;
pub mod gc;
pub mod heap;
pub mod mem;
pub mod net;
pub mod proc;
pub mod stack;
pub mod tracepoint;

pub use event::{EventHeader, EventKind};
