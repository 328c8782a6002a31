//! Server-side connections: accept creates state, reads and writes move it between phases, close
//! ends it. Only request boundaries are sent (see `memwatch_common::net::NetOp`); payload is
//! copied only from sockets memwatch tracks, never from files or pipes.
//!
//! Reads and writes are seen at `sock:sock_recv_length` and `sock:sock_send_length` (raw
//! tracepoints), which fire only for socket transfers, after the data has been copied. The
//! syscall's fd and user buffer are read from the task's saved user registers. Compared with
//! enter/exit hooks on nine syscalls, this costs one cheap hook per transfer, nothing for file
//! I/O, no per-thread stash, and it also sees a read the thread was already blocked in when
//! memwatch attached.

use aya_ebpf::{
    helpers::{bpf_ktime_get_ns, bpf_probe_read_user, generated},
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};
use memwatch_common::{
    EventKind,
    config::Counter,
    net::{
        ConnState, MAX_CAPTURE, NetEventOf, NetMeta, NetOp, PHASE_IDLE, PHASE_READING,
        PHASE_WRITING, SMALL_CAPTURE, STATUS_LINE_HEAD, conn_key, status_code,
    },
    proc::ThreadFaults,
};

use crate::{
    ctx::{syscall_arg, syscall_ret},
    emit::{count, header_at, reserve, submit},
    fault::flush_at_boundary,
    maps::{CAPTURE_LEN, CONNS, DEFER_RESPONSES, global},
    target::{current, is_target},
};

/// `recv` flag that leaves the data in the socket: not a transfer.
const MSG_PEEK: u64 = 2;

