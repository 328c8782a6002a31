//! Pins the ABI: the size and every field offset of each `#[repr(C)]` struct shared by the kernel
//! side and user space, and the connection-key layout. The eBPF object is built for a 64-bit
//! little-endian target, and user space reads its records byte for byte; a field added, moved or
//! resized on one side only would decode silently wrong. When a change here is intended, update
//! the numbers, rebuild the object (`cargo xtask ebpf`) and commit both.

use core::mem::{align_of, offset_of, size_of};

use memwatch_common::{
    EventHeader,
    gc::{Cookie, GcEvent, GcOp, Reg},
    heap::{HeapEvent, HeapKey, HeapPending},
    mem::{MemArgs, MemEvent},
    net::{ConnState, MAX_CAPTURE, NetEvent, NetEventSmall, NetMeta, SMALL_CAPTURE, conn_key},
    proc::{FilePagesEvent, GrowthEvent, ProcEvent, ThreadFaults},
    stack::{STACK_CHUNK, STACK_COPY, StackBudget, StackCopyEvent, StackEvent},
};

#[test]
fn event_header() {
    assert_eq!(size_of::<EventHeader>(), 24);
    assert_eq!(align_of::<EventHeader>(), 8);
    assert_eq!(offset_of!(EventHeader, kind), 0);
    assert_eq!(offset_of!(EventHeader, tgid), 4);
    assert_eq!(offset_of!(EventHeader, tid), 8);
    assert_eq!(offset_of!(EventHeader, _pad), 12);
    assert_eq!(offset_of!(EventHeader, ts_ns), 16);
}

#[test]
fn stack_events() {
    assert_eq!(size_of::<StackEvent>(), 40);
    assert_eq!(align_of::<StackEvent>(), 8);
    assert_eq!(offset_of!(StackEvent, header), 0);
    assert_eq!(offset_of!(StackEvent, stack_id), 24);
    assert_eq!(offset_of!(StackEvent, at), 32);
    assert_eq!(offset_of!(StackEvent, _pad), 36);

    assert_eq!(size_of::<StackBudget>(), 16);
    assert_eq!(offset_of!(StackBudget, nano_tokens), 0);
    assert_eq!(offset_of!(StackBudget, last_ns), 8);

    assert_eq!(STACK_COPY % STACK_CHUNK, 0);
    assert_eq!(size_of::<StackCopyEvent>(), 64 + STACK_COPY);
    assert_eq!(align_of::<StackCopyEvent>(), 8);
    assert_eq!(offset_of!(StackCopyEvent, header), 0);
    assert_eq!(offset_of!(StackCopyEvent, ip), 24);
    assert_eq!(offset_of!(StackCopyEvent, sp), 32);
    assert_eq!(offset_of!(StackCopyEvent, bp), 40);
    assert_eq!(offset_of!(StackCopyEvent, len), 48);
    assert_eq!(offset_of!(StackCopyEvent, at), 56);
    assert_eq!(offset_of!(StackCopyEvent, _pad), 60);
    assert_eq!(offset_of!(StackCopyEvent, data), 64);
}

#[test]
fn mem_args_and_event() {
    assert_eq!(size_of::<MemArgs>(), 56);
    assert_eq!(align_of::<MemArgs>(), 8);
    assert_eq!(offset_of!(MemArgs, op), 0);
    assert_eq!(offset_of!(MemArgs, prot), 4);
    assert_eq!(offset_of!(MemArgs, flags), 8);
    assert_eq!(offset_of!(MemArgs, addr), 16);
    assert_eq!(offset_of!(MemArgs, len), 24);
    assert_eq!(offset_of!(MemArgs, new_len), 32);
    assert_eq!(offset_of!(MemArgs, fd), 40);
    assert_eq!(offset_of!(MemArgs, began_ns), 48);

    assert_eq!(size_of::<MemEvent>(), 88);
    assert_eq!(align_of::<MemEvent>(), 8);
    assert_eq!(offset_of!(MemEvent, header), 0);
    assert_eq!(offset_of!(MemEvent, args), 24);
    assert_eq!(offset_of!(MemEvent, ret), 80);
}

#[test]
fn proc_event_and_thread_faults() {
    assert_eq!(size_of::<ProcEvent>(), 56);
    assert_eq!(align_of::<ProcEvent>(), 8);
    assert_eq!(offset_of!(ProcEvent, header), 0);
    assert_eq!(offset_of!(ProcEvent, child), 24);
    assert_eq!(offset_of!(ProcEvent, group_dead), 28);
    assert_eq!(offset_of!(ProcEvent, faults), 32);
    assert_eq!(offset_of!(ProcEvent, comm), 40);

    assert_eq!(size_of::<ThreadFaults>(), 96);
    assert_eq!(align_of::<ThreadFaults>(), 8);
    assert_eq!(offset_of!(ThreadFaults, tgid), 0);
    assert_eq!(offset_of!(ThreadFaults, _pad), 4);
    assert_eq!(offset_of!(ThreadFaults, faults), 8);
    assert_eq!(offset_of!(ThreadFaults, run_start), 16);
    assert_eq!(offset_of!(ThreadFaults, run_end), 24);
    assert_eq!(offset_of!(ThreadFaults, pending), 32);
    assert_eq!(offset_of!(ThreadFaults, last), 40);
    assert_eq!(offset_of!(ThreadFaults, file_dropped), 48);
    assert_eq!(offset_of!(ThreadFaults, run_ns), 56);
    assert_eq!(offset_of!(ThreadFaults, stack_due), 64);
    assert_eq!(offset_of!(ThreadFaults, map_due), 72);
    assert_eq!(offset_of!(ThreadFaults, serving_conn), 80);
    assert_eq!(offset_of!(ThreadFaults, serving_since), 88);

    assert_eq!(size_of::<GrowthEvent>(), 48);
    assert_eq!(align_of::<GrowthEvent>(), 8);
    assert_eq!(offset_of!(GrowthEvent, header), 0);
    assert_eq!(offset_of!(GrowthEvent, start), 24);
    assert_eq!(offset_of!(GrowthEvent, len), 32);
    assert_eq!(offset_of!(GrowthEvent, first_ns), 40);

    assert_eq!(size_of::<FilePagesEvent>(), 32);
    assert_eq!(offset_of!(FilePagesEvent, delta), 24);
}

