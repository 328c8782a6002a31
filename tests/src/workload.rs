//! Workloads as an operator meets them: routes interleaved in a seeded random order (a route
//! driven in a block on a cold server hides how allocators reuse what another route freed),
//! sent on keep-alive connections by several clients at once, at a paced rate or as fast as
//! the server answers.

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

/// xorshift64*: a small seeded generator, so that a failing order can be replayed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Each of `paths` `n` times, in an order shuffled with `seed`.
pub fn interleaved(paths: &[&str], n: usize, seed: u64) -> Vec<String> {
    let mut all: Vec<String> = paths
        .iter()
        .flat_map(|p| std::iter::repeat_n((*p).to_owned(), n))
        .collect();
    let mut rng = Rng::new(seed);
    for i in (1..all.len()).rev() {
        let j = rng.below(i + 1);
        all.swap(i, j);
    }
    all
}

/// What a run sent and got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub requests: usize,
    /// Responses with a 2xx status.
    pub ok: usize,
    pub elapsed: Duration,
}

/// One client's keep-alive connection, opened again when the server closes it.
struct Client {
    port: u16,
    conn: Option<TcpStream>,
}

impl Client {
    fn get(&mut self, path: &str) -> u16 {
        for _ in 0..3 {
            let stream = match self.conn.take() {
                Some(s) => s,
                None => match TcpStream::connect(("127.0.0.1", self.port)) {
                    Ok(s) => s,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                },
            };
            if let Some((status, keep)) = exchange(&stream, self.port, path) {
                if keep {
                    self.conn = Some(stream);
                }
                return status;
            }
        }
        0
    }
}

/// Sends one GET on `s` and reads its response: (status, whether the connection stays open);
/// `None` when the connection failed (a closed keep-alive connection: the caller retries).
fn exchange(mut s: &TcpStream, port: u16, path: &str) -> Option<(u16, bool)> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        got.extend_from_slice(&buf[..n]);
        let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
        let status = head.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
        let close = head.contains("connection: close");
        let body = &got[end + 4..];
        if head.contains("transfer-encoding: chunked") {
            if body.ends_with(b"0\r\n\r\n") {
                return Some((status, !close));
            }
            continue;
        }
        let len: Option<usize> = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok());
        match len {
            Some(len) if body.len() >= len => return Some((status, !close)),
            Some(_) => continue,
            // No length: the body runs to the connection's end.
            None => {
                let mut rest = Vec::new();
                let _ = s.read_to_end(&mut rest);
                return Some((status, false));
            }
        }
    }
}

/// Sends `paths` in order to 127.0.0.1:`port` from `clients` clients at once, each on its own
/// keep-alive connection, taking the next path as it is free. With `rate`, requests start at
/// most that many per second in all; without, as fast as the server answers.
pub fn drive(port: u16, paths: &[String], clients: usize, rate: Option<f64>) -> Sent {
    let paths = Arc::new(paths.to_vec());
    let next = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    // Each request's start is due at i / rate seconds.
    let due = Arc::new(Mutex::new(()));
    let handles: Vec<_> = (0..clients.max(1))
        .map(|_| {
            let (paths, next, ok, due) = (
                Arc::clone(&paths),
                Arc::clone(&next),
                Arc::clone(&ok),
                Arc::clone(&due),
            );
            std::thread::spawn(move || {
                let mut client = Client { port, conn: None };
                loop {
                    let i = {
                        let _order = due
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        next.fetch_add(1, Ordering::SeqCst)
                    };
                    let Some(path) = paths.get(i) else { break };
                    if let Some(rate) = rate {
                        let at = started + Duration::from_secs_f64(i as f64 / rate);
                        if let Some(wait) = at.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                    }
                    if (200..300).contains(&client.get(path)) {
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
    Sent {
        requests: paths.len(),
        ok: ok.load(Ordering::SeqCst),
        elapsed: started.elapsed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_is_seeded_and_every_path_comes_n_times() {
        let a = interleaved(&["/a", "/b", "/c"], 50, 7);
        assert_eq!(a, interleaved(&["/a", "/b", "/c"], 50, 7));
        assert_ne!(a, interleaved(&["/a", "/b", "/c"], 50, 8));
        for p in ["/a", "/b", "/c"] {
            assert_eq!(a.iter().filter(|x| *x == p).count(), 50);
        }
        // Interleaved, not in blocks: the longest run of one path is short.
        let longest = a
            .chunk_by(|x, y| x == y)
            .map(<[String]>::len)
            .max()
            .unwrap_or(0);
        assert!(longest < 8, "{longest}");
    }
}
