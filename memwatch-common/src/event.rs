//! The header that starts every record in the events ring buffer.

/// What follows the [`EventHeader`] in a ring-buffer record.
///
/// Sent over the wire as the `u32` in [`EventHeader::kind`].
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A memory syscall completed: [`crate::mem::MemEvent`].
    Mem = 1,
    /// A traced process forked a new process: [`crate::proc::ProcEvent`].
    Fork = 2,
    /// A traced thread exited: [`crate::proc::ProcEvent`].
    Exit = 3,
    /// A traced process called execve successfully: [`crate::proc::ProcEvent`].
    Exec = 4,
    /// Socket traffic on a traced process: [`crate::net::NetEvent`].
    Net = 5,
    /// A run of pages a traced thread made resident: [`crate::proc::GrowthEvent`].
    Growth = 6,
    /// A heap block handed out or given back (`record --heap`): [`crate::heap::HeapEvent`].
    Heap = 7,
    /// File-backed resident pages changed: [`crate::proc::FilePagesEvent`].
    FilePages = 8,
    /// A stack taken along frame pointers (`record --stacks`): [`crate::stack::StackEvent`].
    Stack = 9,
    /// A copy of the user stack to unwind (`record --stacks`): [`crate::stack::StackCopyEvent`].
    StackCopy = 10,
    /// A collected runtime's live heap after a collection: [`crate::gc::GcEvent`].
    Gc = 11,
}

impl EventKind {
    /// Decodes the wire value; `None` for anything unknown.
    pub const fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            1 => Self::Mem,
            2 => Self::Fork,
            3 => Self::Exit,
            4 => Self::Exec,
            5 => Self::Net,
            6 => Self::Growth,
            7 => Self::Heap,
            8 => Self::FilePages,
            9 => Self::Stack,
            10 => Self::StackCopy,
            11 => Self::Gc,
            _ => return None,
        })
    }
}

/// The first 24 bytes of every ring-buffer record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventHeader {
    /// An [`EventKind`] as `u32`.
    pub kind: u32,
    /// Thread-group id (the process id user space sees).
    pub tgid: u32,
    /// Thread id.
    pub tid: u32,
    /// Explicit padding; always zero.
    pub _pad: u32,
    /// `bpf_ktime_get_ns()`: CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain-old-data: repr(C), integer fields only, no implicit padding (layout pinned
    // by tests/layout.rs), so every bit pattern is a valid value.
    unsafe impl aya::Pod for super::EventHeader {}
}
