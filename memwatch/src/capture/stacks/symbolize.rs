//! Naming frames, on a thread of its own so that a large binary's first lookup never holds up
//! the ring buffer: ELF symbols and debug info (with debug links and `/usr/lib/debug`) through
//! blazesym, cached per binary; JIT code through the process's perf map
//! (`/tmp/perf-PID.map`, written by `node --perf-basic-prof` or Python 3.12's `-X perf`).

use std::{
    collections::HashMap,
    io::{BufRead as _, BufReader, Read as _},
    sync::{Arc, mpsc},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use blazesym::symbolize::{
    Input, Symbolized, Symbolizer,
    source::{Elf, Source},
};

use super::maps::Place;
use crate::model::{FrameRow, Row};

/// Longest function name kept (perf maps and symbols come from the traced process).
const MAX_NAME: usize = 512;
/// Largest perf map read.
const MAX_PERF_MAP: u64 = 64 << 20;
/// A perf map is read again on a miss at most this often (JITs append as they compile).
const PERF_MAP_RELOAD: Duration = Duration::from_secs(1);

/// A frame to name.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: u32,
    pub pid: u32,
    pub place: Place,
}

/// The naming thread: frames go in, symbolized rows come out.
#[derive(Debug)]
pub struct SymbolizerThread {
    jobs: Option<mpsc::Sender<Job>>,
    rows: mpsc::Receiver<Row>,
    handle: Option<JoinHandle<Done>>,
}

/// What the naming thread did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Done {
    /// Frames no symbol covered.
    pub unsymbolized: u64,
    /// Time spent naming (not waiting for frames).
    pub busy: Duration,
}

impl SymbolizerThread {
    /// Looks for separate debug info in the system's places (`/usr/lib/debug`, `/lib/debug`,
    /// by debug link and by build id).
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// Looks for separate debug info in `debug_dirs` instead.
    pub fn start_with(debug_dirs: Option<Vec<std::path::PathBuf>>) -> Self {
        let (jobs, job_rx) = mpsc::channel::<Job>();
        let (row_tx, rows) = mpsc::channel::<Row>();
        let handle = std::thread::Builder::new()
            .name("memwatch-symbolize".into())
            .spawn(move || run(&job_rx, &row_tx, debug_dirs))
            .map_err(|e| tracing::warn!(error = %e, "cannot start the symbolizer thread"))
            .ok();
        Self {
            jobs: Some(jobs),
            rows,
            handle,
        }
    }

    pub fn send(&self, job: Job) {
        if let Some(tx) = &self.jobs {
            let _ = tx.send(job);
        }
    }

    /// The rows named so far.
    pub fn take(&self) -> Vec<Row> {
        self.rows.try_iter().collect()
    }

    /// Names what is queued, stops the thread, and returns the last rows and what it did.
    pub fn finish(mut self) -> (Vec<Row>, Done) {
        drop(self.jobs.take());
        let done = self
            .handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        (self.rows.try_iter().collect(), done)
    }
}

