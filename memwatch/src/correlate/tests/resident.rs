//! Resident memory charged and credited back: releases, heap blocks, call sites, and pages
//! resident before tracing began.

use super::*;
use crate::correlate::{HeapBlock, vm_origin::VmEffect};

/// Memory a request made resident and kept is credited back to it when another request
/// releases it later; its own churn is counted as released before it ended; memory made
/// outside any request is its own row.
#[test]
fn a_heap_block_reused_by_another_request_changes_hands() {
    let p = PAGE;
    let mut c = correlator();
    let mut out = Vec::new();
    let outside = outside_grown;
    // /churn allocates a 16-page block (plus a byte: the block's edges are not whole
    // pages), faults it in, and frees it before it ends: the allocator keeps the pages.
    c.net(
        &ev(NetOp::ReadStart, 100, 0, b"GET /churn HTTP/1.1\r\n\r\n", 0),
        0,
        &mut out,
    );
    c.heap(
        101,
        PID,
        TID,
        HeapBlock {
            alloc: true,
            addr: 100 * p - 8,
            len: 16 * p + 16,
            stack: None,
        },
        &mut out,
    );
    c.grow(102, PID, TID, 100 * p, 16 * p, 102, &mut out);
    c.heap(
        103,
        PID,
        TID,
        HeapBlock::given_back(100 * p - 8, 16 * p + 16),
        &mut out,
    );
    c.net(
        &ev(NetOp::WriteStart, 110, 0, b"HTTP/1.1 200 OK\r\n", 0),
        0,
        &mut out,
    );
    c.net(&ev(NetOp::Close, 120, 0, b"", 115), 0, &mut out);
    let churn = requests(&out)[0].clone();
    assert_eq!((churn.grown, churn.released), (16 * p, 16 * p));
    assert_eq!(
        outside(&out),
        16 * p,
        "the freed block is held outside any request"
    );
    // /leak gets 4 of those pages from malloc and keeps them: they are its own now, with
    // no fault and no syscall; the outside row gives them up.
    out.clear();
    c.net(
        &ev(NetOp::ReadStart, 200, 0, b"GET /leak HTTP/1.1\r\n\r\n", 0),
        0,
        &mut out,
    );
    c.heap(
        201,
        PID,
        TID,
        HeapBlock {
            alloc: true,
            addr: 100 * p,
            len: 4 * p,
            stack: None,
        },
        &mut out,
    );
    c.net(
        &ev(NetOp::WriteStart, 210, 0, b"HTTP/1.1 200 OK\r\n", 0),
        0,
        &mut out,
    );
    c.net(&ev(NetOp::Close, 220, 0, b"", 215), 0, &mut out);
    let leak = requests(&out)[0].clone();
    assert_eq!((leak.grown, leak.released), (4 * p, 0));
    assert_eq!(releases(&out), vec![(0, 0, None, 4 * p)]);
    // A free from another thread (a collector) later: credited back to /leak.
    out.clear();
    c.heap(
        500,
        PID,
        TID + 1,
        HeapBlock::given_back(100 * p, 4 * p),
        &mut out,
    );
    assert_eq!(releases(&out), vec![(leak.id, 215, Some("/leak"), 4 * p)]);
    assert_eq!(
        c.origin_counts().tracked_bytes,
        16 * p,
        "nothing left the resident set"
    );
    assert_eq!(c.origin_counts().unmatched_release_bytes, 0);
}

