//! A traced process's executable mappings, from `/proc/PID/maps`: which file (and where in it)
//! an instruction address belongs to.

use std::sync::Arc;

use procfs::process::{MMPermissions, MMapPath, Process};

/// One executable mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    /// File offset of `start`.
    pub offset: u64,
    /// The file, as the process names it; `None` for code in no file (JIT, trampolines) and
    /// `[vdso]`-like pseudo-files.
    pub path: Option<Arc<str>>,
}

/// Where an instruction address lies.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Place {
    /// In a file, at this offset.
    File(Arc<str>, u64),
    /// In code of no file (a JIT's): only a perf map can name it.
    Anon(u64),
}

/// The executable mappings of `pid`, by address; empty when the process is gone.
pub fn executable(pid: u32) -> Vec<Mapping> {
    let Ok(maps) = Process::new(pid as i32).and_then(|p| p.maps()) else {
        return Vec::new();
    };
    let mut out: Vec<Mapping> = maps
        .into_iter()
        .filter(|m| m.perms.contains(MMPermissions::EXECUTE))
        .map(|m| Mapping {
            start: m.address.0,
            end: m.address.1,
            offset: m.offset,
            path: match m.pathname {
                MMapPath::Path(p) => Some(Arc::from(p.to_string_lossy().as_ref())),
                _ => None,
            },
        })
        .collect();
    out.sort_by_key(|m| m.start);
    out
}

/// The mapping holding `addr`, if any.
pub fn find(maps: &[Mapping], addr: u64) -> Option<&Mapping> {
    let i = maps.partition_point(|m| m.start <= addr);
    maps[..i].last().filter(|m| addr < m.end)
}

/// Where `addr` lies, given the mapping holding it.
pub fn place(m: &Mapping, addr: u64) -> Place {
    match &m.path {
        Some(p) => Place::File(p.clone(), addr - m.start + m.offset),
        None => Place::Anon(addr),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_find_their_mapping_and_file_offset() {
        let maps = vec![
            Mapping {
                start: 0x1000,
                end: 0x3000,
                offset: 0x500,
                path: Some("/bin/x".into()),
            },
            Mapping {
                start: 0x8000,
                end: 0x9000,
                offset: 0,
                path: None,
            },
        ];
        let at = |a| find(&maps, a).map(|m| place(m, a));
        assert_eq!(at(0x1000), Some(Place::File("/bin/x".into(), 0x500)));
        assert_eq!(at(0x2fff), Some(Place::File("/bin/x".into(), 0x24ff)));
        assert_eq!(at(0x3000), None);
        assert_eq!(at(0x8010), Some(Place::Anon(0x8010)));
        assert_eq!(at(0x10), None);
    }

    /// This test process's own code is in an executable mapping of its own file.
    #[test]
    fn reads_this_process_s_maps() {
        let maps = executable(std::process::id());
        let here = addresses_find_their_mapping_and_file_offset as *const () as u64;
        let m = find(&maps, here).expect("this function is mapped");
        let exe = std::env::current_exe().unwrap();
        assert_eq!(m.path.as_deref(), exe.to_str());
    }
}
