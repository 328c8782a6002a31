//! Following a log file by name, through rotation, by polling. Bytes only: the [`Tailer`]
//! returns whole lines and knows nothing of formats (`capture::log_source` parses them while
//! recording).
//!
//! - **rename-and-create** (logrotate's default, `mv access.log access.log.1; reopen`): noticed
//!   when the path's (device, inode) changes. The old file is read to its end first, then kept
//!   open and drained for [`TailOptions::rotate_grace`] in case the server still writes to it
//!   (nginx does until it gets `USR1`), then the new file is read from its start.
//! - **copytruncate**: noticed when the file is shorter than what was read, or when the bytes
//!   just before the read offset changed (the file was truncated and already refilled past it).
//!   Reading restarts at 0. Lines written between logrotate's copy and its truncate are in the
//!   copy only; no tailer can see them.
//! - A missing file is waited for; when it appears it is read from its start.
//! - A partial last line is held until its newline. A line longer than
//!   [`TailOptions::max_line_len`] is delivered cut to `max_line_len + 1` bytes (so the parser
//!   rejects it as `too_long`) and the rest of it is skipped.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{FileExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::parse::MAX_LINE_LEN;

/// Where to start in a file that exists when tailing starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartAt {
    /// Skip what is already there; read only what is written from now on.
    #[default]
    End,
    /// Read the whole file, then follow it.
    Beginning,
}

/// Tailing options.
#[derive(Debug, Clone)]
pub struct TailOptions {
    /// Where to start in a file that exists at the first poll.
    pub start: StartAt,
    /// Longest line delivered whole; longer ones are cut (see the module docs).
    pub max_line_len: usize,
    /// At most this many bytes are read per [`Tailer::poll`], so a huge backlog is delivered in
    /// bounded batches: poll again at once while it returns lines.
    pub max_read_per_poll: usize,
    /// How long a rotated-away file is still read after its last new data.
    pub rotate_grace: Duration,
}

impl Default for TailOptions {
    fn default() -> Self {
        Self {
            start: StartAt::End,
            max_line_len: MAX_LINE_LEN,
            max_read_per_poll: 4 * 1024 * 1024,
            rotate_grace: Duration::from_secs(2),
        }
    }
}

/// Bytes before the read offset remembered to notice a truncated-and-refilled file.
const FINGERPRINT_LEN: usize = 64;

/// Read buffer size.
const CHUNK: usize = 64 * 1024;

/// Why [`Source::read_available`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadEnd {
    Eof,
    Budget,
    /// The bytes before the offset changed: the file was truncated.
    Truncated,
}

/// One open file being read.
#[derive(Debug)]
struct Source {
    file: File,
    /// (device, inode) when opened.
    id: (u64, u64),
    offset: u64,
    /// The start of a line whose newline has not come yet.
    partial: Vec<u8>,
    /// Skipping the rest of an over-long line.
    discarding: bool,
    /// The last bytes before `offset`.
    fingerprint: Vec<u8>,
    last_data: Instant,
}

