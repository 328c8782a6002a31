//! Typed events decoded from ring-buffer records.

use memwatch_common::{
    EventHeader, EventKind,
    gc::GcEvent,
    heap::HeapEvent,
    mem::MemEvent,
    net::{NetMeta, NetOp},
    proc::{FilePagesEvent, GrowthEvent, ProcEvent},
    stack::{STACK_COPY, StackCopyEvent, StackEvent},
};

/// One decoded record. A socket event's payload is borrowed from the record it was decoded from
/// (in a session, the drain's copy in [`Records`]): copying it out was an allocation per
/// request.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    Mem(MemEvent),
    Fork(ProcEvent),
    Exit(ProcEvent),
    Exec(ProcEvent),
    Net(NetRecord<'a>),
    Growth(GrowthEvent),
    /// A heap block handed out or given back (unless `--no-heap`).
    Heap(HeapEvent),
    /// File-backed resident pages changed.
    FilePages(FilePagesEvent),
    /// A stack taken along frame pointers (`--stacks`).
    Stack(StackEvent),
    /// A copy of a user stack to unwind (`--stacks`).
    StackCopy(Box<StackCopy>),
    /// A collected runtime's report after a collection.
    Gc(GcEvent),
}

/// A copied user stack, cut to what was copied.
#[derive(Clone)]
pub struct StackCopy {
    pub header: EventHeader,
    pub ip: u64,
    pub sp: u64,
    pub bp: u64,
    /// `memwatch_common::stack::AT_FAULT` or `AT_SYSCALL`.
    pub at: u32,
    /// The stack from `sp` upwards.
    pub data: Vec<u8>,
}

impl std::fmt::Debug for StackCopy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackCopy")
            .field("header", &self.header)
            .field("ip", &format_args!("{:#x}", self.ip))
            .field("sp", &format_args!("{:#x}", self.sp))
            .field("bp", &format_args!("{:#x}", self.bp))
            .field("bytes", &self.data.len())
            .finish()
    }
}

/// A socket boundary event with its payload cut to what was captured.
#[derive(Clone)]
pub struct NetRecord<'a> {
    pub meta: NetMeta,
    /// `meta.op`, decoded.
    pub op: NetOp,
    /// The captured bytes (a request head or a status line, mostly), in the ring buffer's
    /// record.
    pub data: &'a [u8],
}

impl std::fmt::Debug for NetRecord<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetRecord")
            .field("op", &self.op)
            .field("meta", &self.meta)
            .field(
                "data",
                &String::from_utf8_lossy(&self.data[..self.data.len().min(64)]),
            )
            .finish()
    }
}

/// Why a record could not be decoded. Counted, never fatal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record of {0} bytes is shorter than its kind needs")]
    Short(usize),
    #[error("unknown event kind {0}")]
    UnknownKind(u32),
    #[error("unknown socket op {0}")]
    UnknownNetOp(u32),
}

/// The `T` at the start of `bytes`, which may be unaligned.
fn read<T: aya::Pod>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() < size_of::<T>() {
        return Err(DecodeError::Short(bytes.len()));
    }
    // SAFETY: `bytes` holds at least `size_of::<T>()` bytes (checked above), `read_unaligned`
    // needs no alignment, and `T: Pod` is valid for any bit pattern.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

impl<'a> Event<'a> {
    pub fn header(&self) -> &EventHeader {
        match self {
            Self::Mem(e) => &e.header,
            Self::Fork(e) | Self::Exit(e) | Self::Exec(e) => &e.header,
            Self::Net(e) => &e.meta.header,
            Self::Growth(e) => &e.header,
            Self::Heap(e) => &e.header,
            Self::FilePages(e) => &e.header,
            Self::Stack(e) => &e.header,
            Self::StackCopy(e) => &e.header,
            Self::Gc(e) => &e.header,
        }
    }

