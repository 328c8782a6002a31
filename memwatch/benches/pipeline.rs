//! memwatch's own cost per request, away from the target: ring-buffer records of a keep-alive
//! HTTP workload (a read that starts each request, a write that starts its response, as the
//! kernel side sends them for nginx serving a static file) made here, then decoded, correlated
//! and written to a recording as a session does, each stage timed on its own thread's clock.
//! The tax bench measures the same stages under a real target, where the machine's two cores
//! are shared with the target and the load generator; this one is steady enough to compare a
//! change against the one before it.
//!
//! `cargo bench -p memwatch --bench pipeline [-- REQUESTS] [--browser]`: with `--browser`, each
//! request's head is a browser's (about 420 bytes, cut at the default capture of 256), not the
//! 40 bytes `wrk` sends.

use std::time::Instant;

use memwatch::{
    capture::{
        probe::{
            Event,
            event::{DRAIN_BATCH, Records},
        },
        procfs::{process_cpu_ns, thread_cpu_ns},
    },
    correlate::{Correlator, route::Router},
    model::Row,
    recording::Writer,
};
use memwatch_common::{
    EventHeader, EventKind,
    net::{NetEventOf, NetMeta, NetOp, SMALL_CAPTURE},
};

/// Keep-alive connections, as `wrk -c16`.
const CONNS: u32 = 16;
/// The server's worker threads (nginx's two workers' main threads).
const THREADS: u32 = 2;
/// Records handed over per drain: about what one 50 ms drain holds at 100,000 requests a second.
const PER_DRAIN: usize = 10_000;
const PID: u32 = 4_000_000;
/// What the kernel side copies of a request by default (`--capture-bytes`).
const CAPTURE: usize = 256;
/// The rest of a browser's request head after its request line.
const BROWSER: &str = "Host: shop.example.com\r\n\
    User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
    Chrome/131.0.0.0 Safari/537.36\r\n\
    Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n\
    Accept-Language: en-GB,en;q=0.9\r\nAccept-Encoding: gzip, deflate, br, zstd\r\n\
    Connection: keep-alive\r\nCookie: session=4f6c2a9e1b7d4c0a8e3f; theme=dark\r\n\r\n";

/// One record as the ring buffer holds it, in the smallest event that holds `data`'s first
/// [`CAPTURE`] bytes.
fn record(op: NetOp, fd: u32, tid: u32, ts_ns: u64, data: &[u8], last_write_ns: u64) -> Vec<u8> {
    if data.len() > SMALL_CAPTURE {
        record_of::<{ memwatch_common::net::MAX_CAPTURE }>(op, fd, tid, ts_ns, data, last_write_ns)
    } else {
        record_of::<SMALL_CAPTURE>(op, fd, tid, ts_ns, data, last_write_ns)
    }
}

fn record_of<const N: usize>(
    op: NetOp,
    fd: u32,
    tid: u32,
    ts_ns: u64,
    data: &[u8],
    last_write_ns: u64,
) -> Vec<u8> {
    let n = data.len().min(N).min(CAPTURE);
    let mut ev = NetEventOf::<N> {
        meta: NetMeta {
            header: EventHeader {
                kind: EventKind::Net as u32,
                tgid: PID,
                tid,
                _pad: 0,
                ts_ns,
            },
            op: op as u32,
            fd,
            generation: u64::from(fd),
            bytes: data.len() as u64,
            last_write_ns,
            last_write_tid: if last_write_ns == 0 { 0 } else { tid },
            last_bytes_out: if last_write_ns == 0 { 0 } else { 853 },
            captured: n as u32,
            ..NetMeta::default()
        },
        data: [0; N],
    };
    ev.data[..n].copy_from_slice(&data[..n]);
    // SAFETY: reading the bytes of a plain repr(C) value, as the ring buffer hands them over.
    unsafe { std::slice::from_raw_parts((&raw const ev).cast::<u8>(), size_of::<NetEventOf<N>>()) }
        .to_vec()
}

/// `n` requests round-robin over the connections: each a read, then a write 20 µs later.
fn workload(n: usize, browser: bool) -> Vec<Vec<u8>> {
    let paths = ["/", "/index.html", "/static/app.js?v=3", "/api/items/42"];
    let mut out = Vec::with_capacity(2 * n);
    let mut ts = 1_000_000_000u64;
    let mut last_write = vec![0u64; CONNS as usize];
    for i in 0..n {
        let c = (i as u32) % CONNS;
        let (fd, tid) = (10 + c, PID + 1 + c % THREADS);
        let rest = if browser {
            BROWSER
        } else {
            "Host: 127.0.0.1:8080\r\n\r\n"
        };
        let head = format!("GET {} HTTP/1.1\r\n{rest}", paths[i % paths.len()]);
        ts += 5_000;
        out.push(record(
            NetOp::ReadStart,
            fd,
            tid,
            ts,
            head.as_bytes(),
            last_write[c as usize],
        ));
        ts += 20_000;
        out.push(record(
            NetOp::WriteStart,
            fd,
            tid,
            ts,
            b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 06 Dec 2026",
            0,
        ));
        last_write[c as usize] = ts;
    }
    out
}

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map_or(Ok(400_000), |a| a.parse())?;
    let browser = std::env::args().any(|a| a == "--browser");
    let records = workload(n, browser);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("pipeline.db");
    let writer = Writer::create(&path, &[])?;
    let mut correlator = Correlator::new(Router::new(Vec::<String>::new())?, false, 4096);
    let (mut decode_ns, mut correlate_ns) = (0u64, 0u64);
    let mut copied = Records::default();
    let mut rows: Vec<Row> = Vec::new();
    let cpu_before = process_cpu_ns();
    let wall = Instant::now();
    for drain in records.chunks(PER_DRAIN) {
        // As a session drains: a batch of records copied out of the ring, then each decoded
        // as it is handled.
        for batch in drain.chunks(DRAIN_BATCH) {
            let t0 = thread_cpu_ns();
            copied.clear();
            for r in batch {
                copied.push(r);
            }
            let t1 = thread_cpu_ns();
            for r in copied.iter() {
                if let Ok(Event::Net(net)) = Event::decode(r) {
                    correlator.net(&net, 0, &mut rows);
                }
            }
            let t2 = thread_cpu_ns();
            decode_ns += t1 - t0;
            correlate_ns += t2 - t1;
        }
        let batch = std::mem::replace(&mut rows, writer.spare());
        writer.send(batch);
    }
    let main_ns = decode_ns + correlate_ns;
    let written = writer.finish()?;
    let writer_ns = (process_cpu_ns() - cpu_before).saturating_sub(main_ns);
    let per = |ns: u64| ns as f64 / n as f64;
    let bytes = std::fs::metadata(&path)?.len();
    println!(
        "{n} requests ({} records, {written} rows) in {:.2} s\n\
         decode     {:>7.0} ns a request\n\
         correlate  {:>7.0} ns a request\n\
         write      {:>7.0} ns a request (the writer thread)\n\
         all        {:>7.0} ns a request\n\
         recording  {:>7.1} bytes a request",
        records.len(),
        wall.elapsed().as_secs_f64(),
        per(decode_ns),
        per(correlate_ns),
        per(writer_ns),
        per(main_ns + writer_ns),
        bytes as f64 / n as f64,
    );
    Ok(())
}
