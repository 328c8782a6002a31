//! Call sites (`record --stacks`): turns the kernel's stacks into interned stacks of interned,
//! named frames, and decides per process how its stacks are taken.
//!
//! - [`elf`]: what a binary offers (frame pointers, unwind tables), read once per file;
//! - [`maps`]: which file an address of a process belongs to;
//! - [`unwind`]: unwinding a copied stack (processes without frame pointers);
//! - [`symbolize`]: naming frames, on a thread of its own.
//!
//! A stack is interned by its frames, and a frame by its file and offset (or, for code in no
//! file, its process and address): the recording holds each once. Stack ids start at 1; 0 is
//! "no stack".

pub mod elf;
pub mod maps;
pub mod symbolize;
pub mod unwind;

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use elf::Binary;
use maps::{Mapping, Place};
use symbolize::{Job, SymbolizerThread};
use unwind::ProcessUnwinder;

use crate::model::{Row, Unwind};

/// A process's mappings are read again on an address they do not hold at most this often.
const MAPS_RELOAD: Duration = Duration::from_millis(200);

/// Distinct stacks kept per recording (about 100 bytes each, and their frames): past it, a new
/// stack is lost and counted, its growth charged to no stack. Copied stacks of JIT code can be
/// many; the kernel's stack map bounds frame-pointer ones at 8,192 anyway.
const MAX_STACKS: usize = 1 << 17;
/// Distinct frames kept per recording: past it, stacks are lost and counted.
const MAX_FRAMES: usize = 1 << 20;

/// Frame-pointer stacks of a process looked at before deciding whether they work for it: when
/// an eighth of them or more were cut short, its stacks are copied from then on. (A C server
/// built with frame pointers cuts about one stack in five short in glibc's malloc; Go, whose
/// allocator is its own, none.)
const FALLBACK_AFTER: u32 = 16;
/// A frame-pointer stack of at most this many frames whose innermost frame is in a binary
/// without frame pointers was cut short there (a libc leaf such as malloc's internals or
/// `memset`, which use the frame-pointer register for data).
const CUT_SHORT: usize = 2;

/// What stack capture did, for the recording's summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StackCounts {
    /// Stack events received.
    pub samples: u64,
    /// Stacks that could not be used: the kernel could not keep one, an id was not in its map,
    /// or a copied stack unwound to no frame.
    pub lost: u64,
    /// Stacks the kernel skipped to keep the cost bounded (`--stack-rate`, a full ring buffer).
    pub skipped: u64,
    /// Processes switched from frame-pointer stacks to copied ones, because too many of their
    /// stacks were cut short in a library without frame pointers.
    pub fallbacks: u64,
    /// Stacks that ended early at an address in no executable mapping (not a frame).
    pub cut_at_no_code: u64,
    /// Distinct stacks and frames interned.
    pub stacks: u64,
    pub frames: u64,
    /// Time spent on the event loop unwinding, mapping and interning stacks.
    pub resolve: Duration,
    /// Time the naming thread spent naming frames, and frames no symbol covered.
    pub symbolize: Duration,
    pub unsymbolized: u64,
}

#[derive(Debug)]
struct Proc {
    maps: Vec<Mapping>,
    maps_read: Instant,
    /// Built on the first copied stack.
    unwinder: Option<ProcessUnwinder>,
}

impl Proc {
    /// `pid`'s executable mappings, read now.
    fn read(pid: u32) -> Self {
        Self {
            maps: maps::executable(pid),
            maps_read: Instant::now(),
            unwinder: None,
        }
    }
}

/// How a process's frame-pointer stacks are doing, until the fallback is decided.
#[derive(Debug, Clone, Copy)]
enum FpHealth {
    /// Stacks seen so far, and of them, cut short.
    Watching {
        seen: u32,
        cut_short: u32,
    },
    Decided,
}

/// What became of a stack event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// The stack's id in the recording.
    Stack(u32),
    /// The kernel could not keep or copy it, or it unwound to no frame: its growth has no
    /// call site (counted in `stacks_lost`).
    Lost,
    /// Skipped by the kernel's budget: the thread's growth stays with its latest stack
    /// (counted in `stacks_skipped`).
    Skipped,
}