/// With stacks on, growth is charged to the thread's latest stack as well as its request:
/// per call site at the request's end (its own churn as released), a later release by
/// another thread credited back to the call site, growth outside requests at once. A new
/// request starts with no call site until its first stack.
#[test]
fn growth_is_charged_to_its_call_site_with_the_origin_model() {
    let p = PAGE;
    let mut c = correlator().with_stacks(true);
    let mut out = Vec::new();
    c.set_stack(TID, Some(9));
    c.grow(50, PID, TID, 900 * p, 2 * p, 50, &mut out);
    assert_eq!(stack_rows(&out), vec![(Some(""), 9, 2 * p, 0)]);
    out.clear();
    c.net(
        &ev(NetOp::ReadStart, 100, 0, b"GET /leak HTTP/1.1\r\n\r\n", 0),
        0,
        &mut out,
    );
    // Before the request's first stack: no call site.
    c.grow(105, PID, TID, 5 * p, p, 105, &mut out);
    c.set_stack(TID, Some(1));
    c.grow(110, PID, TID, 10 * p, 4 * p, 110, &mut out);
    c.set_stack(TID, Some(2));
    c.grow(112, PID, TID, 50 * p, 8 * p, 112, &mut out);
    c.release(113, 113, PID, 50 * p, 8 * p, &mut out);
    c.net(
        &ev(NetOp::WriteStart, 120, 0, b"HTTP/1.1 200 OK\r\n", 0),
        0,
        &mut out,
    );
    c.net(&ev(NetOp::Close, 200, 0, b"", 150), 0, &mut out);
    let mut rows = stack_rows(&out);
    rows.sort_unstable();
    assert_eq!(
        rows,
        vec![
            (Some("/leak"), 0, p, 0),
            (Some("/leak"), 1, 4 * p, 0),
            (Some("/leak"), 2, 8 * p, 8 * p),
        ]
    );
    out.clear();
    // Another thread frees half of stack 1's pages, and one startup page.
    c.release(500, 500, PID, 10 * p, 2 * p, &mut out);
    c.release(510, 510, PID, 900 * p, p, &mut out);
    assert_eq!(
        stack_rows(&out),
        vec![(Some("/leak"), 1, 0, 2 * p), (Some(""), 9, 0, p)]
    );
    // Off, no call-site rows at all.
    let mut off = correlator();
    out.clear();
    off.set_stack(TID, Some(9));
    off.grow(50, PID, TID, 900 * p, 2 * p, 50, &mut out);
    assert_eq!(stack_rows(&out), vec![]);
}

/// A thread stack mapped while recording, mostly never touched, released by madvise and
/// then munmap: its untouched bytes are never-seen address space, not releases of unknown
/// origin. The same addresses after the unmapping, or a range reaching past the mapping,
/// are of unknown origin again. (Recording a thread-per-connection server had shown 38.83
/// GiB of "releases of unknown origin" for a process of 2.3 MiB RSS.)
#[test]
fn untouched_address_space_mapped_while_recording_is_not_of_unknown_origin() {
    let p = PAGE;
    let mut c = correlator();
    let mut out = Vec::new();
    let stack = VmEffect::Map {
        start: 1000 * p,
        len: 512 * p,
        replaces: false,
    };
    c.vm(10, 10, PID, TID, stack, &mut out);
    c.grow(20, PID, TID, 1510 * p, 2 * p, 20, &mut out);
    c.release(30, 30, PID, 1000 * p, 512 * p, &mut out);
    c.release(40, 40, PID, 1000 * p, 512 * p, &mut out);
    c.vm(
        40,
        40,
        PID,
        TID,
        VmEffect::Unmap {
            start: 1000 * p,
            len: 512 * p,
        },
        &mut out,
    );
    let counts = c.origin_counts();
    assert_eq!(
        (counts.unseen_release_bytes, counts.unmatched_release_bytes),
        (510 * p + 512 * p, 0)
    );
    assert_eq!(releases(&out), vec![(0, 0, None, 2 * p)]);
    c.release(50, 50, PID, 1000 * p, p, &mut out);
    c.vm(60, 60, PID, TID, stack, &mut out);
    c.release(70, 70, PID, 1000 * p, 513 * p, &mut out);
    let counts = c.origin_counts();
    assert_eq!(
        (counts.unseen_release_bytes, counts.unmatched_release_bytes),
        (1022 * p, 514 * p)
    );
}