/// A socket transfer, described by the syscall that made it.
#[derive(Clone, Copy)]
struct Io {
    read: bool,
    fd: u32,
    /// First user buffer (resolved through the iovec for readv/writev and recvmsg/sendmsg), or
    /// 0 when there is none to capture (sendfile).
    buf: u64,
    buf_len: u64,
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

/// The syscall behind the current socket transfer, from the saved user registers.
#[cfg(bpf_target_arch = "x86_64")]
#[inline(always)]
fn syscall_io() -> Option<Io> {
    // SAFETY: helpers with no preconditions; the pt_regs pointer is only read through
    // bpf_probe_read_kernel, which fails safely.
    let regs = unsafe { generated::bpf_task_pt_regs(generated::bpf_get_current_task_btf()) };
    if regs == 0 {
        return None;
    }
    // struct pt_regs on x86-64: dx (12), si (13), di (14), orig_ax (15) = the syscall number;
    // the four are adjacent, so one helper call reads them all.
    // Left uninitialised: zeroing it first compiled to a call to a memset subprogram on every
    // transfer, and the helper fills (or, on failure, zeroes) all 32 bytes anyway.
    let mut r = core::mem::MaybeUninit::<[u64; 4]>::uninit();
    // SAFETY: reading 32 bytes of the saved registers into a local.
    let rc = unsafe {
        generated::bpf_probe_read_kernel(
            r.as_mut_ptr().cast(),
            32,
            (regs as u64 + 12 * 8) as *const core::ffi::c_void,
        )
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: the helper succeeded, so all 32 bytes were written.
    let [dx, si, di, nr] = unsafe { r.assume_init() };
    let fd = di as u32;
    let (read, (buf, buf_len)) = match nr {
        0 | 45 => (true, (si, dx)),   // read, recvfrom
        19 => (true, first_iov(si)),  // readv
        47 => (true, msg_iov(si)),    // recvmsg
        1 | 44 => (false, (si, dx)),  // write, sendto
        20 => (false, first_iov(si)), // writev
        46 => (false, msg_iov(si)),   // sendmsg
        40 => (false, (0, 0)),        // sendfile: the data is a file's
        _ => return None,             // io_uring, recvmmsg, splice...: not captured
    };
    Some(Io {
        read,
        fd,
        buf,
        buf_len,
    })
}

/// Other architectures keep their syscall arguments elsewhere; HTTP capture is x86-64 only.
#[cfg(not(bpf_target_arch = "x86_64"))]
#[inline(always)]
fn syscall_io() -> Option<Io> {
    None
}

/// The current task, the clock and its thread's fault counter, each read once per program run.
/// Reading it first sends the thread's pending run of faulted pages, so that growth reaches user
/// space before the boundary that may change whom it is charged to.
#[derive(Clone, Copy)]
struct Now {
    tgid: u32,
    tid: u32,
    ns: u64,
    faults: u64,
    /// The thread's fault slot, null when it has none (it has not faulted since memwatch
    /// attached): where the request it serves is kept.
    thread: *mut ThreadFaults,
}

impl Now {
    #[inline(always)]
    fn read(tgid: u32, tid: u32) -> Self {
        let (faults, thread) = flush_at_boundary(tid);
        Self {
            tgid,
            tid,
            // SAFETY: helper with no preconditions.
            ns: unsafe { bpf_ktime_get_ns() },
            faults,
            thread,
        }
    }

    /// This thread has sent a boundary of request `since` on connection `key`: user space
    /// charges the thread to that request from now on.
    #[inline(always)]
    fn serve(&self, key: u64, since: u64) {
        if !self.thread.is_null() {
            // SAFETY: a map value pointer, valid for this program run; only this thread writes
            // its own slot.
            unsafe {
                (*self.thread).serving_conn = key;
                (*self.thread).serving_since = since;
            }
        }
    }

    /// Whether the last boundary this thread sent was of request `since` on connection `key`.
    #[inline(always)]
    fn serves(&self, key: u64, since: u64) -> bool {
        // SAFETY: as in `serve`.
        !self.thread.is_null()
            && unsafe {
                (*self.thread).serving_conn == key && (*self.thread).serving_since == since
            }
    }
}

/// Sends one boundary event, copying up to `want` bytes from `buf`, in the smallest event that
/// holds them. A response start pending on `conn` rides along: callers that keep `conn` clear it
/// ([`sent`]).
#[inline(always)]
fn send(op: NetOp, now: Now, fd: u32, conn: &ConnState, bytes: u64, buf: u64, want: u64) {
    let want = if buf == 0 { 0 } else { want };
    let meta = NetMeta {
        header: header_at(EventKind::Net, now.tgid, now.tid, now.ns),
        op: op as u32,
        fd,
        generation: conn.generation,
        faults: now.faults,
        bytes,
        last_write_ns: conn.last_write_ns,
        last_write_faults: conn.last_write_faults,
        last_bytes_out: conn.bytes_out,
        last_write_tid: conn.last_write_tid,
        captured: 0,
        response_ns: conn.response_ns,
        response_status: conn.response_status,
        _pad: 0,
    };
    if want <= SMALL_CAPTURE as u64 {
        send_sized::<SMALL_CAPTURE>(meta, buf, want);
    } else {
        send_sized::<MAX_CAPTURE>(meta, buf, want);
    }
}

/// `conn`'s pending response start went out with the event just sent.
#[inline(always)]
fn sent(conn: &mut ConnState) {
    conn.response_ns = 0;
    conn.response_status = 0;
}

/// The status code of a response whose first write is `buf`, if its status line is in the
/// strict form [`status_code`] reads.
#[inline(always)]
fn status_of(buf: u64, avail: u64) -> Option<u32> {
    if buf == 0 || avail < STATUS_LINE_HEAD as u64 {
        return None;
    }
    // SAFETY: reading user memory through the helper, which fails safely.
    let head = unsafe { bpf_probe_read_user(buf as *const [u8; STATUS_LINE_HEAD]) }.ok()?;
    status_code(&head)
}

#[inline(always)]
fn send_sized<const N: usize>(mut meta: NetMeta, buf: u64, want: u64) {
    let Some(mut entry) = reserve::<NetEventOf<N>>() else {
        return;
    };
    let ev = entry.as_mut_ptr();
    let len = if want > N as u64 { N as u64 } else { want };
    if len > 0 {
        // Clamp, then mask: the verifier needs a provable bound on the length.
        let n = (len as u32) & (N as u32 * 2 - 1);
        if n <= N as u32 {
            // SAFETY: `ev` points to a reserved event; the payload is written in place (it may
            // be too large for the 512-byte stack) from user memory through the helper, which
            // fails safely.
            let rc = unsafe {
                generated::bpf_probe_read_user(
                    (*ev).data.as_mut_ptr().cast(),
                    n,
                    buf as *const core::ffi::c_void,
                )
            };
            if rc == 0 {
                meta.captured = n;
            }
        }
    }
    // SAFETY: as above; the 88-byte head is written once.
    unsafe { (*ev).meta = meta };
    submit(entry);
}

#[inline(always)]
fn accept_exit(ctx: &TracePointContext) {
    let (tgid, tid) = current();
    let ret = syscall_ret(ctx);
    if ret < 0 || !is_target(tgid) {
        return;
    }
    let fd = ret as u32;
    let now = Now::read(tgid, tid);
    let conn = ConnState {
        generation: now.ns,
        phase: PHASE_IDLE,
        ..ConnState::default()
    };
    if CONNS.insert(conn_key(tgid, fd), conn, 0).is_err() {
        count(Counter::MapFull);
        return;
    }
    send(NetOp::Accept, now, fd, &conn, 0, 0, 0);
}

/// A transfer of `ret` bytes on a socket of the current task.
#[inline(always)]
fn transfer(ret: i64) {
    let (tgid, tid) = current();
    if ret <= 0 || !is_target(tgid) {
        return;
    }
    let Some(p) = syscall_io() else {
        return;
    };
    let ret = ret as u64;
    let key = conn_key(tgid, p.fd);
    let Some(conn) = CONNS.get_ptr_mut(key) else {
        return;
    };
    // SAFETY: map value pointer valid for this program run; races with another thread of the
    // same connection only blur counters, never memory safety.
    let conn = unsafe { &mut *conn };
    let cap = u64::from(global(&CAPTURE_LEN));
    let avail = if p.buf_len < ret { p.buf_len } else { ret };
    if p.read {
        // The read that starts a request is always sent; further reads only while the capture
        // still has room.
        let start = conn.phase != PHASE_READING;
        let (op, room) = if start {
            (NetOp::ReadStart, cap)
        } else {
            (NetOp::ReadMore, cap.saturating_sub(conn.bytes_in))
        };
        if start || room > 0 {
            let want = if avail < room { avail } else { room };
            let now = Now::read(tgid, tid);
            send(op, now, p.fd, conn, ret, p.buf, want);
            sent(conn);
            if start {
                conn.request_ns = now.ns;
            }
            conn.read_tid = tid;
            now.serve(key, conn.request_ns);
        }
        if start {
            conn.phase = PHASE_READING;
            conn.bytes_in = ret;
            conn.bytes_out = 0;
        } else {
            conn.bytes_in += ret;
        }
        return;
    }
    // A write: its time and fault counter are kept as the response's last write.
    let now = Now::read(tgid, tid);
    // A new response starts after a read, or wherever a write begins with "HTTP/"
    // (pipelined responses written back to back).
    let first = conn.phase != PHASE_WRITING;
    let mut starts = first;
    if !starts && p.buf != 0 && avail >= 5 {
        // SAFETY: reading user memory through the helper, which fails safely.
        let head = unsafe { bpf_probe_read_user(p.buf as *const [u8; 5]) }.unwrap_or([0; 5]);
        starts = head == *b"HTTP/";
    }
    if starts {
        // The first response after a request, written by the thread that read it with no
        // other request's boundary in between: user space already charges this thread to the
        // request, so the start waits for the connection's next event (`ConnState::response_ns`).
        let folded = first
            && global(&DEFER_RESPONSES) != 0
            && conn.response_ns == 0
            && conn.read_tid == tid
            && now.serves(key, conn.request_ns);
        match if folded {
            status_of(p.buf, avail)
        } else {
            None
        } {
            Some(code) => {
                conn.response_ns = now.ns;
                conn.response_status = code;
            }
            None => {
                // Only the status line is read from a response.
                let want = if p.buf != 0 {
                    if avail < SMALL_CAPTURE as u64 {
                        avail
                    } else {
                        SMALL_CAPTURE as u64
                    }
                } else {
                    0
                };
                send(NetOp::WriteStart, now, p.fd, conn, ret, p.buf, want);
                sent(conn);
                now.serve(key, conn.request_ns);
            }
        }
        conn.phase = PHASE_WRITING;
        conn.bytes_out = 0;
    }
    conn.bytes_out += ret;
    conn.last_write_ns = now.ns;
    conn.last_write_tid = tid;
    conn.last_write_faults = now.faults;
}

#[tracepoint]
pub(crate) fn accept_exit_tp(ctx: TracePointContext) -> u32 {
    accept_exit(&ctx);
    0
}

/// `sock_recv_length(struct sock *sk, int ret, int flags)`: after a socket receive.
#[raw_tracepoint(tracepoint = "sock_recv_length")]
pub(crate) fn sock_recv(ctx: RawTracePointContext) -> i32 {
    let ret = ctx.arg::<u64>(1) as i32;
    if ctx.arg::<u64>(2) & MSG_PEEK == 0 {
        transfer(i64::from(ret));
    }
    0
}

/// `sock_send_length(struct sock *sk, int ret, int flags)`: after a socket send.
#[raw_tracepoint(tracepoint = "sock_send_length")]
pub(crate) fn sock_send(ctx: RawTracePointContext) -> i32 {
    transfer(i64::from(ctx.arg::<u64>(1) as i32));
    0
}

#[tracepoint]
pub(crate) fn close_enter(ctx: TracePointContext) -> u32 {
    let (tgid, tid) = current();
    if !is_target(tgid) {
        return 0;
    }
    let fd = syscall_arg(&ctx, 0) as u32;
    let key = conn_key(tgid, fd);
    // SAFETY: the value is copied out before the entry is removed.
    let Some(conn) = (unsafe { CONNS.get(key) }).copied() else {
        return 0;
    };
    let _ = CONNS.remove(key);
    send(NetOp::Close, Now::read(tgid, tid), fd, &conn, 0, 0, 0);
    0
}
