//! Server-side connections: accept creates state, reads and writes move it between phases, close
//! ends it. Only request boundaries are sent (see `memwatch_common::net::NetOp`); payload is
//! copied only from sockets memwatch tracks, never from files or pipes.

use aya_ebpf::{
    helpers::{bpf_ktime_get_ns, bpf_probe_read_user, generated},
    macros::tracepoint,
    programs::TracePointContext,
};
use memwatch_common::{
    EventKind,
    config::Counter,
    net::{
        ConnState, MAX_CAPTURE, NetEvent, NetMeta, NetOp, PHASE_IDLE, PHASE_READING, PHASE_WRITING,
    },
};

use crate::{
    emit::{count, header, reserve, submit},
    fault::thread_faults,
    maps::{CAPTURE_LEN, CONNS, LATE_CONNS, PENDING_NET, PendingNet, global},
    target::{current, is_target},
};

const DIR_READ: u32 = 1;
const DIR_WRITE_NOBUF: u32 = 2;
const DIR_WRITE: u32 = 3;

#[inline(always)]
fn arg(ctx: &TracePointContext, n: usize) -> u64 {
    // SAFETY: syscall tracepoint records have at least six 8-byte argument slots at 16.
    unsafe { ctx.read_at::<u64>(16 + 8 * n) }.unwrap_or(0)
}

#[inline(always)]
fn conn_key(tgid: u32, fd: u32) -> u64 {
    ((tgid as u64) << 32) | fd as u64
}

/// First `(base, len)` of a user iovec array.
#[inline(always)]
fn first_iov(iov: u64) -> (u64, u64) {
    if iov == 0 {
        return (0, 0);
    }
    // SAFETY: reading user memory through the helper, which fails safely on a bad address.
    let base = unsafe { bpf_probe_read_user(iov as *const u64) }.unwrap_or(0);
    // SAFETY: as above.
    let len = unsafe { bpf_probe_read_user((iov + 8) as *const u64) }.unwrap_or(0);
    (base, len)
}

/// Stashes a socket syscall's fd and buffer when the fd is a tracked connection of a target.
#[inline(always)]
fn stash(dir: u32, fd: u64, buf: u64, buf_len: u64) {
    let (tgid, tid) = current();
    if !is_target(tgid) {
        return;
    }
    let fd = fd as u32;
    // SAFETY: presence test only.
    if unsafe { CONNS.get(&conn_key(tgid, fd)) }.is_none() {
        return;
    }
    let pending = PendingNet {
        dir,
        fd,
        buf,
        buf_len,
    };
    if PENDING_NET.insert(&tid, &pending, 0).is_err() {
        count(Counter::MapFull);
    }
}

/// Sends one boundary event, copying up to `want` bytes from `buf`.
#[inline(always)]
fn send(
    op: NetOp,
    tgid: u32,
    tid: u32,
    fd: u32,
    conn: &ConnState,
    bytes: u64,
    buf: u64,
    want: u64,
) {
    let Some(mut entry) = reserve::<NetEvent>() else {
        return;
    };
    let ev = entry.as_mut_ptr();
    let mut len = want;
    if len > MAX_CAPTURE as u64 {
        len = MAX_CAPTURE as u64;
    }
    if buf == 0 {
        len = 0;
    }
    let mut meta = NetMeta {
        header: header(EventKind::Net, tgid, tid),
        op: op as u32,
        fd,
        generation: conn.generation,
        faults: thread_faults(tid),
        bytes,
        last_write_ns: conn.last_write_ns,
        last_write_faults: conn.last_write_faults,
        last_bytes_out: conn.bytes_out,
        last_write_tid: conn.last_write_tid,
        captured: 0,
    };
    if len > 0 {
        // Clamp, then mask: the verifier needs a provable bound on the length.
        let n = (len as u32) & (MAX_CAPTURE as u32 * 2 - 1);
        // SAFETY: `ev` points to a reserved NetEvent; the payload is written in place (it is
        // too large for the 512-byte stack) from user memory through the helper, which fails
        // safely.
        if n <= MAX_CAPTURE as u32
            && unsafe {
                generated::bpf_probe_read_user(
                    (*ev).data.as_mut_ptr().cast(),
                    n,
                    buf as *const core::ffi::c_void,
                )
            } == 0
        {
            meta.captured = n;
        }
    }
    // SAFETY: as above; the 88-byte header part is written once.
    unsafe { (*ev).meta = meta };
    submit(entry);
}

#[inline(always)]
fn accept_exit(ctx: &TracePointContext) {
    let (tgid, tid) = current();
    // SAFETY: `ret` is at offset 16 of every sys_exit record.
    let ret = unsafe { ctx.read_at::<i64>(16) }.unwrap_or(-1);
    if ret < 0 || !is_target(tgid) {
        return;
    }
    let fd = ret as u32;
    let conn = ConnState {
        // SAFETY: helper with no preconditions.
        generation: unsafe { bpf_ktime_get_ns() },
        phase: PHASE_IDLE,
        ..ConnState::default()
    };
    if CONNS.insert(&conn_key(tgid, fd), &conn, 0).is_err() {
        count(Counter::MapFull);
        return;
    }
    send(NetOp::Accept, tgid, tid, fd, &conn, 0, 0, 0);
}