fn run(
    jobs: &mpsc::Receiver<Job>,
    rows: &mpsc::Sender<Row>,
    debug_dirs: Option<Vec<std::path::PathBuf>>,
) -> Done {
    let mut builder = Symbolizer::builder()
        .enable_code_info(true)
        .enable_inlined_fns(false);
    if let Some(dirs) = debug_dirs {
        builder = builder.set_debug_dirs(Some(dirs));
    }
    let symbolizer = builder.build();
    let mut perf_maps: HashMap<u32, PerfMap> = HashMap::new();
    let mut unsymbolized = 0;
    let mut busy = Duration::ZERO;
    while let Ok(first) = jobs.recv() {
        let started = Instant::now();
        // Everything queued, by binary: blazesym looks offsets up in batches.
        let mut batch = vec![first];
        batch.extend(jobs.try_iter());
        let mut by_file: HashMap<Arc<str>, Vec<(u32, u64)>> = HashMap::new();
        for job in batch {
            match job.place {
                Place::File(path, offset) => {
                    by_file.entry(path).or_default().push((job.id, offset))
                }
                Place::Anon(addr) => {
                    let map = perf_maps
                        .entry(job.pid)
                        .or_insert_with(|| PerfMap::read(job.pid));
                    let name = map.name(job.pid, addr);
                    unsymbolized += u64::from(name.is_none());
                    let module = if name.is_some() {
                        "[perf-map]"
                    } else {
                        "[anon]"
                    };
                    let _ = rows.send(Row::Frame(Box::new(FrameRow {
                        id: job.id,
                        module: Arc::from(module),
                        offset: addr,
                        function: name,
                        file: None,
                        line: None,
                    })));
                }
            }
        }
        for (path, frames) in by_file {
            let offsets: Vec<u64> = frames.iter().map(|&(_, o)| o).collect();
            let src = Source::Elf(Elf::new(&*path));
            let found = match symbolizer.symbolize(&src, Input::FileOffset(&offsets)) {
                Ok(found) => found,
                Err(e) => {
                    tracing::debug!(path = %path, error = %e, "cannot symbolize");
                    Vec::new()
                }
            };
            for (i, &(id, offset)) in frames.iter().enumerate() {
                let sym = found.get(i).and_then(Symbolized::as_sym);
                unsymbolized += u64::from(sym.is_none());
                let code = sym.and_then(|s| s.code_info.as_deref());
                let _ = rows.send(Row::Frame(Box::new(FrameRow {
                    id,
                    module: path.clone(),
                    offset,
                    function: sym.map(|s| bounded(&s.name)),
                    file: code.map(|c| bounded(&c.to_path().to_string_lossy())),
                    line: code.and_then(|c| c.line),
                })));
            }
        }
        busy += started.elapsed();
    }
    Done { unsymbolized, busy }
}

fn bounded(s: &str) -> String {
    crate::units::cut(s, MAX_NAME).to_owned()
}

/// A process's perf map: JIT code ranges and their names.
#[derive(Debug, Default)]
struct PerfMap {
    /// (start, end, name), by start.
    entries: Vec<(u64, u64, String)>,
    read_at: Option<Instant>,
}

impl PerfMap {
    fn read(pid: u32) -> Self {
        let mut map = Self::default();
        map.load(pid);
        map
    }