impl From<Option<u32>> for Taken {
    fn from(id: Option<u32>) -> Self {
        id.map_or(Self::Lost, Self::Stack)
    }
}

/// Interns stacks and frames, and names frames in the background.
#[derive(Debug)]
pub struct Stacks {
    binaries: HashMap<Arc<str>, Option<Arc<Binary>>>,
    procs: HashMap<u32, Proc>,
    frames: HashMap<(Place, u32), u32>,
    stacks: HashMap<Vec<u32>, u32>,
    /// (pid, kernel stack id) → stack id, and whether it was cut short.
    kernel: HashMap<(u32, i64), (u32, bool)>,
    /// Per process on frame-pointer stacks: (stacks seen, of them cut short).
    fp_health: HashMap<u32, FpHealth>,
    /// Processes to switch to copied stacks (see [`Stacks::take_fallbacks`]).
    fallbacks: Vec<u32>,
    symbolizer: SymbolizerThread,
    rows: Vec<Row>,
    counts: StackCounts,
}

impl Default for Stacks {
    fn default() -> Self {
        Self::new()
    }
}

impl Stacks {
    pub fn new() -> Self {
        Self {
            binaries: HashMap::new(),
            procs: HashMap::new(),
            frames: HashMap::new(),
            stacks: HashMap::new(),
            kernel: HashMap::new(),
            fp_health: HashMap::new(),
            fallbacks: Vec::new(),
            symbolizer: SymbolizerThread::start(),
            rows: Vec::new(),
            counts: StackCounts::default(),
        }
    }

    fn binary(
        binaries: &mut HashMap<Arc<str>, Option<Arc<Binary>>>,
        path: &str,
    ) -> Option<Arc<Binary>> {
        if let Some(b) = binaries.get(path) {
            return b.clone();
        }
        let b = match Binary::read(std::path::Path::new(path)) {
            Ok(b) => Some(Arc::new(b)),
            Err(e) => {
                tracing::debug!("{:#}", anyhow::Error::from(e));
                None
            }
        };
        binaries.insert(Arc::from(path), b.clone());
        b
    }