#[inline(always)]
fn io_exit(ctx: &TracePointContext) {
    let (tgid, tid) = current();
    // SAFETY: the value is copied out before the entry is removed.
    let p = match (unsafe { PENDING_NET.get(&tid) }).copied() {
        Some(p) => {
            let _ = PENDING_NET.remove(&tid);
            p
        }
        None => match missed_enter(ctx, tgid) {
            Some(p) => p,
            None => return,
        },
    };
    // SAFETY: `ret` is at offset 16 of every sys_exit record.
    let ret = unsafe { ctx.read_at::<i64>(16) }.unwrap_or(-1);
    if ret <= 0 {
        return;
    }
    let ret = ret as u64;
    let Some(conn) = CONNS.get_ptr_mut(&conn_key(tgid, p.fd)) else {
        return;
    };
    // SAFETY: map value pointer valid for this program run; races with another thread of the
    // same connection only blur counters, never memory safety.
    let conn = unsafe { &mut *conn };
    seen(tgid, conn);
    let cap = global(&CAPTURE_LEN) as u64;
    let avail = if p.buf_len < ret { p.buf_len } else { ret };
    if p.dir == DIR_READ {
        if conn.phase != PHASE_READING {
            let want = if avail < cap { avail } else { cap };
            send(NetOp::ReadStart, tgid, tid, p.fd, conn, ret, p.buf, want);
            conn.phase = PHASE_READING;
            conn.bytes_in = ret;
            conn.bytes_out = 0;
        } else {
            if conn.bytes_in < cap {
                let room = cap - conn.bytes_in;
                let want = if avail < room { avail } else { room };
                send(NetOp::ReadMore, tgid, tid, p.fd, conn, ret, p.buf, want);
            }
            conn.bytes_in += ret;
        }
        return;
    }
    // A write. A new response starts after a read, or wherever a write begins with "HTTP/"
    // (pipelined responses written back to back).
    let mut starts = conn.phase != PHASE_WRITING;
    if !starts && p.dir == DIR_WRITE && avail >= 5 {
        // SAFETY: reading user memory through the helper, which fails safely.
        let head = unsafe { bpf_probe_read_user(p.buf as *const [u8; 5]) }.unwrap_or([0; 5]);
        starts = head == *b"HTTP/";
    }
    if starts {
        let want = if p.dir == DIR_WRITE {
            if avail < cap { avail } else { cap }
        } else {
            0
        };
        send(NetOp::WriteStart, tgid, tid, p.fd, conn, ret, p.buf, want);
        conn.phase = PHASE_WRITING;
        conn.bytes_out = 0;
    }
    conn.bytes_out += ret;
    // SAFETY: helper with no preconditions.
    conn.last_write_ns = unsafe { bpf_ktime_get_ns() };
    conn.last_write_tid = tid;
    conn.last_write_faults = thread_faults(tid);
}

/// A read or write whose enter ran before memwatch attached: a thread of a keep-alive server
/// that was already blocked in `recv` when tracing started. Its arguments are still in the
/// task's saved user registers (x86-64 syscall ABI: rdi, rsi, rdx), so the first request on a
/// connection open before attach is not lost.
#[cfg(bpf_target_arch = "x86_64")]
#[inline(always)]
fn missed_enter(ctx: &TracePointContext, tgid: u32) -> Option<PendingNet> {
    // Only while some connection of this process is still unseen: otherwise every file read and
    // write of the target would pay for the register reads below.
    // SAFETY: the value is copied out.
    if unsafe { LATE_CONNS.get(&tgid) }.copied().unwrap_or(0) == 0 || !is_target(tgid) {
        return None;
    }
    // SAFETY: `__syscall_nr` is at offset 8 of every sys_exit record.
    let nr = unsafe { ctx.read_at::<i32>(8) }.ok()?;
    let dir = match nr {
        0 | 19 | 45 | 47 => DIR_READ,  // read, readv, recvfrom, recvmsg
        1 | 20 | 44 | 46 => DIR_WRITE, // write, writev, sendto, sendmsg
        40 => DIR_WRITE_NOBUF,         // sendfile
        _ => return None,
    };
    // SAFETY: helpers with no preconditions; the pt_regs pointer is only read through
    // bpf_probe_read_kernel, which fails safely.
    let regs = unsafe { generated::bpf_task_pt_regs(generated::bpf_get_current_task_btf()) };
    if regs == 0 {
        return None;
    }
    let reg = |index: u64| -> u64 {
        let mut v = 0u64;
        // SAFETY: reading one u64 of the saved registers; failure leaves 0.
        unsafe {
            generated::bpf_probe_read_kernel(
                (&raw mut v).cast(),
                8,
                (regs as u64 + index * 8) as *const core::ffi::c_void,
            )
        };
        v
    };
    // struct pt_regs on x86-64: ... dx (12), si (13), di (14).
    let fd = reg(14) as u32;
    // SAFETY: presence test only.
    unsafe { CONNS.get(&conn_key(tgid, fd)) }?;
    let (buf, buf_len) = match nr {
        19 | 20 => first_iov(reg(13)),
        46 | 47 => msg_iov(reg(13)),
        40 => (0, 0),
        _ => (reg(13), reg(12)),
    };
    Some(PendingNet {
        dir,
        fd,
        buf,
        buf_len,
    })
}

