//! Typed events decoded from ring-buffer records.

use memwatch_common::{
    EventHeader, EventKind,
    mem::MemEvent,
    net::{NetEvent, NetOp},
    proc::ProcEvent,
};

/// One decoded record.
#[derive(Debug, Clone)]
pub enum Event {
    Mem(MemEvent),
    Fork(ProcEvent),
    Exit(ProcEvent),
    Exec(ProcEvent),
    Net(NetRecord),
}

/// A [`NetEvent`] with its payload cut to what was captured.
#[derive(Clone)]
pub struct NetRecord {
    pub header: EventHeader,
    pub op: NetOp,
    pub fd: u32,
    pub generation: u64,
    pub faults: u64,
    pub bytes: u64,
    pub last_write_ns: u64,
    pub last_write_faults: u64,
    pub last_bytes_out: u64,
    pub last_write_tid: u32,
    pub data: Vec<u8>,
}

impl std::fmt::Debug for NetRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetRecord")
            .field("op", &self.op)
            .field("tgid", &self.header.tgid)
            .field("tid", &self.header.tid)
            .field("fd", &self.fd)
            .field("generation", &self.generation)
            .field("bytes", &self.bytes)
            .field("faults", &self.faults)
            .field(
                "data",
                &String::from_utf8_lossy(&self.data[..self.data.len().min(64)]),
            )
            .finish_non_exhaustive()
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

fn read<T: Copy>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() < size_of::<T>() {
        return Err(DecodeError::Short(bytes.len()));
    }
    // SAFETY: length checked above; T is a repr(C) integer-only struct valid for any bits.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

impl Event {
    pub fn header(&self) -> &EventHeader {
        match self {
            Self::Mem(e) => &e.header,
            Self::Fork(e) | Self::Exit(e) | Self::Exec(e) => &e.header,
            Self::Net(e) => &e.header,
        }
    }

    /// Decodes one ring-buffer record.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let header: EventHeader = read(bytes)?;
        let kind = EventKind::from_u32(header.kind).ok_or(DecodeError::UnknownKind(header.kind))?;
        Ok(match kind {
            EventKind::Mem => Self::Mem(read(bytes)?),
            EventKind::Fork => Self::Fork(read(bytes)?),
            EventKind::Exit => Self::Exit(read(bytes)?),
            EventKind::Exec => Self::Exec(read(bytes)?),
            EventKind::Net => {
                let ev: NetEvent = read(bytes)?;
                let NetEvent {
                    header,
                    op,
                    fd,
                    generation,
                    faults,
                    bytes,
                    last_write_ns,
                    last_write_faults,
                    last_bytes_out,
                    last_write_tid,
                    captured,
                    data,
                } = ev;
                let op = NetOp::from_u32(op).ok_or(DecodeError::UnknownNetOp(op))?;
                let n = (captured as usize).min(data.len());
                Self::Net(NetRecord {
                    header,
                    op,
                    fd,
                    generation,
                    faults,
                    bytes,
                    last_write_ns,
                    last_write_faults,
                    last_bytes_out,
                    last_write_tid,
                    data: data[..n].to_vec(),
                })
            }
        })
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