    /// Decodes one ring-buffer record.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let header: EventHeader = read(bytes)?;
        let kind = EventKind::from_u32(header.kind).ok_or(DecodeError::UnknownKind(header.kind))?;
        Ok(match kind {
            EventKind::Mem => Self::Mem(read(bytes)?),
            EventKind::Fork => Self::Fork(read(bytes)?),
            EventKind::Exit => Self::Exit(read(bytes)?),
            EventKind::Exec => Self::Exec(read(bytes)?),
            EventKind::Growth => Self::Growth(read(bytes)?),
            EventKind::Heap => Self::Heap(read(bytes)?),
            EventKind::FilePages => Self::FilePages(read(bytes)?),
            EventKind::Stack => Self::Stack(read(bytes)?),
            EventKind::Gc => Self::Gc(read(bytes)?),
            EventKind::StackCopy => {
                // Read field by field: the event is 16 KiB, and `len` is never trusted past it.
                let head = size_of::<StackCopyEvent>() - STACK_COPY;
                if bytes.len() < head {
                    return Err(DecodeError::Short(bytes.len()));
                }
                let word = |i: usize| {
                    let at = size_of::<EventHeader>() + 8 * i;
                    bytes
                        .get(at..at + 8)
                        .and_then(|b| b.try_into().ok())
                        .map_or(0, u64::from_ne_bytes)
                };
                let room = &bytes[head..bytes.len().min(head + STACK_COPY)];
                let n = usize::try_from(word(3))
                    .unwrap_or(usize::MAX)
                    .min(room.len());
                Self::StackCopy(Box::new(StackCopy {
                    header,
                    ip: word(0),
                    sp: word(1),
                    bp: word(2),
                    // `at` is the low half of the word after `len` (little-endian).
                    at: word(4) as u32,
                    data: room[..n].to_vec(),
                }))
            }
            EventKind::Net => {
                // The payload room depends on the event's size class; the record's length
                // says which, and `captured` never reaches past it.
                let meta: NetMeta = read(bytes)?;
                let op = NetOp::from_u32(meta.op).ok_or(DecodeError::UnknownNetOp(meta.op))?;
                let room = &bytes[size_of::<NetMeta>()..];
                let n = (meta.captured as usize).min(room.len());
                Self::Net(NetRecord {
                    meta,
                    op,
                    data: &room[..n],
                })
            }
        })
    }
}

/// Ring-buffer records copied out at a time: about 90 KiB of request heads, still in the CPU's
/// cache when they are decoded (with `--stacks`, a batch of 16 KiB stack copies holds up to 4
/// MiB). Copying a whole drain (thousands of records) before decoding any cost more in cache
/// misses than the allocations it saved.
pub const DRAIN_BATCH: usize = 256;

/// Ring-buffer records copied out in one batch of a drain, back to back in one buffer kept
/// between drains. The ring's room is given back as each record is copied; each is decoded,
/// borrowing its payload from here, when it is handled.
#[derive(Default)]
pub struct Records {
    bytes: Vec<u8>,
    /// Where each record ends in `bytes`.
    ends: Vec<usize>,
}

