//! Following the heap allocator of a traced process (`record --heap`): the uprobes of
//! `memwatch_common::heap::HEAP_PROBES` on that process's own glibc, and those of `GO_PROBES` on
//! a Go program's runtime, attached for that process only, so no other process on the host pays
//! for them. Optional, bpftop style: a process whose
//! heap cannot be followed (a static binary such as a Go server, no glibc, an attach refused)
//! is recorded all the same, and why is said once and counted.

use std::{
    collections::HashMap,
    num::NonZeroU32,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf,
    maps::{HashMap as BpfHashMap, MapData},
    programs::{
        ProgramError, UProbe,
        uprobe::{UProbeError, UProbeLinkId, UProbeScope},
    },
};
use memwatch_common::{
    config,
    heap::{GO_PROBES, HEAP_PROBES, HeapKey},
};

/// Why a process's heap is not followed. The process itself still is.
#[derive(Debug, thiserror::Error)]
pub enum HeapSkip {
    /// Neither glibc among its mappings nor a Go runtime memwatch knows: musl, another static
    /// binary, or a process that is gone.
    #[error(
        "process {pid} maps no glibc (libc.so.6) and is no Go program memwatch knows (Go 1.17 \
         or later): its heap reuse is not followed, and pages stay with the request that \
         faulted them in"
    )]
    NoAllocator { pid: u32 },
    /// The kernel refused a uprobe.
    #[error(
        "cannot attach the heap probe {program} to {function} in {path} for process {pid}: its \
         heap reuse is not followed (the process is recorded all the same); check that the \
         file is the process's own and readable, or record without --heap"
    )]
    Attach {
        pid: u32,
        program: &'static str,
        function: &'static str,
        path: PathBuf,
        #[source]
        source: Box<ProgramError>,
    },
    /// The program is missing from the object or is not a uprobe.
    #[error(
        "the heap probe {program} cannot be loaded, so no heap is followed (the processes are \
         recorded all the same); this kernel may lack uprobes (CONFIG_UPROBES): record without \
         --heap, or run with -vv for the verifier's log"
    )]
    Load {
        program: &'static str,
        #[source]
        source: Box<ProgramError>,
    },
}

/// The uprobes attached per process, detached when the process is gone (or on drop, with the
/// programs).
#[derive(Debug, Default)]
pub struct HeapProbes {
    links: HashMap<u32, Vec<(&'static str, UProbeLinkId)>>,
    loaded: bool,
}

/// The glibc a process maps, as a path this process can open whatever its mount namespace:
/// through `/proc/PID/root`.
fn glibc_of(pid: u32) -> Option<PathBuf> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| {
            Path::new(p)
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n == "libc.so.6" || (n.starts_with("libc-") && n.ends_with(".so")))
        })
        .map(|p| PathBuf::from(format!("/proc/{pid}/root{p}")))
}

fn uprobe<'a>(ebpf: &'a mut Ebpf, program: &'static str) -> Result<&'a mut UProbe, HeapSkip> {
    let p = ebpf.program_mut(program).ok_or_else(|| HeapSkip::Load {
        program,
        source: Box::new(ProgramError::InvalidName {
            name: program.to_owned(),
        }),
    })?;
    p.try_into().map_err(|source| HeapSkip::Load {
        program,
        source: Box::new(source),
    })
}

impl HeapProbes {
    /// Processes whose heap is followed now.
    pub fn followed(&self) -> usize {
        self.links.len()
    }

    /// Attaches the heap probes to `pid`'s glibc and, if it is a Go program, to its Go runtime,
    /// for `pid` alone.
    pub fn follow(&mut self, ebpf: &mut Ebpf, pid: u32) -> Result<(), HeapSkip> {
        if self.links.contains_key(&pid) {
            return Ok(());
        }
        if !self.loaded {
            let programs = HEAP_PROBES.iter().chain(GO_PROBES).map(|&(_, p)| p);
            let mut seen: Vec<&str> = Vec::new();
            for program in programs {
                if seen.contains(&program) {
                    continue;
                }
                seen.push(program);
                uprobe(ebpf, program)?
                    .load()
                    .map_err(|source| HeapSkip::Load {
                        program,
                        source: Box::new(source),
                    })?;
            }
            self.loaded = true;
        }
        let mut links = Vec::new();
        // A Go program (statically linked, or with cgo and glibc as well).
        let exe = PathBuf::from(format!("/proc/{pid}/exe"));
        for &probe in GO_PROBES {
            match attach_one(ebpf, pid, probe, &exe, &mut links) {
                Ok(()) => {}
                // Not a Go program, or a Go too old or too new for these functions.
                Err(HeapSkip::Attach { source, .. })
                    if matches!(
                        *source,
                        ProgramError::UProbeError(UProbeError::SymbolError { .. })
                    ) =>
                {
                    detach(ebpf, std::mem::take(&mut links));
                    break;
                }
                Err(e) => {
                    detach(ebpf, links);
                    return Err(e);
                }
            }
        }
        let go = !links.is_empty();
        if let Some(path) = glibc_of(pid) {
            for &probe in HEAP_PROBES {
                if let Err(e) = attach_one(ebpf, pid, probe, &path, &mut links) {
                    detach(ebpf, links);
                    return Err(e);
                }
            }
            tracing::debug!(pid, go, libc = %path.display(), "heap probes attached");
        } else if go {
            tracing::debug!(pid, "Go heap probes attached");
        } else {
            return Err(HeapSkip::NoAllocator { pid });
        }
        self.links.insert(pid, links);
        Ok(())
    }

    /// `pid` is gone (or exec'd into a new image): its probes are detached and its live blocks
    /// dropped from the kernel's map, which returns to its idle size.
    pub fn forget(&mut self, ebpf: &mut Ebpf, pid: u32) {
        if let Some(links) = self.links.remove(&pid) {
            detach(ebpf, links);
        }
        let Some(map) = ebpf.map_mut(config::MAP_HEAP_LIVE) else {
            return;
        };
        let Ok(mut live) = BpfHashMap::<&mut MapData, HeapKey, u64>::try_from(map) else {
            return;
        };
        let gone: Vec<HeapKey> = live
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.tgid == pid)
            .collect();
        for k in gone {
            let _ = live.remove(&k);
        }
    }
}

/// Attaches `program` at `function` of the binary at `path`, for `pid` alone.
fn attach_one(
    ebpf: &mut Ebpf,
    pid: u32,
    (function, program): (&'static str, &'static str),
    path: &Path,
    links: &mut Vec<(&'static str, UProbeLinkId)>,
) -> Result<(), HeapSkip> {
    let scope = NonZeroU32::new(pid).ok_or(HeapSkip::NoAllocator { pid })?;
    let link = uprobe(ebpf, program)?
        .attach(function, path, UProbeScope::OneProcess(scope))
        .map_err(|source| HeapSkip::Attach {
            pid,
            program,
            function,
            path: path.to_owned(),
            source: Box::new(source),
        })?;
    links.push((program, link));
    Ok(())
}

fn detach(ebpf: &mut Ebpf, links: Vec<(&'static str, UProbeLinkId)>) {
    for (program, link) in links {
        if let Ok(p) = uprobe(ebpf, program)
            && let Err(e) = p.detach(link)
        {
            tracing::debug!(program, "heap probe detach failed: {e}");
        }
    }
}
