//! Where each heap uprobe goes: on an instruction the kernel emulates, so that a hit costs a
//! trap and not a single-step.
//!
//! On x86-64 the kernel runs a probed instruction out of line by single-stepping it, which
//! raises a debug exception; under a hypervisor that is a VM exit (about 20 µs a hit on the
//! machines this was measured on, against 0.5 µs). Only a few kinds of instruction are emulated
//! instead (`branch_setup_xol_ops` and `push_setup_xol_ops` in arch/x86/kernel/uprobes.c):
//! nops, `jmp`/`jcc`/`call` with a relative target, and `push` of a 64-bit register. glibc
//! 2.36's `free` starts with `test %rdi,%rdi`, whose `je` 3 bytes in is emulated with `%rdi`
//! still holding the pointer; every Go function starts with the stack-bound check
//! `cmp 0x10(%r14),%rsp`, whose `jbe` follows.
//!
//! So the start of each probed function is decoded (iced-x86) and the probe goes on the first
//! instruction that is emulated and still runs on every call with the arguments the program
//! reads intact: straight-line code from the entry, before any branch, before anything writes
//! an argument register. A return probe also needs the return address on top of the stack
//! (the kernel swaps it for its trampoline), so nothing before its site may move the stack
//! pointer. Where no instruction qualifies, the probe stays at the entry and is single-stepped;
//! the reason is logged and the budget counts it at its own cost.

use std::path::Path;

use iced_x86::{
    Code, Decoder, DecoderOptions, FlowControl, Instruction, InstructionInfoFactory, OpAccess,
    Register,
};

/// How many bytes of a function's start are decoded: enough for any prologue worth probing.
const WINDOW: usize = 64;

/// How the kernel runs the instruction a probe sits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handling {
    /// Emulated: a trap and the program, about half a microsecond here.
    Emulated,
    /// Single-stepped out of line: a second exception (a VM exit under a hypervisor).
    SingleStepped,
}

/// A probe's place in its function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Site {
    /// Bytes from the function's start.
    pub offset: u64,
    pub handling: Handling,
    /// Why a single-stepped site was kept (`None` for an emulated one).
    pub why: Option<&'static str>,
}

/// What a probe needs at its site.
#[derive(Debug, Clone, Copy)]
pub struct Needs<'a> {
    /// Registers the program reads (the arguments); none may have been written before the site.
    pub registers: &'a [Register],
    /// A return probe: the return address must still be on top of the stack.
    pub returns: bool,
}

/// Whether the kernel emulates `ins` (mirrors `branch_setup_xol_ops`, `push_setup_xol_ops` and
/// the nop check of arch/x86/kernel/uprobes.c).
fn emulated(ins: &Instruction, bytes: &[u8]) -> bool {
    // The kernel refuses an operand-size prefix on a branch, and any prefix but REX.B on push.
    let opsize = bytes.first() == Some(&0x66);
    match ins.code() {
        Code::Nopd | Code::Nopq | Code::Nopw | Code::Nop_rm16 | Code::Nop_rm32 | Code::Nop_rm64 => {
            true
        }
        Code::Jmp_rel8_64 | Code::Jmp_rel32_64 | Code::Call_rel32_64 => !opsize,
        Code::Push_r64 => bytes.len() == 1 || (bytes.len() == 2 && bytes[0] == 0x41),
        _ => ins.is_jcc_short_or_near() && !opsize,
    }
}

/// Whether `ins` writes `reg` (or any part of it).
fn writes(info: &iced_x86::InstructionInfo, reg: Register) -> bool {
    info.used_registers().iter().any(|u| {
        u.register().full_register() == reg.full_register()
            && matches!(
                u.access(),
                OpAccess::Write
                    | OpAccess::CondWrite
                    | OpAccess::ReadWrite
                    | OpAccess::ReadCondWrite
            )
    })
}

/// The site for a probe in the function whose first bytes are `code`.
pub fn place(code: &[u8], needs: Needs<'_>) -> Site {
    let entry = |why| Site {
        offset: 0,
        handling: Handling::SingleStepped,
        why: Some(why),
    };
    let mut decoder = Decoder::with_ip(64, code, 0, DecoderOptions::NONE);
    let mut factory = InstructionInfoFactory::new();
    let mut ins = Instruction::default();
    while decoder.can_decode() {
        decoder.decode_out(&mut ins);
        if ins.is_invalid() {
            return entry("the function's start does not decode");
        }
        let at = ins.ip() as usize;
        let bytes = &code[at..at + ins.len()];
        if emulated(&ins, bytes) {
            return Site {
                offset: at as u64,
                handling: Handling::Emulated,
                why: None,
            };
        }
        if ins.flow_control() != FlowControl::Next {
            return entry("a branch comes before any emulated instruction");
        }
        let info = factory.info(&ins);
        if needs.registers.iter().any(|&r| writes(info, r)) {
            return entry("an argument register is written before any emulated instruction");
        }
        if needs.returns && writes(info, Register::RSP) {
            return entry("the stack moves before any emulated instruction (a return probe)");
        }
    }
    entry("no emulated instruction in the function's first bytes")
}

