//! What stack capture needs from a binary, read once per file: whether its code keeps frame
//! pointers, where its segments load, and its unwind tables (`.eh_frame`, `.eh_frame_hdr`).
//!
//! The file is read through a cache of the parts asked for, not whole: node is 90 MB, its
//! unwind tables a few.

use std::{fs::File, ops::Range, path::Path, sync::Arc};

use object::{
    Object as _, ObjectSection as _, ObjectSegment as _, ObjectSymbol as _, read::ReadCache,
};

/// Functions whose first instructions are inspected to tell whether a binary keeps frame
/// pointers.
const PROLOGUES_SAMPLED: usize = 2000;

/// The unwind tables of a binary, at their addresses in the file (SVMAs).
#[derive(Clone)]
pub struct UnwindTables {
    pub text_svma: Option<Range<u64>>,
    pub got_svma: Option<Range<u64>>,
    pub eh_frame_svma: Range<u64>,
    pub eh_frame: Arc<[u8]>,
    pub eh_frame_hdr: Option<(Range<u64>, Arc<[u8]>)>,
}

impl std::fmt::Debug for UnwindTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnwindTables")
            .field("eh_frame_svma", &self.eh_frame_svma)
            .field("eh_frame_bytes", &self.eh_frame.len())
            .field("has_eh_frame_hdr", &self.eh_frame_hdr.is_some())
            .finish_non_exhaustive()
    }
}

/// One binary, as stack capture sees it.
#[derive(Debug, Clone)]
pub struct Binary {
    /// Its code sets up frame pointers (so the kernel can walk its stacks): most functions begin
    /// with `push rbp; mov rbp, rsp`, or it is a Go binary (Go keeps frame pointers on x86-64).
    pub frame_pointers: bool,
    /// Loadable segments: (file offset, address, size in the file).
    segments: Vec<(u64, u64, u64)>,
    pub unwind: Option<UnwindTables>,
}

/// Why a binary could not be read. Logged; its frames are then named by module and offset.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error("cannot open {path}")]
    Open {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not an ELF file memwatch can read")]
    Parse {
        path: String,
        #[source]
        source: object::Error,
    },
}

impl Binary {
    /// Reads what stack capture needs from the ELF file at `path`.
    pub fn read(path: &Path) -> Result<Self, ElfError> {
        let shown = || path.display().to_string();
        let file = File::open(path).map_err(|source| ElfError::Open {
            path: shown(),
            source,
        })?;
        let cache = ReadCache::new(file);
        let elf = object::File::parse(&cache).map_err(|source| ElfError::Parse {
            path: shown(),
            source,
        })?;
        let segments = elf
            .segments()
            .map(|s| (s.file_range().0, s.address(), s.file_range().1))
            .collect();
        let section = |name: &str| {
            let s = elf.section_by_name(name)?;
            let data = s.data().ok()?;
            Some((s.address()..s.address() + s.size(), Arc::<[u8]>::from(data)))
        };
        let range = |name: &str| {
            elf.section_by_name(name)
                .map(|s| s.address()..s.address() + s.size())
        };
        let unwind = section(".eh_frame").map(|(eh_frame_svma, eh_frame)| UnwindTables {
            text_svma: range(".text"),
            got_svma: range(".got"),
            eh_frame_svma,
            eh_frame,
            eh_frame_hdr: section(".eh_frame_hdr"),
        });
        let go = elf.section_by_name(".gopclntab").is_some()
            || elf.section_by_name(".go.buildinfo").is_some();
        Ok(Self {
            frame_pointers: go || keeps_frame_pointers(&elf),
            segments,
            unwind,
        })
    }

    /// The file offset of the byte at address `svma`, through the segment holding it.
    pub fn offset_of(&self, svma: u64) -> Option<u64> {
        self.segments
            .iter()
            .find(|&&(_, addr, size)| svma >= addr && svma < addr + size.max(1))
            .map(|&(off, addr, _)| off + (svma - addr))
    }

    /// The address in the file (SVMA) of the byte at `offset`, through the segment holding it.
    pub fn svma_of(&self, offset: u64) -> Option<u64> {
        self.segments
            .iter()
            .find(|&&(off, _, size)| offset >= off && offset < off + size.max(1))
            .map(|&(off, addr, _)| addr + (offset - off))
    }
}

/// Whether most functions (of a sample, from the symbol table or else the dynamic one) begin
/// with `push rbp; mov rbp, rsp`, after an optional `endbr64`.
fn keeps_frame_pointers<'a, R: object::ReadRef<'a>>(elf: &object::File<'a, R>) -> bool {
    let Some(text) = elf.section_by_name(".text") else {
        return false;
    };
    let text_start = text.address();
    let Ok(code) = text.data() else {
        return false;
    };
    // `push rbp` first; `mov rbp, rsp` within the next few instructions (compilers schedule
    // other work in between).
    let check = |addr: u64| -> Option<bool> {
        let at = usize::try_from(addr.checked_sub(text_start)?).ok()?;
        let mut head = code.get(at..(at + 36).min(code.len()))?;
        if head.starts_with(&[0xf3, 0x0f, 0x1e, 0xfa]) {
            head = &head[4..];
        }
        let sets_rbp = head.windows(3).take(28).any(|w| w == [0x48, 0x89, 0xe5]);
        Some(head.first() == Some(&0x55) && sets_rbp)
    };
    // The C runtime's own start-up code never sets up frames: it says nothing of the program.
    let program = |name: &str| {
        !matches!(
            name,
            "_start"
                | "_init"
                | "_fini"
                | "deregister_tm_clones"
                | "register_tm_clones"
                | "__do_global_dtors_aux"
                | "frame_dummy"
        )
    };
    let mut symbols: Vec<u64> = elf
        .symbols()
        .filter(|s| s.kind() == object::SymbolKind::Text && s.size() > 0)
        .filter(|s| s.name().is_ok_and(program))
        .map(|s| s.address())
        .take(PROLOGUES_SAMPLED)
        .collect();
    if symbols.is_empty() {
        symbols = elf
            .dynamic_symbols()
            .filter(|s| s.kind() == object::SymbolKind::Text && s.size() > 0)
            .filter(|s| s.name().is_ok_and(program))
            .map(|s| s.address())
            .take(PROLOGUES_SAMPLED)
            .collect();
    }
    let (mut with, mut total) = (0usize, 0usize);
    for addr in symbols {
        if let Some(fp) = check(addr) {
            total += 1;
            with += usize::from(fp);
        }
    }
    tracing::debug!(with, of = total, "functions that set up a frame pointer");
    total >= 3 && with * 2 >= total
}

#[cfg(test)]
mod tests {
    use super::*;

    /// memwatch itself, as the tests build it: Rust without forced frame pointers, with unwind
    /// tables.
    #[test]
    fn reads_a_binary_s_unwind_tables_and_segments() {
        let exe = std::env::current_exe().unwrap();
        let b = Binary::read(&exe).unwrap();
        let unwind = b.unwind.as_ref().expect("Rust binaries have .eh_frame");
        assert!(!unwind.eh_frame.is_empty());
        assert!(unwind.eh_frame_hdr.is_some());
        // The first loadable segment starts the file.
        assert_eq!(b.svma_of(0), Some(b.segments[0].1));
    }

    #[test]
    fn a_missing_file_says_which() {
        let err = Binary::read(Path::new("/nonexistent/memwatch-test")).unwrap_err();
        assert_eq!(err.to_string(), "cannot open /nonexistent/memwatch-test");
    }
}