#[test]
fn heap_events() {
    assert_eq!(size_of::<HeapEvent>(), 56);
    assert_eq!(align_of::<HeapEvent>(), 8);
    assert_eq!(offset_of!(HeapEvent, header), 0);
    assert_eq!(offset_of!(HeapEvent, op), 24);
    assert_eq!(offset_of!(HeapEvent, addr), 32);
    assert_eq!(offset_of!(HeapEvent, len), 40);
    assert_eq!(offset_of!(HeapEvent, chunk), 48);

    assert_eq!(size_of::<HeapPending>(), 16);
    assert_eq!(offset_of!(HeapPending, old), 8);

    assert_eq!(size_of::<HeapKey>(), 16);
    assert_eq!(offset_of!(HeapKey, tgid), 0);
    assert_eq!(offset_of!(HeapKey, addr), 8);
}

#[test]
fn conn_state() {
    assert_eq!(size_of::<ConnState>(), 72);
    assert_eq!(align_of::<ConnState>(), 8);
    assert_eq!(offset_of!(ConnState, generation), 0);
    assert_eq!(offset_of!(ConnState, phase), 8);
    assert_eq!(offset_of!(ConnState, last_write_tid), 12);
    assert_eq!(offset_of!(ConnState, last_write_ns), 16);
    assert_eq!(offset_of!(ConnState, last_write_faults), 24);
    assert_eq!(offset_of!(ConnState, bytes_in), 32);
    assert_eq!(offset_of!(ConnState, bytes_out), 40);
    assert_eq!(offset_of!(ConnState, read_tid), 48);
    assert_eq!(offset_of!(ConnState, response_status), 52);
    assert_eq!(offset_of!(ConnState, request_ns), 56);
    assert_eq!(offset_of!(ConnState, response_ns), 64);
}

#[test]
fn net_meta_and_events() {
    assert_eq!(size_of::<NetMeta>(), 104);
    assert_eq!(align_of::<NetMeta>(), 8);
    assert_eq!(offset_of!(NetMeta, header), 0);
    assert_eq!(offset_of!(NetMeta, op), 24);
    assert_eq!(offset_of!(NetMeta, fd), 28);
    assert_eq!(offset_of!(NetMeta, generation), 32);
    assert_eq!(offset_of!(NetMeta, faults), 40);
    assert_eq!(offset_of!(NetMeta, bytes), 48);
    assert_eq!(offset_of!(NetMeta, last_write_ns), 56);
    assert_eq!(offset_of!(NetMeta, last_write_faults), 64);
    assert_eq!(offset_of!(NetMeta, last_bytes_out), 72);
    assert_eq!(offset_of!(NetMeta, last_write_tid), 80);
    assert_eq!(offset_of!(NetMeta, captured), 84);
    assert_eq!(offset_of!(NetMeta, response_ns), 88);
    assert_eq!(offset_of!(NetMeta, response_status), 96);
    assert_eq!(offset_of!(NetMeta, _pad), 100);

    // The payload follows the meta directly, and the sizes leave no tail padding: user space
    // takes the payload room from a record's length.
    assert_eq!((SMALL_CAPTURE, MAX_CAPTURE), (64, 1024));
    assert_eq!(size_of::<NetEventSmall>(), 104 + 64);
    assert_eq!(offset_of!(NetEventSmall, meta), 0);
    assert_eq!(offset_of!(NetEventSmall, data), 104);
    assert_eq!(size_of::<NetEvent>(), 104 + 1024);
    assert_eq!(offset_of!(NetEvent, meta), 0);
    assert_eq!(offset_of!(NetEvent, data), 104);
}

#[test]
fn connection_key() {
    assert_eq!(conn_key(0x0001_2345, 7), 0x0001_2345_0000_0007);
    assert_eq!(conn_key(u32::MAX, u32::MAX), u64::MAX);
    assert_eq!(conn_key(0, 0), 0);
}

#[test]
fn gc_event_layout() {
    assert_eq!(size_of::<GcEvent>(), 88);
    assert_eq!(align_of::<GcEvent>(), 8);
    assert_eq!(offset_of!(GcEvent, header), 0);
    assert_eq!(offset_of!(GcEvent, op), 24);
    assert_eq!(offset_of!(GcEvent, name_len), 28);
    assert_eq!(offset_of!(GcEvent, bytes), 32);
    assert_eq!(offset_of!(GcEvent, addr), 40);
    assert_eq!(offset_of!(GcEvent, name), 48);
}

#[test]
fn gc_cookie_round_trips() {
    let c = Cookie {
        op: GcOp::JvmPool,
        bytes: Reg::R8,
        name: Reg::R13,
        name_len: Reg::Rax,
    };
    assert_eq!(c.pack(), 0x00_0d_08_01);
    assert_eq!(Cookie::unpack(c.pack()), (1, 8, 13, 0));
}