/// The offset of the first instruction of `code` the kernel single-steps, before any branch
/// (what calibration measures a single-step with).
pub fn first_single_stepped(code: &[u8]) -> Option<u64> {
    let mut decoder = Decoder::with_ip(64, code, 0, DecoderOptions::NONE);
    let mut ins = Instruction::default();
    while decoder.can_decode() {
        decoder.decode_out(&mut ins);
        let at = ins.ip() as usize;
        if ins.is_invalid() || ins.flow_control() != FlowControl::Next {
            return None;
        }
        if !emulated(&ins, &code[at..at + ins.len()]) {
            return Some(at as u64);
        }
    }
    None
}

/// A function found in a binary: its file offset (what a uprobe is attached at) and its first
/// bytes.
#[derive(Debug, Clone)]
pub struct Function {
    pub file_offset: u64,
    pub code: Vec<u8>,
}

/// What kind of binary to look for the functions in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Any ELF file: the functions are looked up among its dynamic symbols, then its full
    /// symbol table.
    Any,
    /// A Go program only (it has `.gopclntab` or `.go.buildinfo`); its runtime functions are in
    /// the full symbol table. Any other binary is not searched at all: a large one (node is
    /// 90 MB) would be read for nothing.
    Go,
}

/// `names` in the ELF file at `path`, in order: `None` when the file is not of `kind` or lacks
/// one of them (not a glibc, a stripped binary). Only the parts of the file the lookup needs
/// are read.
pub fn functions(path: &Path, names: &[&str], kind: Kind) -> Option<Vec<Function>> {
    use object::{
        Object as _, ObjectSection as _, ObjectSymbol as _, ReadRef as _, read::ReadCache,
    };
    let file = std::fs::File::open(path).ok()?;
    let cache = ReadCache::new(file);
    let elf = object::File::parse(&cache).ok()?;
    if kind == Kind::Go
        && elf.section_by_name(".gopclntab").is_none()
        && elf.section_by_name(".go.buildinfo").is_none()
    {
        return None;
    }
    let mut found: Vec<Option<(u64, object::SectionIndex)>> = vec![None; names.len()];
    for sym in elf.dynamic_symbols().chain(elf.symbols()) {
        if !sym.is_definition() {
            continue;
        }
        let Ok(name) = sym.name() else { continue };
        let Some(section) = sym.section_index() else {
            continue;
        };
        // A name may be asked for twice (an entry and a return probe on one function).
        for (i, n) in names.iter().enumerate() {
            if *n == name && found[i].is_none() {
                found[i] = Some((sym.address(), section));
            }
        }
        if found.iter().all(Option::is_some) {
            break;
        }
    }
    found
        .into_iter()
        .map(|f| {
            let (address, index) = f?;
            let section = elf.section_by_index(index).ok()?;
            let (offset, size) = section.file_range()?;
            let within = address.checked_sub(section.address())?;
            if within >= size {
                return None;
            }
            let len = (size - within).min(WINDOW as u64);
            let code = (&cache).read_bytes_at(offset + within, len).ok()?.to_vec();
            Some(Function {
                file_offset: offset + within,
                code,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARG0: Needs<'static> = Needs {
        registers: &[Register::RDI],
        returns: false,
    };

    fn at(offset: u64) -> Site {
        Site {
            offset,
            handling: Handling::Emulated,
            why: None,
        }
    }

    #[test]
    fn glibc_2_36_malloc_is_probed_at_its_push() {
        // push %r12; push %rbp; push %rbx; mov %rdi,%rbx
        let malloc = [0x41, 0x54, 0x55, 0x53, 0x48, 0x89, 0xfb];
        assert_eq!(place(&malloc, ARG0), at(0));
        let ret = Needs {
            registers: &[],
            returns: true,
        };
        assert_eq!(place(&malloc, ret), at(0));
    }

    #[test]
    fn glibc_2_36_free_is_probed_at_its_je() {
        // test %rdi,%rdi; je +0xbf; push %rbp
        let free = [0x48, 0x85, 0xff, 0x0f, 0x84, 0xbf, 0, 0, 0, 0x55];
        assert_eq!(place(&free, ARG0), at(3));
    }

    #[test]
    fn go_functions_are_probed_at_the_stack_check_branch() {
        // cmp 0x10(%r14),%rsp; jbe +0x50
        let span = [0x49, 0x3b, 0x66, 0x10, 0x76, 0x50];
        let go = Needs {
            registers: &[Register::RBX, Register::RCX],
            returns: false,
        };
        assert_eq!(place(&span, go), at(4));
        // mProf_Malloc's large frame: lea -0xf0(%rsp),%r12; cmp 0x10(%r14),%r12; jbe
        let big = [
            0x4c, 0x8d, 0xa4, 0x24, 0x10, 0xff, 0xff, 0xff, 0x4d, 0x3b, 0x66, 0x10, 0x0f, 0x86,
            0x10, 0x01, 0, 0,
        ];
        assert_eq!(place(&big, go), at(12));
    }

    #[test]
    fn the_first_single_stepped_instruction() {
        // push %r12; push %rbp; push %rbx; mov %rdi,%rbx
        assert_eq!(
            first_single_stepped(&[0x41, 0x54, 0x55, 0x53, 0x48, 0x89, 0xfb]),
            Some(4)
        );
        assert_eq!(first_single_stepped(&[0x55, 0xc3]), None);
    }

    #[test]
    fn an_argument_written_first_keeps_the_probe_at_the_entry() {
        // mov %rsi,%rdi; push %rbp
        let code = [0x48, 0x89, 0xf7, 0x55];
        let site = place(&code, ARG0);
        assert_eq!(site.offset, 0);
        assert_eq!(site.handling, Handling::SingleStepped);
        // A partial write counts: mov %sil,%dil
        let code = [0x40, 0x88, 0xf7, 0x55];
        assert_eq!(place(&code, ARG0).handling, Handling::SingleStepped);
    }

    #[test]
    fn a_return_probe_stays_where_the_return_address_is_on_top() {
        // sub $8,%rsp; push %rbx: the push is emulated but the stack has moved.
        let code = [0x48, 0x83, 0xec, 0x08, 0x53];
        let ret = Needs {
            registers: &[],
            returns: true,
        };
        assert_eq!(place(&code, ret).handling, Handling::SingleStepped);
        assert_eq!(place(&code, ARG0), at(4));
        // endbr64 moves nothing: a return probe may sit on the push after it.
        let cet = [0xf3, 0x0f, 0x1e, 0xfa, 0x55];
        assert_eq!(place(&cet, ret), at(4));
    }

    #[test]
    fn nothing_is_placed_past_a_branch_or_on_what_the_kernel_single_steps() {
        // ret: nothing after it runs.
        assert_eq!(place(&[0xc3, 0x55], ARG0).handling, Handling::SingleStepped);
        // An operand-size prefix on a push is not emulated; neither is a push of memory.
        assert_eq!(place(&[0x66, 0x55], ARG0).handling, Handling::SingleStepped);
        assert_eq!(place(&[0xff, 0x37], ARG0).handling, Handling::SingleStepped);
        // Multi-byte nop and a call are.
        assert_eq!(place(&[0x0f, 0x1f, 0x40, 0x00], ARG0), at(0));
        assert_eq!(place(&[0xe8, 0, 0, 0, 0], ARG0), at(0));
        assert_eq!(place(&[], ARG0).handling, Handling::SingleStepped);
    }

    /// This machine's own glibc, as the targets on it map it: `malloc`, `calloc` and `realloc`
    /// at an emulated instruction, `free` too (Debian 12's: at +3).
    #[test]
    fn this_machines_glibc_is_probed_on_emulated_instructions() {
        let Some(libc) = ["/usr/lib/x86_64-linux-gnu/libc.so.6", "/lib64/libc.so.6"]
            .into_iter()
            .map(Path::new)
            .find(|p| p.is_file())
        else {
            return;
        };
        let names = ["malloc", "calloc", "realloc", "free"];
        let found = functions(libc, &names, Kind::Any).expect("glibc's allocator");
        for (name, f) in names.into_iter().zip(found) {
            let regs: &[Register] = if name == "free" {
                &[Register::RDI]
            } else {
                &[Register::RDI, Register::RSI]
            };
            let site = place(
                &f.code,
                Needs {
                    registers: regs,
                    returns: false,
                },
            );
            assert_eq!(site.handling, Handling::Emulated, "{name}: {site:?}");
        }
        assert!(functions(libc, &["malloc", "no_such_function_here"], Kind::Any).is_none());
        let twice = functions(libc, &["malloc", "malloc"], Kind::Any).expect("malloc twice");
        assert_eq!(twice[0].file_offset, twice[1].file_offset);
        assert!(
            functions(libc, &["malloc"], Kind::Go).is_none(),
            "glibc is no Go program"
        );
    }
}
