//! Every map and load-time global, in one place.

use aya_ebpf::{
    macros::map,
    maps::{HashMap, PerCpuArray, RingBuf},
};
use memwatch_common::{
    config::COUNTER_SLOTS,
    mem::MemArgs,
    net::{ConnState, NetEvent},
    proc::ThreadFaults,
};

// Load-time globals (set by user space before verification; names in memwatch_common::config).
#[unsafe(no_mangle)]
pub static SELF_TGID: u32 = 0;
#[unsafe(no_mangle)]
pub static FOLLOW_FORKS: u32 = 1;
#[unsafe(no_mangle)]
pub static CAPTURE_LEN: u32 = memwatch_common::net::DEFAULT_CAPTURE;
#[unsafe(no_mangle)]
pub static WAKEUP_BYTES: u64 = 64 * 1024;

/// Reads a load-time global. `read_volatile` stops the compiler from folding the default value.
#[inline(always)]
pub fn global<T: Copy>(g: &'static T) -> T {
    // SAFETY: `g` is a valid, aligned static.
    unsafe { core::ptr::read_volatile(g) }
}

/// Traced processes. User space sizes it at load time.
#[map]
pub static TARGETS: HashMap<u32, u32> = HashMap::with_max_entries(4096, 0);

/// Every event. User space sizes it at load time.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(4 * 1024 * 1024, 0);

/// What could not be done: ring-buffer drops, unpaired exits, full maps.
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

/// User page faults per live traced thread.
#[map]
pub static THREAD_FAULTS: HashMap<u32, ThreadFaults> = HashMap::with_max_entries(65536, 0);

/// Memory-syscall arguments stashed at enter, keyed by tid, consumed at exit.
#[map]
pub static PENDING_MEM: HashMap<u32, MemArgs> = HashMap::with_max_entries(16384, 0);

/// Server-side connections, keyed by `(tgid << 32) | fd`.
#[map]
pub static CONNS: HashMap<u64, ConnState> = HashMap::with_max_entries(65536, 0);

/// Connections open before attach and not yet seen, per tgid.
#[map]
pub static LATE_CONNS: HashMap<u32, u64> = HashMap::with_max_entries(4096, 0);

/// Socket-syscall arguments stashed at enter, keyed by tid: `fd` and the user buffer.
#[map]
pub static PENDING_NET: HashMap<u32, PendingNet> = HashMap::with_max_entries(16384, 0);

/// Scratch space for building a [`NetEvent`] off the 512-byte stack, one per CPU.
#[map]
pub static NET_SCRATCH: PerCpuArray<NetEvent> = PerCpuArray::with_max_entries(1, 0);

/// What a socket syscall's enter leaves for its exit.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PendingNet {
    /// 1 = read-like, 2 = write-like without a buffer (sendfile), 3 = write-like.
    pub dir: u32,
    pub fd: u32,
    /// Address of the first user buffer (already resolved through the iovec for readv/writev
    /// and recvmsg/sendmsg), or 0.
    pub buf: u64,
    /// Length of that buffer.
    pub buf_len: u64,
}