impl Source {
    fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        Ok(Self {
            file,
            id: (meta.dev(), meta.ino()),
            offset: 0,
            partial: Vec::new(),
            discarding: false,
            fingerprint: Vec::new(),
            last_data: Instant::now(),
        })
    }

    /// Moves to the end of the file, remembering its last bytes.
    fn seek_end(&mut self) -> io::Result<()> {
        let len = self.file.metadata()?.len();
        let fp_len = len.min(FINGERPRINT_LEN as u64);
        let mut fp = vec![0; usize::try_from(fp_len).unwrap_or(FINGERPRINT_LEN)];
        self.file.read_exact_at(&mut fp, len - fp_len)?;
        self.offset = len;
        self.fingerprint = fp;
        Ok(())
    }

    /// Reads up to `budget` new bytes, appending complete lines.
    ///
    /// Each read starts at the remembered bytes before the offset and checks them, so a file
    /// truncated (and maybe refilled) since the last read is noticed within the same `pread`.
    fn read_available(
        &mut self,
        buf: &mut [u8],
        budget: &mut usize,
        max_line_len: usize,
        lines: &mut Vec<Vec<u8>>,
    ) -> io::Result<ReadEnd> {
        loop {
            if *budget == 0 {
                return Ok(ReadEnd::Budget);
            }
            let fp_len = self.fingerprint.len();
            let want = (buf.len() - FINGERPRINT_LEN).min(*budget) + fp_len;
            let n = match self
                .file
                .read_at(&mut buf[..want], self.offset - fp_len as u64)
            {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n < fp_len || buf[..fp_len] != self.fingerprint[..] {
                return Ok(ReadEnd::Truncated);
            }
            let data = &buf[fp_len..n];
            if data.is_empty() {
                return Ok(ReadEnd::Eof);
            }
            self.offset += data.len() as u64;
            *budget -= data.len();
            self.last_data = Instant::now();
            if data.len() >= FINGERPRINT_LEN {
                self.fingerprint.clear();
                self.fingerprint
                    .extend_from_slice(&data[data.len() - FINGERPRINT_LEN..]);
            } else {
                self.fingerprint.extend_from_slice(data);
                let excess = self.fingerprint.len().saturating_sub(FINGERPRINT_LEN);
                self.fingerprint.drain(..excess);
            }
            self.split_lines(data, max_line_len, lines);
        }
    }

    /// Reads like [`Source::read_available`], restarting from 0 after a truncation. Returns
    /// `true` at end of file, `false` when the budget ran out.
    fn read_following_truncation(
        &mut self,
        path: &Path,
        buf: &mut [u8],
        budget: &mut usize,
        max_line_len: usize,
        lines: &mut Vec<Vec<u8>>,
    ) -> io::Result<bool> {
        loop {
            match self.read_available(buf, budget, max_line_len, lines)? {
                ReadEnd::Eof => return Ok(true),
                ReadEnd::Budget => return Ok(false),
                ReadEnd::Truncated => {
                    tracing::info!(path = %path.display(), offset = self.offset, "access log truncated (copytruncate?), reading it from its start");
                    self.flush_partial(lines);
                    self.offset = 0;
                    self.fingerprint.clear();
                }
            }
        }
    }

    fn split_lines(&mut self, mut data: &[u8], max_line_len: usize, lines: &mut Vec<Vec<u8>>) {
        while !data.is_empty() {
            match data.iter().position(|&b| b == b'\n') {
                Some(nl) => {
                    self.append(&data[..nl], max_line_len, lines);
                    if self.discarding {
                        self.discarding = false;
                    } else {
                        lines.push(std::mem::take(&mut self.partial));
                    }
                    data = &data[nl + 1..];
                }
                None => {
                    self.append(data, max_line_len, lines);
                    break;
                }
            }
        }
    }

    /// Adds bytes of the current line, cutting it at `max_line_len + 1`.
    fn append(&mut self, piece: &[u8], max_line_len: usize, lines: &mut Vec<Vec<u8>>) {
        if self.discarding {
            return;
        }
        let room = (max_line_len + 1).saturating_sub(self.partial.len());
        if piece.len() <= room {
            self.partial.extend_from_slice(piece);
        } else {
            self.partial.extend_from_slice(&piece[..room]);
            lines.push(std::mem::take(&mut self.partial));
            self.discarding = true;
        }
    }

    /// Delivers a held partial line as is (its file will not grow any more).
    fn flush_partial(&mut self, lines: &mut Vec<Vec<u8>>) {
        if !self.partial.is_empty() {
            lines.push(std::mem::take(&mut self.partial));
        }
        self.discarding = false;
    }
}

/// Follows one log file by name. Call [`poll`](Tailer::poll) every 100–250 ms.
#[derive(Debug)]
pub struct Tailer {
    path: PathBuf,
    options: TailOptions,
    current: Option<Source>,
    /// Rotated-away files still being read, oldest first.
    draining: Vec<Source>,
    first_poll_done: bool,
    buf: Vec<u8>,
}

impl Tailer {
    /// Follows `path`. Nothing is opened until the first [`poll`](Tailer::poll); a file that
    /// exists then is read according to [`TailOptions::start`], one created later from its start.
    pub fn new(path: impl Into<PathBuf>, options: TailOptions) -> Self {
        Self {
            path: path.into(),
            options,
            current: None,
            draining: Vec::new(),
            first_poll_done: false,
            buf: vec![0; CHUNK + FINGERPRINT_LEN],
        }
    }