#[cfg(not(bpf_target_arch = "x86_64"))]
#[inline(always)]
fn missed_enter(_ctx: &TracePointContext, _tgid: u32) -> Option<PendingNet> {
    None
}

/// A connection open before attach has been seen: one fewer to wait for.
#[inline(always)]
fn seen(tgid: u32, conn: &mut ConnState) {
    if conn.late == 0 {
        return;
    }
    conn.late = 0;
    if let Some(count) = LATE_CONNS.get_ptr_mut(&tgid) {
        // SAFETY: valid map value pointer. Not atomic (the BPF target has no atomic RMW in
        // core): two threads racing can lose a decrement, which only keeps the recovery path
        // open longer, never loses data.
        unsafe { *count = (*count).saturating_sub(1) };
    }
}

#[tracepoint]
pub fn accept_exit_tp(ctx: TracePointContext) -> u32 {
    accept_exit(&ctx);
    0
}

/// read(fd, buf, count), recvfrom(fd, buf, len, ...), write(fd, buf, count), sendto(fd, buf, ...).
#[tracepoint]
pub fn read_enter(ctx: TracePointContext) -> u32 {
    stash(DIR_READ, arg(&ctx, 0), arg(&ctx, 1), arg(&ctx, 2));
    0
}

#[tracepoint]
pub fn write_enter(ctx: TracePointContext) -> u32 {
    stash(DIR_WRITE, arg(&ctx, 0), arg(&ctx, 1), arg(&ctx, 2));
    0
}

/// readv(fd, iov, iovcnt) and writev: the first iovec is captured.
#[tracepoint]
pub fn readv_enter(ctx: TracePointContext) -> u32 {
    let (base, len) = first_iov(arg(&ctx, 1));
    stash(DIR_READ, arg(&ctx, 0), base, len);
    0
}

#[tracepoint]
pub fn writev_enter(ctx: TracePointContext) -> u32 {
    let (base, len) = first_iov(arg(&ctx, 1));
    stash(DIR_WRITE, arg(&ctx, 0), base, len);
    0
}

/// recvmsg(fd, msg, flags) and sendmsg: `msg_iov` is at offset 16 of `struct user_msghdr`.
#[inline(always)]
fn msg_iov(msg: u64) -> (u64, u64) {
    if msg == 0 {
        return (0, 0);
    }
    // SAFETY: reading user memory through the helper, which fails safely.
    let iov = unsafe { bpf_probe_read_user((msg + 16) as *const u64) }.unwrap_or(0);
    first_iov(iov)
}

#[tracepoint]
pub fn recvmsg_enter(ctx: TracePointContext) -> u32 {
    let (base, len) = msg_iov(arg(&ctx, 1));
    stash(DIR_READ, arg(&ctx, 0), base, len);
    0
}

#[tracepoint]
pub fn sendmsg_enter(ctx: TracePointContext) -> u32 {
    let (base, len) = msg_iov(arg(&ctx, 1));
    stash(DIR_WRITE, arg(&ctx, 0), base, len);
    0
}

/// sendfile(out_fd, in_fd, offset, count): counted, never captured (the data is a file's).
#[tracepoint]
pub fn sendfile_enter(ctx: TracePointContext) -> u32 {
    stash(DIR_WRITE_NOBUF, arg(&ctx, 0), 0, 0);
    0
}

#[tracepoint]
pub fn io_exit_tp(ctx: TracePointContext) -> u32 {
    io_exit(&ctx);
    0
}

#[tracepoint]
pub fn close_enter(ctx: TracePointContext) -> u32 {
    let (tgid, tid) = current();
    if !is_target(tgid) {
        return 0;
    }
    let fd = arg(&ctx, 0) as u32;
    let key = conn_key(tgid, fd);
    // SAFETY: the value is copied out before the entry is removed.
    let Some(mut conn) = (unsafe { CONNS.get(&key) }).copied() else {
        return 0;
    };
    let _ = CONNS.remove(&key);
    seen(tgid, &mut conn);
    send(NetOp::Close, tgid, tid, fd, &conn, 0, 0, 0);
    0
}