    /// Whether `pid`'s stacks must be copied and unwound here: its program does not keep frame
    /// pointers (checked on its executable; a process whose executable cannot be read is
    /// copied, which works either way).
    pub fn wants_copy(&mut self, pid: u32) -> bool {
        let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe")) else {
            return true;
        };
        let exe = exe.to_string_lossy();
        let copy = Self::binary(&mut self.binaries, &exe).is_none_or(|b| !b.frame_pointers);
        tracing::debug!(pid, exe = %exe, copy, "how stacks are taken");
        copy
    }

    /// `pid` exec'd or exited: its mappings are stale.
    pub fn forget(&mut self, pid: u32) {
        self.procs.remove(&pid);
        self.fp_health.remove(&pid);
        self.kernel.retain(|&(p, _), _| p != pid);
    }

    /// Processes whose frame-pointer stacks are too often cut short in a library without frame
    /// pointers (Node.js and a C program built with frame pointers, whose faults in glibc's
    /// malloc or `memset` end the walk): from now on their stacks are to be copied and unwound.
    pub fn take_fallbacks(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.fallbacks)
    }

    /// Counts a frame-pointer stack of `pid`, cut short or not, and decides on a fallback.
    fn judge_fp(&mut self, pid: u32, cut: bool) {
        let health = self.fp_health.entry(pid).or_insert(FpHealth::Watching {
            seen: 0,
            cut_short: 0,
        });
        let FpHealth::Watching { seen, cut_short } = health else {
            return;
        };
        *seen += 1;
        *cut_short += u32::from(cut);
        if *seen < FALLBACK_AFTER {
            return;
        }
        tracing::debug!(pid, cut_short, of = seen, "frame-pointer stacks");
        if *cut_short * 8 >= *seen {
            tracing::info!(
                pid,
                cut_short,
                of = seen,
                "frame-pointer stacks end in a library without frame pointers: copying them"
            );
            self.fallbacks.push(pid);
            self.counts.fallbacks += 1;
        }
        *health = FpHealth::Decided;
    }

    /// Whether a frame-pointer stack stopped within [`CUT_SHORT`] frames in a binary without
    /// frame pointers.
    fn cut_short(&mut self, pid: u32, addrs: &[u64]) -> bool {
        if addrs.len() > CUT_SHORT {
            return false;
        }
        let leaf = addrs.first().copied().unwrap_or(0);
        let path = maps::find(&self.proc(pid).maps, leaf).and_then(|m| m.path.clone());
        path.is_some_and(|p| Self::binary(&mut self.binaries, &p).is_none_or(|b| !b.frame_pointers))
    }

    fn proc(&mut self, pid: u32) -> &mut Proc {
        self.procs.entry(pid).or_insert_with(|| Proc::read(pid))
    }

    /// A stack the kernel took along frame pointers (or skipped): `frames` reads its addresses
    /// from the kernel's map (once per kernel id and process).
    pub fn from_kernel(
        &mut self,
        pid: u32,
        kernel_id: i64,
        frames: impl FnOnce(u32) -> Option<Vec<u64>>,
    ) -> Taken {
        if kernel_id == memwatch_common::stack::SKIPPED {
            self.counts.skipped += 1;
            return Taken::Skipped;
        }
        self.counts.samples += 1;
        if let Some(&(id, cut_short)) = self.kernel.get(&(pid, kernel_id)) {
            self.judge_fp(pid, cut_short);
            return Taken::Stack(id);
        }
        let started = Instant::now();
        let id = self.resolve_kernel(pid, kernel_id, frames);
        self.counts.resolve += started.elapsed();
        id.into()
    }

    fn resolve_kernel(
        &mut self,
        pid: u32,
        kernel_id: i64,
        frames: impl FnOnce(u32) -> Option<Vec<u64>>,
    ) -> Option<u32> {
        let addrs = u32::try_from(kernel_id).ok().and_then(frames);
        let Some(addrs) = addrs.filter(|a| !a.is_empty()) else {
            self.counts.lost += 1;
            return None;
        };
        // Return addresses point after their call: look up the byte before.
        let lookup: Vec<u64> = addrs
            .iter()
            .enumerate()
            .map(|(i, &a)| if i == 0 { a } else { a.saturating_sub(1) })
            .collect();
        let id = self.intern(pid, &lookup, Unwind::FramePointers)?;
        let cut_short = self.cut_short(pid, &addrs);
        self.kernel.insert((pid, kernel_id), (id, cut_short));
        self.judge_fp(pid, cut_short);
        Some(id)
    }

    /// A copied stack: unwound here with the binaries' unwind tables.
    pub fn from_copy(&mut self, pid: u32, ip: u64, sp: u64, bp: u64, data: &[u8]) -> Taken {
        self.counts.samples += 1;
        let started = Instant::now();
        let id = self.resolve_copy(pid, (ip, sp, bp), data);
        self.counts.resolve += started.elapsed();
        id.into()
    }

    fn resolve_copy(
        &mut self,
        pid: u32,
        (ip, sp, bp): (u64, u64, u64),
        data: &[u8],
    ) -> Option<u32> {
        let binaries = &mut self.binaries;
        let proc = self.procs.entry(pid).or_insert_with(|| Proc::read(pid));
        // Code mapped since the mappings were read (a library loaded late): read them again.
        if maps::find(&proc.maps, ip).is_none() && proc.maps_read.elapsed() >= MAPS_RELOAD {
            proc.maps = maps::executable(pid);
            proc.maps_read = Instant::now();
            proc.unwinder = None;
        }
        let unwinder = proc
            .unwinder
            .get_or_insert_with(|| ProcessUnwinder::new(&proc.maps, |p| Self::binary(binaries, p)));
        let addrs = unwinder.unwind(ip, sp, bp, data);
        if addrs.is_empty() {
            self.counts.lost += 1;
            return None;
        }
        self.intern(pid, &addrs, Unwind::Dwarf)
    }

    /// The stack id of `addrs` (innermost first) in `pid`, interning it and its frames; `None`
    /// (counted as lost) for a new stack past [`MAX_STACKS`].
    fn intern(&mut self, pid: u32, addrs: &[u64], unwind: Unwind) -> Option<u32> {
        if self.frames.len() >= MAX_FRAMES {
            self.counts.lost += 1;
            return None;
        }
        let places: Vec<Place> = {
            let proc = self.proc(pid);
            // A leaf in code mapped since the mappings were read (a JIT's, a library loaded
            // late): read them again, as a copied stack's unwinding does. Only for the leaf: a
            // walk's last word is often no code at all, and re-reading the mappings (and
            // rebuilding the unwinder) for each such stack would cost the event loop.
            if addrs
                .first()
                .is_some_and(|&leaf| maps::find(&proc.maps, leaf).is_none())
                && proc.maps_read.elapsed() >= MAPS_RELOAD
            {
                proc.maps = maps::executable(pid);
                proc.maps_read = Instant::now();
                proc.unwinder = None;
            }
            // An address in no executable mapping is no frame: what a walk read past the
            // outermost frame (the stack's own top, `0x7fffffffdfff`), or a register reused for
            // data. The stack ends before it.
            addrs
                .iter()
                .map_while(|&addr| maps::find(&proc.maps, addr).map(|m| maps::place(m, addr)))
                .collect()
        };
        if places.len() < addrs.len() {
            self.counts.cut_at_no_code += 1;
        }
        if places.is_empty() {
            self.counts.lost += 1;
            return None;
        }
        let mut ids = Vec::with_capacity(places.len());
        for place in places {
            // Code of no file is named per process (each JIT has its own); files are shared.
            let owner = if matches!(place, Place::Anon(_)) {
                pid
            } else {
                0
            };
            let next = self.frames.len() as u32 + 1;
            let id = *self
                .frames
                .entry((place.clone(), owner))
                .or_insert_with(|| {
                    self.symbolizer.send(Job {
                        id: next,
                        pid,
                        place,
                    });
                    next
                });
            ids.push(id);
        }
        if let Some(&id) = self.stacks.get(&ids) {
            return Some(id);
        }
        if self.stacks.len() >= MAX_STACKS {
            self.counts.lost += 1;
            return None;
        }
        let id = self.stacks.len() as u32 + 1;
        self.rows.push(Row::Stack {
            id,
            frames: ids.clone(),
            unwind,
        });
        self.stacks.insert(ids, id);
        Some(id)
    }

    /// New stacks and named frames, for the writer.
    pub fn take_rows(&mut self) -> Vec<Row> {
        let mut rows = std::mem::take(&mut self.rows);
        rows.extend(self.symbolizer.take());
        rows
    }

    /// Names what is left; returns the last rows and the counts.
    pub fn finish(mut self) -> (Vec<Row>, StackCounts) {
        let mut rows = std::mem::take(&mut self.rows);
        let mut counts = self.counts;
        counts.stacks = self.stacks.len() as u64;
        counts.frames = self.frames.len() as u64;
        let (named, done) = self.symbolizer.finish();
        rows.extend(named);
        counts.symbolize = done.busy;
        counts.unsymbolized = done.unsymbolized;
        (rows, counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn a_function() -> u64 {
        a_function as *const () as u64
    }

    /// A frame-pointer walk that read one word past the outermost frame: the address in no
    /// executable mapping (the top of a stack) is no frame, and the stack ends before it.
    #[test]
    fn a_stack_ends_at_an_address_that_is_no_code() {
        let mut stacks = Stacks::new();
        let code = a_function() + 4;
        let taken = stacks.from_kernel(std::process::id(), 7, |_| {
            Some(vec![code, 0x7fff_ffff_dfff])
        });
        assert_eq!(taken, Taken::Stack(1));
        let nothing = stacks.from_kernel(std::process::id(), 8, |_| Some(vec![0x7fff_ffff_dfff]));
        assert_eq!(nothing, Taken::Lost, "no frame at all");
        let (rows, counts) = stacks.finish();
        let frames: Vec<u32> = rows
            .iter()
            .find_map(|r| match r {
                Row::Stack { frames, .. } => Some(frames.clone()),
                _ => None,
            })
            .expect("the stack's row");
        assert_eq!(frames, vec![1], "{rows:?}");
        assert_eq!(
            (counts.cut_at_no_code, counts.lost, counts.frames),
            (2, 1, 1)
        );
    }
}