    /// The path followed.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Returns the complete lines (without `\n`) written since the last call, in file order,
    /// at most [`TailOptions::max_read_per_poll`] bytes' worth. Never blocks waiting for data.
    pub fn poll(&mut self) -> io::Result<Vec<Vec<u8>>> {
        let mut lines = Vec::new();
        let mut budget = self.options.max_read_per_poll;
        let max_line_len = self.options.max_line_len;
        let first_poll = !self.first_poll_done;

        // Files rotated away: finish them, then let them go once quiet.
        let mut kept = Vec::with_capacity(self.draining.len());
        for mut old in std::mem::take(&mut self.draining) {
            let end = old.read_available(&mut self.buf, &mut budget, max_line_len, &mut lines)?;
            let quiet = old.last_data.elapsed() >= self.options.rotate_grace;
            if end == ReadEnd::Truncated || (end == ReadEnd::Eof && quiet) {
                old.flush_partial(&mut lines);
                tracing::debug!(path = %self.path.display(), "done with rotated access log");
            } else {
                kept.push(old);
            }
        }
        self.draining = kept;

        if self.current.is_none() {
            match Source::open(&self.path) {
                Ok(mut source) => {
                    if first_poll && self.options.start == StartAt::End {
                        source.seek_end()?;
                    }
                    self.first_poll_done = true;
                    tracing::debug!(path = %self.path.display(), offset = source.offset, "opened access log");
                    self.current = Some(source);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    // Created later: all of it is new, read it from its start.
                    self.first_poll_done = true;
                    return Ok(lines);
                }
                Err(e) => return Err(e),
            }
        }
        let Some(current) = self.current.as_mut() else {
            return Ok(lines);
        };

        let at_end = current.read_following_truncation(
            &self.path,
            &mut self.buf,
            &mut budget,
            max_line_len,
            &mut lines,
        )?;
        if !at_end {
            return Ok(lines);
        }

        // At the end of the file: has the name moved to another file?
        let renamed = match fs::metadata(&self.path) {
            Ok(meta) => (meta.dev(), meta.ino()) != current.id,
            // Renamed away and not recreated yet: keep reading the old file.
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(e),
        };
        if renamed {
            // Whatever was written before the rename is in the old file: read it all first.
            current.read_following_truncation(
                &self.path,
                &mut self.buf,
                &mut budget,
                max_line_len,
                &mut lines,
            )?;
            match Source::open(&self.path) {
                Ok(new) => {
                    tracing::info!(path = %self.path.display(), "access log rotated, following the new file");
                    if let Some(old) = self.current.replace(new) {
                        self.draining.push(old);
                    }
                    if let Some(new) = self.current.as_mut() {
                        new.read_following_truncation(
                            &self.path,
                            &mut self.buf,
                            &mut budget,
                            max_line_len,
                            &mut lines,
                        )?;
                    }
                }
                // Gone again between the two calls: try next time.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(lines)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::thread;

    use super::*;

    fn options(start: StartAt) -> TailOptions {
        TailOptions {
            start,
            rotate_grace: Duration::from_millis(50),
            ..TailOptions::default()
        }
    }

    /// copytruncate's second half: empty the file in place.
    fn truncate(path: &Path) {
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_len(0)
            .unwrap();
    }

    fn append(path: &Path, text: &str) {
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    fn strings(lines: Vec<Vec<u8>>) -> Vec<String> {
        lines
            .into_iter()
            .map(|l| String::from_utf8(l).unwrap())
            .collect()
    }

    #[test]
    fn waits_for_a_missing_file_then_reads_it_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let mut t = Tailer::new(&path, options(StartAt::End));
        assert!(t.poll().unwrap().is_empty());
        assert!(t.poll().unwrap().is_empty());
        append(&path, "one\ntwo\n");
        assert_eq!(strings(t.poll().unwrap()), ["one", "two"]);
    }

    #[test]
    fn start_at_end_skips_existing_lines_and_beginning_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        append(&path, "old1\nold2\n");
        let mut from_end = Tailer::new(&path, options(StartAt::End));
        let mut from_start = Tailer::new(&path, options(StartAt::Beginning));
        assert!(from_end.poll().unwrap().is_empty());
        assert_eq!(strings(from_start.poll().unwrap()), ["old1", "old2"]);
        append(&path, "new\n");
        assert_eq!(strings(from_end.poll().unwrap()), ["new"]);
        assert_eq!(strings(from_start.poll().unwrap()), ["new"]);
    }

    #[test]
    fn partial_line_is_held_until_its_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        append(&path, "");
        let mut t = Tailer::new(&path, options(StartAt::End));
        assert!(t.poll().unwrap().is_empty());
        append(&path, "complete\npart");
        assert_eq!(strings(t.poll().unwrap()), ["complete"]);
        append(&path, "ial");
        assert!(t.poll().unwrap().is_empty());
        append(&path, " line\r\n\n");
        assert_eq!(strings(t.poll().unwrap()), ["partial line\r", ""]);
    }

    #[test]
    fn over_long_line_is_cut_and_the_rest_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        append(&path, "");
        let opts = TailOptions {
            max_line_len: 10,
            ..options(StartAt::Beginning)
        };
        let mut t = Tailer::new(&path, opts);
        assert!(t.poll().unwrap().is_empty());
        append(&path, "short\n0123456789abc");
        assert_eq!(strings(t.poll().unwrap()), ["short", "0123456789a"]);
        append(&path, "defgh");
        assert!(t.poll().unwrap().is_empty());
        append(&path, "ij\nnext\n0123456789a\n");
        assert_eq!(strings(t.poll().unwrap()), ["next", "0123456789a"]);
    }

