//! The combined access log: `%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"`, one line
//! per response, written (one `write` per line, unbuffered) when the response is complete. `%t` is
//! the time the request was received, in local time, as Apache writes it.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::SystemTime;

/// One response, as logged.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry<'a> {
    /// Client address (`%h`).
    pub client: IpAddr,
    /// When the request was received (`%t`).
    pub received: SystemTime,
    /// The request line, raw (`%r`); `None` logs `-`.
    pub request_line: Option<&'a [u8]>,
    /// Final status (`%>s`).
    pub status: u16,
    /// Body bytes sent (`%b`, `-` for zero).
    pub body_bytes: usize,
    /// `Referer` header.
    pub referer: Option<&'a [u8]>,
    /// `User-Agent` header.
    pub user_agent: Option<&'a [u8]>,
}

/// An access log file shared by all connection threads.
#[derive(Debug)]
pub(crate) struct AccessLog {
    file: Mutex<File>,
}

impl AccessLog {
    /// Opens `path` for appending, creating it.
    pub(crate) fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            file: Mutex::new(file),
        })
    }

    /// Writes one line (a single `write` call).
    pub(crate) fn write(&self, entry: &Entry<'_>) -> io::Result<()> {
        let line = format_line(entry);
        let mut file = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        file.write_all(&line)
    }
}

/// The log line for `entry`, newline included.
pub(crate) fn format_line(entry: &Entry<'_>) -> Vec<u8> {
    let mut line = Vec::with_capacity(256);
    line.extend_from_slice(entry.client.to_string().as_bytes());
    line.extend_from_slice(b" - - [");
    line.extend_from_slice(clf_time(entry.received).as_bytes());
    line.extend_from_slice(b"] \"");
    escape_or_dash(&mut line, entry.request_line);
    line.extend_from_slice(format!("\" {} ", entry.status).as_bytes());
    if entry.body_bytes == 0 {
        line.push(b'-');
    } else {
        line.extend_from_slice(entry.body_bytes.to_string().as_bytes());
    }
    line.extend_from_slice(b" \"");
    escape_or_dash(&mut line, entry.referer);
    line.extend_from_slice(b"\" \"");
    escape_or_dash(&mut line, entry.user_agent);
    line.extend_from_slice(b"\"\n");
    line
}

fn escape_or_dash(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        Some(v) => escape_into(out, v),
        None => out.push(b'-'),
    }
}

/// Apache's log escaping: `\"`, `\\`, and `\xhh` for bytes that are not printable ASCII.
fn escape_into(out: &mut Vec<u8>, value: &[u8]) {
    for &b in value {
        match b {
            b'"' | b'\\' => out.extend_from_slice(&[b'\\', b]),
            0x20..=0x7e => out.push(b),
            _ => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
        }
    }
}

/// `10/Oct/2000:13:55:36 -0700` in local time (C locale month names).
fn clf_time(t: SystemTime) -> String {
    let secs = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
        Err(_) => 0,
    };
    // SAFETY: `tm` is plain old data; all-zero is a valid value that localtime_r overwrites.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the duration of the call; localtime_r is thread-safe.
    let ok = unsafe { !libc::localtime_r(&secs, &mut tm).is_null() };
    if !ok {
        return "01/Jan/1970:00:00:00 +0000".to_owned();
    }
    let mut buf = [0u8; 64];
    // SAFETY: the format is NUL-terminated, `buf` is writable for `buf.len()` bytes and `tm` was
    // filled by localtime_r. strftime returns how many bytes it wrote (0 if it did not fit).
    let n = unsafe {
        libc::strftime(
            buf.as_mut_ptr().cast(),
            buf.len(),
            c"%d/%b/%Y:%H:%M:%S %z".as_ptr(),
            &tm,
        )
    };
    String::from_utf8_lossy(&buf[..n.min(buf.len())]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::time::Duration;

    #[test]
    fn combined_line() {
        let entry = Entry {
            client: IpAddr::V4(Ipv4Addr::LOCALHOST),
            received: SystemTime::UNIX_EPOCH + Duration::from_secs(971_186_136),
            request_line: Some(b"GET /a\"b\xff HTTP/1.1"),
            status: 200,
            body_bytes: 0,
            referer: None,
            user_agent: Some(b"curl/8.5"),
        };
        let line = String::from_utf8(format_line(&entry)).unwrap();
        let (head, rest) = line.split_once(" [").unwrap();
        assert_eq!(head, "127.0.0.1 - -");
        let (time, rest) = rest.split_once("] ").unwrap();
        // Local time zone varies; the shape does not.
        assert_eq!(time.len(), "10/Oct/2000:13:55:36 -0700".len(), "{time}");
        assert_eq!(&time[2..3], "/");
        assert_eq!(
            rest,
            "\"GET /a\\\"b\\xff HTTP/1.1\" 200 - \"-\" \"curl/8.5\"\n"
        );
    }
}
