//! Socket syscalls on server-side connections: accept, read/recv, write/send, close.
//!
//! The kernel side keeps one [`ConnState`] per connection and sends only the events that cut
//! requests (see [`NetOp`]); everything else is summed into the state and reported with the next
//! boundary, so a keep-alive request costs about two events.

use crate::event::EventHeader;

/// Largest socket payload prefix the kernel side can copy into one event.
pub const MAX_CAPTURE: usize = 1024;
/// Default prefix length: a request line plus `Host` in the common case.
pub const DEFAULT_CAPTURE: u32 = 512;
/// Payload room of the small events used for responses (the status line is all user space
/// reads from them), accepts and closes: most events, at a fraction of the ring-buffer space.
pub const SMALL_CAPTURE: usize = 64;

/// What a [`NetEvent`] reports.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetOp {
    /// `accept`/`accept4` returned a new connection `fd`.
    Accept = 1,
    /// A read on a connection whose last activity was a write (or nothing): a request starts.
    /// `data` holds the prefix.
    ReadStart = 2,
    /// A further read of the same request while its head may still be incomplete (at most
    /// `capture_len` bytes of request are sent in all; the rest is only counted).
    ReadMore = 3,
    /// The first write after a read, or any write whose data starts with `HTTP/`: a response
    /// starts. `data` holds the prefix.
    WriteStart = 4,
    /// `close` of a connection. The `last_write_*` fields summarise its last response.
    Close = 5,
}

impl NetOp {
    pub const fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            1 => Self::Accept,
            2 => Self::ReadStart,
            3 => Self::ReadMore,
            4 => Self::WriteStart,
            5 => Self::Close,
            _ => return None,
        })
    }
}

/// The key of a connection in the connections map ([`crate::config::MAP_CONNS`]): the process in
/// the high 32 bits, the fd in the low 32. Both sides build keys here, so they cannot disagree.
#[inline(always)]
pub const fn conn_key(tgid: u32, fd: u32) -> u64 {
    ((tgid as u64) << 32) | fd as u64
}

/// Connection state kept by the kernel side, keyed by [`conn_key`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnState {
    /// Monotonic ns when memwatch first saw the connection: with the fd, this names the
    /// connection uniquely even when the fd number is reused.
    pub generation: u64,
    /// 0 = idle, 1 = reading a request, 2 = writing a response.
    pub phase: u32,
    /// Tid of the last write.
    pub last_write_tid: u32,
    /// Monotonic ns of the last write.
    pub last_write_ns: u64,
    /// The writing thread's page-fault counter just after its last write.
    pub last_write_faults: u64,
    /// Bytes read since the current request started.
    pub bytes_in: u64,
    /// Bytes written since the current response started.
    pub bytes_out: u64,
    /// Tid of the last read of the current request that was sent to user space.
    pub read_tid: u32,
    /// Status code of a response whose start was not sent (see [`ConnState::response_ns`]).
    pub response_status: u32,
    /// Monotonic ns of the current request's first read: with the connection's key, what
    /// names the request in [`crate::proc::ThreadFaults::serving_conn`].
    pub request_ns: u64,
    /// Monotonic ns of the first write of a response whose start was not sent as its own
    /// event, 0 when none is pending. A response start is folded into the connection's next
    /// event when user space would learn nothing else from it: the thread that writes is the
    /// one that read the request, and it has sent no boundary of another request since, so
    /// user space already charges that thread to this request. Only the first byte's time and
    /// the status are then missing, and they ride on the next event as
    /// [`NetMeta::response_ns`] and [`NetMeta::response_status`] (or are read from this map
    /// when recording stops). One event per keep-alive request instead of two.
    pub response_ns: u64,
}

/// Parses the status code of a response from the first [`STATUS_LINE_HEAD`] bytes of its
/// first write: `HTTP/1.0 ` or `HTTP/1.1 `, three digits (the first one 1 to 5), then the space
/// before a reason phrase. Anything else is `None`, and the response's start is sent whole for
/// user space to parse. Accepting only this strict form keeps the code equal to what user
/// space's parser reads from the same bytes (one difference: a reason phrase with control
/// bytes, where user space reads no code and this reads the code before it).
#[inline(always)]
pub fn status_code(head: &[u8; STATUS_LINE_HEAD]) -> Option<u32> {
    if head[0] != b'H'
        || head[1] != b'T'
        || head[2] != b'T'
        || head[3] != b'P'
        || head[4] != b'/'
        || head[5] != b'1'
        || head[6] != b'.'
        || (head[7] != b'0' && head[7] != b'1')
        || head[8] != b' '
        || head[12] != b' '
    {
        return None;
    }
    let digit = |b: u8| {
        if b.is_ascii_digit() {
            Some(u32::from(b - b'0'))
        } else {
            None
        }
    };
    let hundreds = digit(head[9])?;
    if !(1..=5).contains(&hundreds) {
        return None;
    }
    Some(hundreds * 100 + digit(head[10])? * 10 + digit(head[11])?)
}

/// Bytes of a response's first write that [`status_code`] reads.
pub const STATUS_LINE_HEAD: usize = 13;

/// Connection phases, stored in [`ConnState::phase`].
pub const PHASE_IDLE: u32 = 0;
pub const PHASE_READING: u32 = 1;
pub const PHASE_WRITING: u32 = 2;

/// The fixed part of a boundary event: everything but the payload.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetMeta {
    pub header: EventHeader,
    /// A [`NetOp`] as `u32`.
    pub op: u32,
    pub fd: u32,
    /// [`ConnState::generation`] of the connection.
    pub generation: u64,
    /// This thread's page-fault counter at the event.
    pub faults: u64,
    /// Bytes this syscall moved (the real count, not the captured one).
    pub bytes: u64,
    /// State of the previous response, for ReadStart and Close: when and on which thread its
    /// last write happened, the fault counter then, and the bytes it wrote.
    pub last_write_ns: u64,
    pub last_write_faults: u64,
    pub last_bytes_out: u64,
    pub last_write_tid: u32,
    /// How many bytes of the payload were copied.
    pub captured: u32,
    /// A response on this connection whose start was not sent ([`ConnState::response_ns`]):
    /// its first write's monotonic ns, 0 when none, and its status code. User space applies it
    /// before this event's own operation.
    pub response_ns: u64,
    pub response_status: u32,
    pub _pad: u32,
}

/// A boundary on a connection with room for `N` bytes of payload. Fixed size so it can be
/// reserved in the ring buffer; only `data[..meta.captured]` is meaningful, and user space takes
/// the payload room from the record's length.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NetEventOf<const N: usize> {
    pub meta: NetMeta,
    pub data: [u8; N],
}

/// Requests: room for the configured capture.
pub type NetEvent = NetEventOf<MAX_CAPTURE>;
/// Responses, accepts and closes.
pub type NetEventSmall = NetEventOf<SMALL_CAPTURE>;

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain-old-data: repr(C), integer fields only, no implicit padding (layouts pinned
    // by tests/layout.rs), so every bit pattern is a valid value.
    unsafe impl aya::Pod for super::ConnState {}
    // SAFETY: as above; its fields are an EventHeader and integers.
    unsafe impl aya::Pod for super::NetMeta {}
}
