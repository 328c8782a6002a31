//! SystemTap SDT (USDT) probes of an ELF file, read from its `.note.stapsdt` notes: where each
//! probe sits (a nop, which the kernel emulates), its semaphore if it has one, and where its
//! arguments are, as the note spells them (`8@%r8`).

use memwatch_common::gc::Reg;

/// A USDT probe's note: where it is, and its arguments as the note spells them (`8@%r8`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usdt {
    pub provider: String,
    pub name: String,
    /// The probe's file offset, what a uprobe is attached at.
    pub file_offset: u64,
    /// The semaphore's file offset (what the kernel counts as `ref_ctr_offset`), 0 when the
    /// probe has none and always fires.
    pub semaphore: u64,
    pub args: Vec<String>,
}

/// The register of a USDT argument held whole in a 64-bit register (`8@%r8`, `-8@%rdx`);
/// `None` for any other form (a narrower register, memory, a constant).
pub fn register(arg: &str) -> Option<Reg> {
    let (size, operand) = arg.split_once('@')?;
    if size.trim_start_matches('-') != "8" {
        return None;
    }
    Some(match operand.strip_prefix('%')? {
        "rax" => Reg::Rax,
        "rbx" => Reg::Rbx,
        "rcx" => Reg::Rcx,
        "rdx" => Reg::Rdx,
        "rsi" => Reg::Rsi,
        "rdi" => Reg::Rdi,
        "rbp" => Reg::Rbp,
        "rsp" => Reg::Rsp,
        "r8" => Reg::R8,
        "r9" => Reg::R9,
        "r10" => Reg::R10,
        "r11" => Reg::R11,
        "r12" => Reg::R12,
        "r13" => Reg::R13,
        "r14" => Reg::R14,
        "r15" => Reg::R15,
        _ => return None,
    })
}

/// [`notes`] of the ELF file at `path`, reading only its headers and the note section, not the
/// whole file: Debian's libjvm.so is about 20 MiB, which memwatch held at once to find two
/// probes.
pub fn notes_in(path: &std::path::Path) -> Option<Vec<Usdt>> {
    let file = std::fs::File::open(path).ok()?;
    notes(&object::read::ReadCache::new(file))
}

/// The SystemTap SDT notes of an ELF file (`.note.stapsdt`), each probe's address turned into
/// the file offset a uprobe is attached at (adjusted by `.stapsdt.base` for a prelinked file).
pub fn notes<'data, R: object::ReadRef<'data>>(data: R) -> Option<Vec<Usdt>> {
    use object::{Object as _, ObjectSection as _};
    let elf = object::File::parse(data).ok()?;
    let notes = elf.section_by_name(".note.stapsdt")?.data().ok()?;
    let base_section = elf.section_by_name(".stapsdt.base").map(|s| s.address());
    let to_offset = |addr: u64| {
        elf.sections().find_map(|s| {
            let (offset, size) = s.file_range()?;
            let within = addr.checked_sub(s.address())?;
            (within < size && s.address() != 0).then_some(offset + within)
        })
    };
    let u32_at = |b: &[u8], at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
    };
    let u64_at = |b: &[u8], at: usize| -> Option<u64> {
        Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
    };
    let align4 = |n: usize| n.div_ceil(4) * 4;
    let mut out = Vec::new();
    let mut at = 0;
    while at + 12 <= notes.len() {
        let namesz = u32_at(notes, at)? as usize;
        let descsz = u32_at(notes, at + 4)? as usize;
        let kind = u32_at(notes, at + 8)?;
        let name = notes.get(at + 12..at + 12 + namesz)?;
        let desc_at = at + 12 + align4(namesz);
        let desc = notes.get(desc_at..desc_at + descsz)?;
        at = desc_at + align4(descsz);
        // NT_STAPSDT, owner "stapsdt".
        if kind != 3 || name.strip_suffix(&[0]) != Some(b"stapsdt") {
            continue;
        }
        let (Some(pc), Some(base), Some(semaphore)) =
            (u64_at(desc, 0), u64_at(desc, 8), u64_at(desc, 16))
        else {
            continue;
        };
        let mut strings = desc.get(24..)?.split(|&b| b == 0);
        let mut next = || {
            strings
                .next()
                .map(|s| String::from_utf8_lossy(s).into_owned())
        };
        let (Some(provider), Some(probe), Some(args)) = (next(), next(), next()) else {
            continue;
        };
        let pc = match base_section {
            Some(actual) => pc.wrapping_add(actual.wrapping_sub(base)),
            None => pc,
        };
        let Some(file_offset) = to_offset(pc) else {
            continue;
        };
        // The semaphore is a counter in a data section, found as its probe is.
        let semaphore = match semaphore {
            0 => 0,
            addr => {
                let addr = match base_section {
                    Some(actual) => addr.wrapping_add(actual.wrapping_sub(base)),
                    None => addr,
                };
                let Some(offset) = to_offset(addr) else {
                    continue;
                };
                offset
            }
        };
        out.push(Usdt {
            provider,
            name: probe,
            file_offset,
            semaphore,
            args: args.split_whitespace().map(str::to_owned).collect(),
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usdt_arguments_in_whole_registers_only() {
        assert_eq!(register("8@%r8"), Some(Reg::R8));
        assert_eq!(register("-8@%rdx"), Some(Reg::Rdx));
        assert_eq!(register("1@%dil"), None);
        assert_eq!(register("4@%eax"), None);
        assert_eq!(register("8@-16(%rbp)"), None);
        assert_eq!(register("8@$5"), None);
    }
}
