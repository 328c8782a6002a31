//! A garbage collector's own report of its live heap: what a collected runtime says is in use
//! right after a collection. The heap probes see neither a JVM's objects nor a Go program's
//! objects one by one; these reports are the retained signal that the regression estimate
//! fits each route's kept bytes against (`views/regression.rs`).
//!
//! One program (`gc_report`) serves every such probe; the attach cookie says what the probe
//! reports and in which registers ([`Cookie`]), since a USDT note names its argument registers
//! per build, and Go passes arguments in its own ABI:
//! * HotSpot's `hotspot:mem__pool__gc__end(manager, len, pool, len, init, used, committed, max)`
//!   USDT probe fires once per memory pool after each collection ([`GcOp::JvmPool`], with the
//!   pool's name), and `hotspot:gc__end` once the collection is over ([`GcOp::JvmEnd`]);
//! * Go's `runtime.(*gcControllerState).resetLive(bytesMarked)` runs at each mark termination
//!   with the bytes marked live ([`GcOp::GoLive`]);
//! * V8's `v8::internal::ArrayBufferSweeper::Finalize()` runs on a Node.js process's main thread
//!   once the array buffers a collection found dead have been freed ([`GcOp::NodeSwept`]): it
//!   reports no figure, but the heap the probes follow holds no collected garbage just then;
//! * Ruby's `ruby:gc__mark__begin` USDT probe, behind a semaphore the kernel counts
//!   ([`GcOp::RubyMark`]): what the heap probes followed from before one marking and still
//!   hold when the next begins (the sweep between them done) is what that collection kept;
//! * Go's own sampled heap: `runtime.mProf_Malloc(p, size)` runs for the one allocation in
//!   about `runtime.MemProfileRate` bytes the runtime samples ([`GcOp::GoSample`], the
//!   object's address in [`GcEvent::addr`]), and `runtime.freeSpecial(s, p, size)` when the
//!   sweeper frees an object with a special record, a sampled one's among them
//!   ([`GcOp::GoSampleFree`]). Go 1.17 to 1.22 pass `(p, size)` to the first in RAX and RBX.

use crate::event::EventHeader;

/// What a [`GcEvent`] reports.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GcOp {
    /// One JVM memory pool's used bytes after a collection; its name in [`GcEvent::name`].
    JvmPool = 1,
    /// A JVM collection ended: the pools reported since the last one are its figures.
    JvmEnd = 2,
    /// The Go runtime's bytes marked live at a mark termination.
    GoLive = 3,
    /// V8 (Node.js) has freed the array buffers a collection found dead; no bytes of its own.
    NodeSwept = 4,
    /// Ruby began a collection's marking (`ruby:gc__mark__begin`); no bytes of its own.
    RubyMark = 5,
    /// Go began a cycle's marking (`runtime.gcMarkRootPrepare`); no bytes of its own.
    GoMark = 6,
    /// Go sampled an allocation of [`GcEvent::bytes`] at [`GcEvent::addr`]
    /// (`runtime.mProf_Malloc`).
    GoSample = 7,
    /// Go's sweeper freed the object at [`GcEvent::addr`], of [`GcEvent::bytes`], which had a
    /// special record (`runtime.freeSpecial`): a sampled object, or one with a finalizer.
    GoSampleFree = 8,
}

impl GcOp {
    pub const fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            1 => Self::JvmPool,
            2 => Self::JvmEnd,
            3 => Self::GoLive,
            4 => Self::NodeSwept,
            5 => Self::RubyMark,
            6 => Self::GoMark,
            7 => Self::GoSample,
            8 => Self::GoSampleFree,
            _ => return None,
        })
    }
}

/// Bytes of a pool's name copied (HotSpot's longest is `CodeHeap 'non-profiled nmethods'`, 32).
pub const GC_NAME_LEN: usize = 40;

/// One report.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GcEvent {
    pub header: EventHeader,
    /// A [`GcOp`] as `u32`.
    pub op: u32,
    /// Bytes of [`GcEvent::name`] in use.
    pub name_len: u32,
    /// The bytes reported (a pool's used bytes, the live bytes marked, a sampled object's size).
    pub bytes: u64,
    /// A sampled object's address ([`GcOp::GoSample`], [`GcOp::GoSampleFree`]); 0 otherwise.
    pub addr: u64,
    /// A JVM pool's name, not NUL-terminated; zeros past `name_len`.
    pub name: [u8; GC_NAME_LEN],
}

impl Default for GcEvent {
    fn default() -> Self {
        Self {
            header: EventHeader::default(),
            op: 0,
            name_len: 0,
            bytes: 0,
            addr: 0,
            name: [0; GC_NAME_LEN],
        }
    }
}

/// An x86-64 general register, numbered as `Cookie` carries it.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reg {
    Rax = 0,
    Rbx = 1,
    Rcx = 2,
    Rdx = 3,
    Rsi = 4,
    Rdi = 5,
    Rbp = 6,
    Rsp = 7,
    R8 = 8,
    R9 = 9,
    R10 = 10,
    R11 = 11,
    R12 = 12,
    R13 = 13,
    R14 = 14,
    R15 = 15,
}

/// What a probe on `gc_report` reports, packed in its attach cookie: the [`GcOp`] in bits
/// 0–7, the register holding the bytes in 8–15, and for [`GcOp::JvmPool`] the registers of the
/// pool name's address and length in 16–23 and 24–31. For Go's sampled heap, the register in
/// 16–23 holds the object's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cookie {
    pub op: GcOp,
    pub bytes: Reg,
    pub name: Reg,
    pub name_len: Reg,
}

impl Cookie {
    pub const fn pack(self) -> u64 {
        (self.op as u64)
            | ((self.bytes as u64) << 8)
            | ((self.name as u64) << 16)
            | ((self.name_len as u64) << 24)
    }

    /// The op and the three register numbers (each below 16), unchecked beyond that.
    pub const fn unpack(v: u64) -> (u32, u8, u8, u8) {
        (
            (v & 0xff) as u32,
            ((v >> 8) & 0xf) as u8,
            ((v >> 16) & 0xf) as u8,
            ((v >> 24) & 0xf) as u8,
        )
    }
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain-old-data: repr(C), integer fields only, no implicit padding (layout pinned
    // by tests/layout.rs), so every bit pattern is a valid value.
    unsafe impl aya::Pod for super::GcEvent {}
}