/// Address space of no known origin is what is unmapped having been mapped before memwatch
/// attached. A range the kernel chose for a new mapping was free: mapping it releases nothing,
/// and an unmapping under way as it was made did not unmap it. (Every mmap had counted its
/// length there: 12.6 GB for two threads that mapped and unmapped 2 MiB 3,000 times each.) A
/// MAP_FIXED mapping does replace what was there.
#[test]
fn a_new_mapping_is_not_address_space_of_unknown_origin() {
    let p = PAGE;
    let mut c = correlator();
    let mut out = Vec::new();
    let map = |start, replaces| VmEffect::Map {
        start,
        len: 512 * p,
        replaces,
    };
    let unmap = VmEffect::Unmap {
        start: 1000 * p,
        len: 512 * p,
    };
    for ts in [10, 20] {
        c.vm(ts, ts, PID, TID, map(1000 * p, false), &mut out);
        c.vm(ts + 5, ts + 5, PID, TID, unmap, &mut out);
    }
    assert_eq!(c.vm_unmatched_release_bytes(), 0);
    // Another thread maps the addresses an unmapping under way has freed (it began at 31, and
    // returns at 40, after the new mapping's return at 35): the map still holds the old span
    // as the new mapping comes, which credits it back, and the unmapping leaves the new one.
    // Then the new one's own unmapping finds it.
    c.vm(30, 30, PID, TID, map(1000 * p, false), &mut out);
    c.vm(35, 35, PID, TID, map(1000 * p, false), &mut out);
    c.vm(40, 31, PID, TID, unmap, &mut out);
    assert!(c.vm_origin.covers(PID, 1000 * p, 1512 * p));
    c.vm(50, 45, PID, TID, unmap, &mut out);
    assert!(!c.vm_origin.covers(PID, 1000 * p, 1001 * p));
    assert_eq!(c.vm_unmatched_release_bytes(), 0);
    // MAP_FIXED over address space mapped before the attach replaces it.
    c.vm(40, 40, PID, TID, map(5000 * p, true), &mut out);
    assert_eq!(c.vm_unmatched_release_bytes(), 512 * p);
}

/// A process whose resident pages were read as tracing began: releasing them is of
/// unknown origin, exactly; releasing pages never resident is not, wherever they were
/// mapped; a page faulted in again is the faulting thread's; an mremap moves the pages
/// resident before with the mapping; an exec forgets them.
#[test]
fn pages_resident_before_tracing_are_the_releases_of_unknown_origin() {
    let p = PAGE;
    let mut c = correlator();
    let mut out = Vec::new();
    // Resident before: 4 pages of a heap at 100, 2 of an arena at 1000.
    assert!(c.resident_before(PID, &[(100 * p, 104 * p), (1000 * p, 1002 * p)]));
    // The heap's 8 pages released: 4 were resident.
    c.release(10, 10, PID, 100 * p, 8 * p, &mut out);
    let counts = c.origin_counts();
    assert_eq!(
        (counts.unmatched_release_bytes, counts.unseen_release_bytes),
        (4 * p, 4 * p)
    );
    // Released again: nothing of them is resident any more.
    c.release(20, 20, PID, 100 * p, 4 * p, &mut out);
    assert_eq!(c.origin_counts().unmatched_release_bytes, 4 * p);
    // One arena page faults in again (swapped out meanwhile): it is the thread's now.
    c.grow(30, PID, TID, 1000 * p, p, 30, &mut out);
    // The arena moves to 5000, its 2 pages with it; then it is released there.
    c.remap(40, 40, PID, (1000 * p, 2 * p), (5000 * p, 2 * p), &mut out);
    c.release(50, 50, PID, 5000 * p, 16 * p, &mut out);
    let counts = c.origin_counts();
    assert_eq!(
        (counts.unmatched_release_bytes, counts.unseen_release_bytes),
        (5 * p, 8 * p + 14 * p)
    );
    assert_eq!(releases(&out), vec![(0, 0, None, p)]);
    // After an exec nothing is known of the new image's releases but its own mappings.
    c.resident_before(PID, &[(200 * p, 201 * p)]);
    c.address_space_gone(60, PID, &mut out);
    c.release(70, 70, PID, 200 * p, p, &mut out);
    assert_eq!(c.origin_counts().unmatched_release_bytes, 6 * p);
    // Another process, never read: every uncovered byte is of unknown origin.
    c.release(80, 80, PID + 1, 0, 3 * p, &mut out);
    assert_eq!(c.origin_counts().unmatched_release_bytes, 9 * p);
    // A PID read at attach and given to a forked child (its exit unseen): nothing known.
    c.resident_before(PID + 2, &[(0, p)]);
    c.forked(PID + 2);
    c.release(90, 90, PID + 2, 10 * p, 2 * p, &mut out);
    assert_eq!(c.origin_counts().unmatched_release_bytes, 11 * p);
}

