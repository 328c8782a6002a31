//! A collected runtime's live heap after each collection (`memwatch_common::gc`): one uprobe
//! program for every such probe, told by its attach cookie what it reports and in which
//! registers. These fire a few times a second (once per collection, or per memory pool of
//! one), or once per sampled allocation of Go's (one in about 512 KiB allocated, by default),
//! so the program does nothing to save time.
//!
//! HotSpot's `hotspot:mem__pool__gc__end` USDT probe, as its note describes it:
//! `mem__pool__gc__end(char *manager, size_t len, char *pool, size_t len, size_t init,
//! size_t used, size_t committed, size_t max)`; `hotspot:gc__end()` takes nothing. Go's
//! `runtime.(*gcControllerState).resetLive(c, bytesMarked uint64)` takes `c` in RAX and
//! `bytesMarked` in RBX. Go's `runtime.mProf_Malloc(p, size)` (up to Go 1.22) takes the sampled
//! object in RAX and its size in RBX; `runtime.freeSpecial(s, p, size)` takes the special
//! record in RAX, the object in RBX and its size in RCX.

use aya_ebpf::{
    EbpfContext as _,
    bindings::pt_regs,
    helpers::{bpf_get_attach_cookie, bpf_probe_read_user_buf},
    macros::uprobe,
    programs::ProbeContext,
};
use memwatch_common::{
    EventKind,
    gc::{Cookie, GC_NAME_LEN, GcEvent, GcOp},
};

use crate::{
    emit::{header, reserve, submit},
    target::{current, is_target},
};

/// Register `n` of `regs`, numbered as `memwatch_common::gc::Reg`.
#[inline(always)]
fn reg(regs: &pt_regs, n: u8) -> u64 {
    match n {
        0 => regs.rax,
        1 => regs.rbx,
        2 => regs.rcx,
        3 => regs.rdx,
        4 => regs.rsi,
        5 => regs.rdi,
        6 => regs.rbp,
        7 => regs.rsp,
        8 => regs.r8,
        9 => regs.r9,
        10 => regs.r10,
        11 => regs.r11,
        12 => regs.r12,
        13 => regs.r13,
        14 => regs.r14,
        _ => regs.r15,
    }
}

#[uprobe]
pub(crate) fn gc_report(ctx: ProbeContext) -> u32 {
    let (tgid, tid) = current();
    if !is_target(tgid) {
        return 0;
    }
    // SAFETY: a uprobe's context pointer is what the helper takes.
    let cookie = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) };
    let (op, bytes_reg, name_reg, len_reg) = Cookie::unpack(cookie);
    if GcOp::from_u32(op).is_none() {
        return 0;
    }
    // Copied out whole: the verifier refuses a load from the context at an offset computed at
    // run time, which picking a register by number through a reference compiles to.
    // SAFETY: a uprobe's context is the task's saved registers; the verifier checks the reads.
    let regs = unsafe { core::ptr::read_volatile(ctx.regs) };
    let regs = &regs;
    let bytes = reg(regs, bytes_reg);
    let mut event = GcEvent {
        header: header(EventKind::Gc, tgid, tid),
        op,
        name_len: 0,
        bytes,
        addr: 0,
        name: [0; GC_NAME_LEN],
    };
    if op == GcOp::GoSample as u32 || op == GcOp::GoSampleFree as u32 {
        event.addr = reg(regs, name_reg);
    }
    if op == GcOp::JvmPool as u32 {
        // The whole buffer is read, whatever the name's length: a read of a constant size is
        // what the verifier takes, and HotSpot's pool names are static strings with more
        // strings after them. A failed read leaves the name empty.
        let addr = reg(regs, name_reg) as *const u8;
        // SAFETY: reads user memory through the helper, which fails safely.
        if unsafe { bpf_probe_read_user_buf(addr, &mut event.name) }.is_ok() {
            event.name_len = (reg(regs, len_reg) as usize).min(GC_NAME_LEN) as u32;
        }
    }
    let Some(mut entry) = reserve::<GcEvent>() else {
        return 0;
    };
    entry.write(event);
    submit(entry);
    0
}