    #[test]
    fn read_budget_spreads_a_backlog_over_polls() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let text: String = (0..100).map(|n| format!("{n:04}\n")).collect();
        append(&path, &text);
        let opts = TailOptions {
            max_read_per_poll: 52,
            ..options(StartAt::Beginning)
        };
        let mut t = Tailer::new(&path, opts);
        let mut all = Vec::new();
        let mut polls = 0;
        loop {
            let lines = strings(t.poll().unwrap());
            polls += 1;
            if lines.is_empty() {
                break;
            }
            assert!(lines.len() <= 11, "{}", lines.len());
            all.extend(lines);
        }
        // 500 bytes at 52 a poll: 10 polls with lines, then an empty one.
        assert_eq!(polls, 11);
        let expected: Vec<String> = (0..100).map(|n| format!("{n:04}")).collect();
        assert_eq!(all, expected);
    }

    #[test]
    fn rename_and_create_step_by_step() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let rotated = dir.path().join("access.log.1");
        append(&path, "a1\n");
        let mut t = Tailer::new(&path, options(StartAt::Beginning));
        assert_eq!(strings(t.poll().unwrap()), ["a1"]);
        append(&path, "a2\n");
        fs::rename(&path, &rotated).unwrap();
        // Renamed, not recreated yet: keep reading the old file.
        append(&rotated, "a3\n");
        assert_eq!(strings(t.poll().unwrap()), ["a2", "a3"]);
        // The server still writes to the old file for a while, then to the new one.
        append(&rotated, "a4\n");
        append(&path, "b1\n");
        assert_eq!(strings(t.poll().unwrap()), ["a4", "b1"]);
        append(&rotated, "a5-unterminated");
        append(&path, "b2\n");
        assert_eq!(strings(t.poll().unwrap()), ["b2"]);
        thread::sleep(Duration::from_millis(80));
        // Quiet past the grace period: the old file's unterminated last line is delivered.
        assert_eq!(strings(t.poll().unwrap()), ["a5-unterminated"]);
        append(&rotated, "ignored\n");
        append(&path, "b3\n");
        assert_eq!(strings(t.poll().unwrap()), ["b3"]);
    }

    #[test]
    fn truncation_to_a_shorter_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        append(&path, "");
        let mut t = Tailer::new(&path, options(StartAt::End));
        assert!(t.poll().unwrap().is_empty());
        append(&path, "line 1\nline 2\nline 3\n");
        assert_eq!(t.poll().unwrap().len(), 3);
        truncate(&path);
        append(&path, "x\n");
        assert_eq!(strings(t.poll().unwrap()), ["x"]);
    }

    #[test]
    fn truncation_refilled_past_the_old_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        append(&path, "");
        let mut t = Tailer::new(&path, options(StartAt::End));
        assert!(t.poll().unwrap().is_empty());
        append(&path, "line 1\nline 2\n");
        assert_eq!(t.poll().unwrap().len(), 2);
        truncate(&path);
        // Longer than before by the next poll: only the changed bytes tell.
        append(&path, "new 1\nnew 2\nnew 3\n");
        assert_eq!(strings(t.poll().unwrap()), ["new 1", "new 2", "new 3"]);
        append(&path, "new 4\n");
        assert_eq!(strings(t.poll().unwrap()), ["new 4"]);
    }

    /// How a writer thread rotates the log.
    #[derive(Clone, Copy)]
    enum Rotation {
        RenameAndCreate,
        CopyTruncate,
    }

    /// A writer thread writes numbered lines and rotates every `every` lines while the test
    /// thread tails; every number must come exactly once, in order.
    fn rotation_while_writing(rotation: Rotation) {
        const TOTAL: i64 = 3000;
        const EVERY: i64 = 300;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let seen = Arc::new(AtomicI64::new(-1));
        let mut tailer = Tailer::new(&path, options(StartAt::Beginning));

        let writer = {
            let seen = Arc::clone(&seen);
            thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(60);
                let wait_until_seen = |n: i64| {
                    while seen.load(Ordering::SeqCst) < n {
                        assert!(Instant::now() < deadline, "reader stuck before {n}");
                        thread::sleep(Duration::from_millis(1));
                    }
                };
                let open = || {
                    fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)
                        .unwrap()
                };
                let mut file = open();
                let mut first_in_file = 0;
                for n in 0..TOTAL {
                    let line = format!("{n:06} {}\n", "x".repeat(usize::try_from(n % 50).unwrap()));
                    if n % 97 == 0 {
                        // Split a line over two writes: the tailer must hold the first half.
                        let (a, b) = line.split_at(3);
                        file.write_all(a.as_bytes()).unwrap();
                        thread::sleep(Duration::from_millis(3));
                        file.write_all(b.as_bytes()).unwrap();
                    } else {
                        file.write_all(line.as_bytes()).unwrap();
                    }
                    if n % 40 == 0 {
                        thread::sleep(Duration::from_millis(1));
                    }
                    if n % EVERY == EVERY - 1 {
                        match rotation {
                            Rotation::RenameAndCreate => {
                                // Only rotate again once the reader follows the current file
                                // (a name-based tailer cannot see a file that came and went).
                                wait_until_seen(first_in_file);
                                fs::rename(&path, dir_rotated(&path)).unwrap();
                                file = open();
                            }
                            Rotation::CopyTruncate => {
                                // Lines written between logrotate's copy and truncate are in
                                // the copy only; let the reader catch up first.
                                wait_until_seen(n);
                                fs::copy(&path, dir_rotated(&path)).unwrap();
                                File::options()
                                    .write(true)
                                    .open(&path)
                                    .unwrap()
                                    .set_len(0)
                                    .unwrap();
                            }
                        }
                        first_in_file = n + 1;
                    }
                }
            })
        };

        let deadline = Instant::now() + Duration::from_secs(60);
        let mut expected = 0;
        while expected < TOTAL {
            assert!(Instant::now() < deadline, "stuck at line {expected}");
            for line in tailer.poll().unwrap() {
                let text = String::from_utf8(line).unwrap();
                let n: i64 = text[..6]
                    .parse()
                    .unwrap_or_else(|_| panic!("bad line {text:?}"));
                assert_eq!(n, expected, "line {text:?}");
                assert_eq!(text.len(), 7 + usize::try_from(n % 50).unwrap(), "{text:?}");
                expected += 1;
                seen.store(n, Ordering::SeqCst);
            }
            thread::sleep(Duration::from_millis(2));
        }
        writer.join().unwrap();
        thread::sleep(Duration::from_millis(60));
        assert!(tailer.poll().unwrap().is_empty());
    }

    fn dir_rotated(path: &Path) -> PathBuf {
        path.with_extension("log.1")
    }

    #[test]
    fn rename_and_create_while_writing() {
        rotation_while_writing(Rotation::RenameAndCreate);
    }

    #[test]
    fn copytruncate_while_writing() {
        rotation_while_writing(Rotation::CopyTruncate);
    }
}