impl Records {
    pub fn push(&mut self, record: &[u8]) {
        self.bytes.extend_from_slice(record);
        self.ends.push(self.bytes.len());
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Empties it, keeping its capacity.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(start, end)| &self.bytes[start..end])
    }
}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Records")
            .field("records", &self.ends.len())
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// A process name from a kernel `comm` buffer.
pub fn comm_str(comm: &[u8; 16]) -> String {
    let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    String::from_utf8_lossy(&comm[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use memwatch_common::mem::{MemArgs, MemOp};

    use super::*;

    fn bytes_of<T>(v: &T) -> Vec<u8> {
        // SAFETY: reading the bytes of a plain repr(C) value.
        unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
    }

    /// A socket event's head: `op` on fd 3 of thread 8 of process 7, `captured` bytes.
    fn net_meta(op: NetOp, captured: u32) -> NetMeta {
        NetMeta {
            header: EventHeader {
                kind: EventKind::Net as u32,
                tgid: 7,
                tid: 8,
                _pad: 0,
                ts_ns: 5,
            },
            op: op as u32,
            fd: 3,
            captured,
            ..NetMeta::default()
        }
    }

    #[test]
    fn records_come_back_whole_and_in_order_after_a_clear() {
        use memwatch_common::net::NetEventSmall;
        let mut head = NetEventSmall {
            meta: net_meta(NetOp::ReadStart, 14),
            data: [0; 64],
        };
        head.data[..14].copy_from_slice(b"GET / HTTP/1.1");
        let mut records = Records::default();
        records.push(b"stale");
        records.clear();
        assert!(records.is_empty());
        records.push(&[1, 2, 3]);
        records.push(&bytes_of(&head));
        records.push(&[]);
        assert_eq!(records.len(), 3);
        let got: Vec<&[u8]> = records.iter().collect();
        assert_eq!(got[0], [1, 2, 3]);
        assert_eq!(got[1].len(), size_of::<NetEventSmall>());
        assert!(got[2].is_empty());
        // The payload is read in place, from the copied record.
        match Event::decode(got[1]) {
            Ok(Event::Net(n)) => assert_eq!(n.data, b"GET / HTTP/1.1"),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(Event::decode(got[0]).unwrap_err(), DecodeError::Short(3));
    }

    #[test]
    fn decodes_mem_event() {
        let ev = MemEvent {
            header: EventHeader {
                kind: EventKind::Mem as u32,
                tgid: 10,
                tid: 11,
                _pad: 0,
                ts_ns: 99,
            },
            args: MemArgs {
                op: MemOp::Mmap as u32,
                len: 4096,
                ..MemArgs::default()
            },
            ret: 0x7000,
        };
        match Event::decode(&bytes_of(&ev)) {
            Ok(Event::Mem(got)) => assert_eq!(got, ev),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn decodes_net_events_of_either_size() {
        use memwatch_common::net::{NetEvent, NetEventSmall};
        let meta = net_meta(NetOp::WriteStart, 12);
        let mut small = NetEventSmall {
            meta,
            data: [0; 64],
        };
        small.data[..12].copy_from_slice(b"HTTP/1.1 200");
        match Event::decode(&bytes_of(&small)) {
            Ok(Event::Net(n)) => {
                assert_eq!(n.op, NetOp::WriteStart);
                assert_eq!(n.data, b"HTTP/1.1 200");
                assert_eq!((n.meta.fd, n.meta.generation), (3, 0));
            }
            other => panic!("unexpected {other:?}"),
        }
        // A `captured` larger than the record's room is cut to the room, never trusted.
        let mut big = NetEvent {
            meta,
            data: [b'x'; 1024],
        };
        big.meta.captured = 5000;
        match Event::decode(&bytes_of(&big)) {
            Ok(Event::Net(n)) => assert_eq!(n.data.len(), 1024),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// A copied stack keeps its registers and `at`, and is cut to `len`, never past the record.
    #[test]
    fn decodes_stack_copies_cut_to_what_was_copied() {
        use memwatch_common::stack::{AT_SYSCALL, STACK_COPY, StackCopyEvent};
        let mut ev = Box::new(StackCopyEvent {
            header: EventHeader {
                kind: EventKind::StackCopy as u32,
                tgid: 7,
                tid: 8,
                _pad: 0,
                ts_ns: 5,
            },
            ip: 0x40_1000,
            sp: 0x7ff0_0000,
            bp: 0x7ff0_0100,
            len: 2048,
            at: AT_SYSCALL,
            _pad: 0,
            data: [0xab; STACK_COPY],
        });
        match Event::decode(&bytes_of(&*ev)) {
            Ok(Event::StackCopy(c)) => {
                assert_eq!(
                    (c.ip, c.sp, c.bp, c.at),
                    (0x40_1000, 0x7ff0_0000, 0x7ff0_0100, 1)
                );
                assert_eq!(c.data.len(), 2048);
            }
            other => panic!("unexpected {other:?}"),
        }
        ev.len = u64::MAX;
        let bytes = bytes_of(&*ev);
        match Event::decode(&bytes[..bytes.len() - 100]) {
            Ok(Event::StackCopy(c)) => assert_eq!(c.data.len(), STACK_COPY - 100),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn rejects_short_and_unknown() {
        assert_eq!(
            Event::decode(&[1, 2, 3]).unwrap_err(),
            DecodeError::Short(3)
        );
        let h = EventHeader {
            kind: 77,
            ..EventHeader::default()
        };
        assert_eq!(
            Event::decode(&bytes_of(&h)).unwrap_err(),
            DecodeError::UnknownKind(77)
        );
        let h = EventHeader {
            kind: EventKind::Mem as u32,
            ..EventHeader::default()
        };
        assert_eq!(
            Event::decode(&bytes_of(&h)).unwrap_err(),
            DecodeError::Short(24)
        );
    }

    #[test]
    fn comm_stops_at_nul() {
        let mut c = [0u8; 16];
        c[..5].copy_from_slice(b"nginx");
        assert_eq!(comm_str(&c), "nginx");
        assert_eq!(comm_str(&[b'x'; 16]), "x".repeat(16));
    }
}