#[test]
fn releases_are_credited_back_to_the_request_that_grew_the_memory() {
    let p = PAGE;
    let mut c = correlator();
    let mut out = Vec::new();
    // Outside any request: startup memory.
    c.grow(50, PID, TID, 900 * p, 2 * p, 50, &mut out);
    c.net(
        &ev(NetOp::ReadStart, 100, 0, b"GET /leak HTTP/1.1\r\n\r\n", 0),
        0,
        &mut out,
    );
    c.grow(110, PID, TID, 10 * p, 4 * p, 110, &mut out);
    // A re-fault of a page already resident is not growth.
    c.grow(111, PID, TID, 11 * p, p, 111, &mut out);
    // Churn: grown and released within the request.
    c.grow(112, PID, TID, 50 * p, 8 * p, 112, &mut out);
    c.release(113, 113, PID, 50 * p, 8 * p, &mut out);
    c.net(
        &ev(NetOp::WriteStart, 120, 0, b"HTTP/1.1 200 OK\r\n", 0),
        0,
        &mut out,
    );
    c.net(&ev(NetOp::Close, 200, 0, b"", 150), 0, &mut out);
    let leak = requests(&out)[0].clone();
    assert_eq!((leak.grown, leak.released), (12 * p, 8 * p));
    // Later another thread (a collector) frees half of what /leak kept, and some startup
    // memory, and memory memwatch never saw resident.
    c.release(500, 500, PID, 10 * p, 2 * p, &mut out);
    c.release(510, 510, PID, 900 * p, p, &mut out);
    c.release(520, 520, PID, 5000 * p, 3 * p, &mut out);
    assert_eq!(
        releases(&out),
        vec![(leak.id, 150, Some("/leak"), 2 * p), (0, 0, None, p)]
    );
    let outside = outside_grown(&out);
    assert_eq!(outside, 2 * p);
    assert_eq!(c.origin_counts().unmatched_release_bytes, 3 * p);
    assert_eq!(
        c.origin_counts().tracked_bytes,
        3 * p,
        "2 pages of /leak, 1 of startup"
    );
    // The process exits: the rest is released, /leak's last two pages included.
    out.clear();
    c.address_space_gone(900, PID, &mut out);
    assert_eq!(
        releases(&out),
        vec![(leak.id, 150, Some("/leak"), 2 * p), (0, 0, None, p)]
    );
    assert!(
        c.retained.is_empty(),
        "nothing is held for a request that holds nothing"
    );
}

/// On a warm server the heap holds freed memory that was resident before memwatch attached:
/// no page of it has an owner. A block the heap hands a request out of it is the request's
/// (taken from the outside row, with no fault and no syscall), not nothing.
#[test]
fn a_warm_heap_block_handed_to_a_request_is_its_own() {
    let p = PAGE;
    let mut c = correlator();
    let mut out = Vec::new();
    assert!(c.resident_before(PID, &[(100 * p, 200 * p)]));
    c.net(
        &ev(NetOp::ReadStart, 100, 0, b"GET /leak HTTP/1.1\r\n\r\n", 0),
        0,
        &mut out,
    );
    let block = HeapBlock {
        alloc: true,
        addr: 120 * p - 16,
        len: 8 * p + 16,
        stack: None,
    };
    c.heap(101, PID, TID, block, &mut out);
    c.net(
        &ev(NetOp::WriteStart, 110, 0, b"HTTP/1.1 200 OK\r\n", 0),
        0,
        &mut out,
    );
    c.net(&ev(NetOp::Close, 120, 0, b"", 115), 0, &mut out);
    let leak = requests(&out)[0];
    assert_eq!((leak.grown, leak.released), (8 * p, 0));
    let outside_released: u64 = out
        .iter()
        .filter_map(|r| match r {
            Row::Release(r) if r.request_id == 0 => Some(r.bytes),
            _ => None,
        })
        .sum();
    assert_eq!(outside_released, 8 * p, "taken from the outside row");
    // The rest stays resident from before: released later, it is of unknown origin.
    c.release(130, 130, PID, 100 * p, 100 * p, &mut out);
    assert_eq!(c.origin_counts().unmatched_release_bytes, 92 * p);
}
