//! Unwinding a copied user stack with the binaries' unwind tables (framehop), for processes
//! whose code does not keep frame pointers.

use std::sync::Arc;

use framehop::{
    ExplicitModuleSectionInfo, FrameAddress, Module, Unwinder as _,
    x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64},
};

use super::{elf::Binary, maps::Mapping};

/// Frames followed at most per stack.
pub const MAX_FRAMES: usize = 128;

/// One process's unwinder: a module per executable file mapping with unwind tables.
pub struct ProcessUnwinder {
    unwinder: UnwinderX86_64<Arc<[u8]>>,
    cache: CacheX86_64,
}

impl std::fmt::Debug for ProcessUnwinder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessUnwinder")
            .field(
                "max_known_code_address",
                &self.unwinder.max_known_code_address(),
            )
            .finish_non_exhaustive()
    }
}

impl ProcessUnwinder {
    /// An unwinder for `maps`; `binary` gives the binary of a path (read once per file by the
    /// caller).
    pub fn new(maps: &[Mapping], mut binary: impl FnMut(&str) -> Option<Arc<Binary>>) -> Self {
        let mut unwinder = UnwinderX86_64::new();
        for m in maps {
            let Some(path) = &m.path else { continue };
            let Some(bin) = binary(path) else { continue };
            let (Some(tables), Some(svma)) = (&bin.unwind, bin.svma_of(m.offset)) else {
                continue;
            };
            // ELF addresses in the file are relative to 0: the load bias is where the mapping
            // landed less the address the file gives its first byte.
            let bias = m.start.wrapping_sub(svma);
            let info = ExplicitModuleSectionInfo {
                base_svma: 0,
                text_svma: tables.text_svma.clone(),
                got_svma: tables.got_svma.clone(),
                eh_frame_svma: Some(tables.eh_frame_svma.clone()),
                eh_frame: Some(tables.eh_frame.clone()),
                eh_frame_hdr_svma: tables.eh_frame_hdr.as_ref().map(|(r, _)| r.clone()),
                eh_frame_hdr: tables.eh_frame_hdr.as_ref().map(|(_, d)| d.clone()),
                ..ExplicitModuleSectionInfo::default()
            };
            unwinder.add_module(Module::new(path.to_string(), m.start..m.end, bias, info));
        }
        Self {
            unwinder,
            cache: CacheX86_64::new(),
        }
    }

    /// The addresses to look up for each frame of a stack copied from `sp` (`data`), innermost
    /// first: the instruction pointer, then each return address less one (inside the call).
    pub fn unwind(&mut self, ip: u64, sp: u64, bp: u64, data: &[u8]) -> Vec<u64> {
        let mut read_stack = |addr: u64| -> Result<u64, ()> {
            let at = usize::try_from(addr.checked_sub(sp).ok_or(())?).map_err(|_| ())?;
            let bytes = data.get(at..at.checked_add(8).ok_or(())?).ok_or(())?;
            Ok(u64::from_le_bytes(bytes.try_into().map_err(|_| ())?))
        };
        let mut frames = Vec::new();
        let mut iter = self.unwinder.iter_frames(
            ip,
            UnwindRegsX86_64::new(ip, sp, bp),
            &mut self.cache,
            &mut read_stack,
        );
        while frames.len() < MAX_FRAMES {
            match iter.next() {
                Ok(Some(frame)) => frames.push(lookup(frame)),
                // The end of the stack, or of what was copied: what was unwound stands.
                Ok(None) | Err(_) => break,
            }
        }
        frames
    }
}

/// The address to symbolize for a frame: a return address points after the call.
fn lookup(frame: FrameAddress) -> u64 {
    frame.address_for_lookup()
}