    /// Reads `/tmp/perf-PID.map` as the process sees it (through its root), bounded in size and
    /// line length; malformed lines are skipped.
    fn load(&mut self, pid: u32) {
        self.read_at = Some(Instant::now());
        let path = format!("/proc/{pid}/root/tmp/perf-{pid}.map");
        let Ok(file) = std::fs::File::open(&path) else {
            return;
        };
        let mut entries = Vec::new();
        for line in BufReader::new(file.take(MAX_PERF_MAP)).lines() {
            let Ok(line) = line else { break };
            let mut parts = line.splitn(3, ' ');
            let (Some(start), Some(size), Some(name)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let (Ok(start), Ok(size)) = (
                u64::from_str_radix(start.trim_start_matches("0x"), 16),
                u64::from_str_radix(size.trim_start_matches("0x"), 16),
            ) else {
                continue;
            };
            entries.push((start, start.saturating_add(size), bounded(name.trim())));
        }
        entries.sort_by_key(|e| e.0);
        self.entries = entries;
    }

    fn find(&self, addr: u64) -> Option<String> {
        let i = self.entries.partition_point(|e| e.0 <= addr);
        // The latest entry wins when code was recompiled at the same place.
        self.entries[..i]
            .iter()
            .rev()
            .take(8)
            .find(|e| addr < e.1)
            .map(|e| e.2.clone())
    }

    fn name(&mut self, pid: u32, addr: u64) -> Option<String> {
        if let Some(n) = self.find(addr) {
            return Some(n);
        }
        if self.read_at.is_none_or(|t| t.elapsed() >= PERF_MAP_RELOAD) {
            self.load(pid);
            return self.find(addr);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perf_map_lines_name_ranges_and_bad_lines_are_skipped() {
        let map = PerfMap {
            entries: vec![
                (0x1000, 0x1010, "LazyCompile:~leak app.js:3".into()),
                (0x2000, 0x2100, "Builtin:ArrayPush".into()),
            ],
            read_at: Some(Instant::now()),
        };
        assert_eq!(
            map.find(0x1008).as_deref(),
            Some("LazyCompile:~leak app.js:3")
        );
        assert_eq!(map.find(0x1010), None);
        assert_eq!(map.find(0x20ff).as_deref(), Some("Builtin:ArrayPush"));
        assert_eq!(bounded(&"é".repeat(400)).len(), 512);
    }

    /// A stripped binary's functions are named, with file and line, from its separate debug
    /// info: its debug link, found by build id under a debug directory (as Debian strips its
    /// binaries, and its `-dbgsym` packages install them under `/usr/lib/debug/.build-id/`).
    #[test]
    fn names_a_stripped_binary_from_debug_info_found_by_build_id() {
        use object::{Object as _, ObjectSymbol as _};
        let dir = tempfile::tempdir().unwrap();
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/runtimes/callsites/callsites.c");
        let bin = dir.path().join("callsites");
        let run = |cmd: &mut std::process::Command| {
            let out = cmd.output().unwrap_or_else(|e| {
                panic!("{cmd:?}: {e} (cc and binutils: cargo xtask setup --test)")
            });
            assert!(
                out.status.success(),
                "{cmd:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(std::process::Command::new("cc")
            .args(["-O2", "-g", "-Wl,--build-id", "-o"])
            .arg(&bin)
            .arg(&src));
        let data = std::fs::read(&bin).unwrap();
        let elf = object::File::parse(&*data).unwrap();
        let build_id: String = elf
            .build_id()
            .unwrap()
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let addr = elf
            .symbols()
            .find(|s| s.name() == Ok("keep_b"))
            .unwrap()
            .address();
        let offset = super::super::elf::Binary::read(&bin)
            .unwrap()
            .offset_of(addr)
            .unwrap();
        let debug = dir.path().join("debug/.build-id").join(&build_id[..2]);
        std::fs::create_dir_all(&debug).unwrap();
        let debug_file = debug.join(format!("{}.debug", &build_id[2..]));
        run(std::process::Command::new("objcopy")
            .arg("--only-keep-debug")
            .arg(&bin)
            .arg(&debug_file));
        run(std::process::Command::new("strip")
            .arg("--strip-all")
            .arg(&bin));
        // As Debian's dh_strip leaves it: a debug link, found through the build id.
        run(std::process::Command::new("objcopy")
            .arg(format!("--add-gnu-debuglink={}", debug_file.display()))
            .arg(&bin));
        let stripped = std::fs::read(&bin).unwrap();
        assert!(
            object::File::parse(&*stripped)
                .unwrap()
                .symbols()
                .next()
                .is_none()
        );

        let t = SymbolizerThread::start_with(Some(vec![dir.path().join("debug")]));
        let path: Arc<str> = Arc::from(bin.to_str().unwrap());
        t.send(Job {
            id: 1,
            pid: std::process::id(),
            place: Place::File(path, offset),
        });
        let (rows, done) = t.finish();
        assert_eq!(done.unsymbolized, 0);
        let [Row::Frame(f)] = rows.as_slice() else {
            panic!("one frame expected, got {rows:?}");
        };
        assert_eq!(f.function.as_deref(), Some("keep_b"));
        assert!(
            f.file
                .as_deref()
                .is_some_and(|p| p.ends_with("callsites.c")),
            "{f:?}"
        );
    }

    /// This test binary's own functions are named from its symbols.
    #[test]
    fn names_a_function_of_a_binary_by_file_offset() {
        let maps = super::super::maps::executable(std::process::id());
        let here = names_a_function_of_a_binary_by_file_offset as *const () as u64;
        let m = super::super::maps::find(&maps, here).unwrap();
        let place = super::super::maps::place(m, here);
        let t = SymbolizerThread::start();
        t.send(Job {
            id: 7,
            pid: std::process::id(),
            place,
        });
        let (rows, done) = t.finish();
        assert_eq!(done.unsymbolized, 0);
        let [Row::Frame(f)] = rows.as_slice() else {
            panic!("one frame expected, got {rows:?}");
        };
        assert_eq!(f.id, 7);
        assert!(
            f.function
                .as_deref()
                .is_some_and(|n| n.ends_with("names_a_function_of_a_binary_by_file_offset")),
            "{f:?}"
        );
    }
}
