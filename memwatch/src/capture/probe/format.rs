//! Tracepoint format files (`events/<category>/<name>/format` in tracefs): [`parse`] reads one,
//! and [`FieldRead::check`] says whether a field the kernel side reads is where, and as wide as,
//! the program expects. Both are pure; preflight does the reading from disk.
//!
//! A format file lists the record's fields, one per line, its parts separated by tabs:
//!
//! ```text
//!     field:unsigned long clone_flags;    offset:32;    size:8;    signed:0;
//! ```
//!
//! This module imports nothing of memwatch's own.

use memwatch_common::tracepoint::{self, FIELD_REACH};

/// One field of a tracepoint record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The field's name: the declaration's last identifier (`clone_flags`, `comm` of
    /// `char comm[16]`).
    pub name: String,
    /// The C declaration as the kernel prints it (`unsigned long clone_flags`).
    pub decl: String,
    /// Bytes from the start of the record.
    pub offset: u32,
    /// Width in bytes.
    pub size: u32,
    /// Whether the C type is signed.
    pub signed: bool,
}

/// A parsed format file: its fields in the order the kernel lists them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Format {
    pub fields: Vec<Field>,
}

impl Format {
    /// The field called `name`, if the record has one.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// Why a format file could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A `field:` line that does not say where the field is or how wide.
    #[error("line {line}: {reason}: {text:?}")]
    Line {
        /// 1-based.
        line: usize,
        text: String,
        reason: &'static str,
    },
    /// No `field:` line at all (every record has at least the common header's fields).
    #[error("no `field:` lines")]
    NoFields,
}

/// Parses a format file's text. Lines other than `field:` lines (`name:`, `ID:`, `print fmt:`,
/// blank lines) are skipped; a `field:` line must carry a name, `offset:` and `size:`.
pub fn parse(text: &str) -> Result<Format, ParseError> {
    let mut fields = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let Some(rest) = raw.trim_start().strip_prefix("field:") else {
            continue;
        };
        let bad = |reason| ParseError::Line {
            line: i + 1,
            text: raw.trim().to_owned(),
            reason,
        };
        let mut parts = rest.split(';').map(str::trim);
        let decl = parts.next().unwrap_or_default();
        let (mut offset, mut size, mut signed) = (None, None, false);
        for part in parts.filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once(':')
                .ok_or(bad("a `key:value` is malformed"))?;
            let number = || value.trim().parse::<u32>().map_err(|_| bad("not a number"));
            match key.trim() {
                "offset" => offset = Some(number()?),
                "size" => size = Some(number()?),
                "signed" => signed = number()? != 0,
                // Newer kernels may add keys; what is needed is above.
                _ => {}
            }
        }
        let name = field_name(decl).ok_or(bad("no field name"))?;
        fields.push(Field {
            name: name.to_owned(),
            decl: decl.to_owned(),
            offset: offset.ok_or(bad("no `offset:`"))?,
            size: size.ok_or(bad("no `size:`"))?,
            signed,
        });
    }
    if fields.is_empty() {
        return Err(ParseError::NoFields);
    }
    Ok(Format { fields })
}

/// The name in a C declaration: its last identifier, without an array suffix or pointer stars
/// (`char comm[16]` → `comm`, `void * sk` → `sk`, `__data_loc char[] name` → `name`).
fn field_name(decl: &str) -> Option<&str> {
    let last = decl.split_whitespace().next_back()?;
    let name = last.split('[').next()?.trim_start_matches('*');
    let ident = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    ident.then_some(name)
}

/// Where a program reads a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// At this offset, compiled into the program (syscall records, read with direct context
    /// loads): the format must put the field exactly there.
    Fixed(u32),
    /// At the offset held by this load-time global (a name in `memwatch_common::config`), which
    /// user space sets from the format. A program with such a read attaches to one tracepoint
    /// only, since one global holds one offset.
    Global(&'static str),
}

/// A field that a program reads from its tracepoint's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldRead {
    /// The field's name in the format file.
    pub name: &'static str,
    /// Bytes the program loads: the field must be exactly this wide.
    pub size: u32,
    pub at: At,
}

impl FieldRead {
    /// Argument `n` (from 0) of a `sys_enter_*` record, named as in its format file.
    pub const fn syscall_arg(name: &'static str, n: u32) -> Self {
        Self {
            name,
            size: tracepoint::SYSCALL_ARG_SIZE,
            at: At::Fixed(tracepoint::syscall_arg(n)),
        }
    }

    /// `ret` of a `sys_exit_*` record.
    pub const fn syscall_ret() -> Self {
        Self {
            name: "ret",
            size: tracepoint::SYSCALL_RET_SIZE,
            at: At::Fixed(tracepoint::SYSCALL_RET),
        }
    }

    /// A field `size` bytes wide read at the fixed offset `offset` (a direct context load).
    pub const fn fixed(name: &'static str, size: u32, offset: u32) -> Self {
        Self {
            name,
            size,
            at: At::Fixed(offset),
        }
    }

    /// A field `size` bytes wide read at the offset held by the load-time global `global`.
    pub const fn global(name: &'static str, size: u32, global: &'static str) -> Self {
        Self {
            name,
            size,
            at: At::Global(global),
        }
    }

    /// Checks this read against a tracepoint's format: returns the field's offset, or how the
    /// format differs from what the program reads.
    pub fn check(&self, format: &Format) -> Result<u32, FieldMismatch> {
        let Some(field) = format.field(self.name) else {
            return Err(FieldMismatch::Missing {
                field: self.name,
                size: self.size,
            });
        };
        if field.size != self.size {
            return Err(FieldMismatch::Size {
                field: self.name,
                decl: field.decl.clone(),
                expected: self.size,
                found: field.size,
            });
        }
        match self.at {
            At::Fixed(expected) if field.offset != expected => Err(FieldMismatch::Offset {
                field: self.name,
                decl: field.decl.clone(),
                size: self.size,
                expected,
                found: field.offset,
            }),
            At::Fixed(_) => Ok(field.offset),
            At::Global(_) => {
                let end = field.offset.saturating_add(field.size);
                if end > FIELD_REACH {
                    return Err(FieldMismatch::OutOfReach {
                        field: self.name,
                        decl: field.decl.clone(),
                        end,
                        reach: FIELD_REACH,
                    });
                }
                Ok(field.offset)
            }
        }
    }
}

/// How a tracepoint's format differs from what the kernel side reads. The messages name the
/// field, what memwatch expects and what this kernel has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldMismatch {
    #[error("this kernel's record has no field `{field}`, which memwatch reads ({})", bytes(*.size))]
    Missing { field: &'static str, size: u32 },
    #[error(
        "field `{field}` is {} wide on this kernel (`{decl}`); memwatch reads {}",
        bytes(*.found),
        bytes(*.expected)
    )]
    Size {
        field: &'static str,
        decl: String,
        expected: u32,
        found: u32,
    },
    #[error(
        "field `{field}` is at byte {found} on this kernel (`{decl}`); memwatch reads its {} at \
         byte {expected}",
        bytes(*.size)
    )]
    Offset {
        field: &'static str,
        decl: String,
        size: u32,
        expected: u32,
        found: u32,
    },
    #[error(
        "field `{field}` ends at byte {end} on this kernel (`{decl}`); memwatch reads only the \
         first {reach} bytes of a record"
    )]
    OutOfReach {
        field: &'static str,
        decl: String,
        end: u32,
        reach: u32,
    },
}

/// `1 byte`, `8 bytes`.
fn bytes(n: u32) -> String {
    if n == 1 {
        "1 byte".to_owned()
    } else {
        format!("{n} bytes")
    }
}

/// Offsets for the load-time globals of [`At::Global`] reads, taken from this kernel's format
/// files. Built by [`Offsets::resolve`] only, so every offset in it was checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Offsets(Vec<(&'static str, u32)>);

impl Offsets {
    /// Checks each of `reads` against `format` (one tracepoint's) and keeps the offsets of the
    /// global ones. Stops at the first mismatch.
    pub fn resolve(&mut self, format: &Format, reads: &[FieldRead]) -> Result<(), FieldMismatch> {
        for read in reads {
            let offset = read.check(format)?;
            if let At::Global(global) = read.at {
                self.0.push((global, offset));
            }
        }
        Ok(())
    }

    /// `(global name, offset)` pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &u32)> {
        self.0.iter().map(|(name, offset)| (*name, offset))
    }
}

#[cfg(test)]
mod tests {
    use memwatch_common::config;

    use super::*;

    /// `task/task_newtask/format`, copied from Linux 6.18 (x86-64).
    const TASK_NEWTASK: &str = "\
name: task_newtask\n\
ID: 205\n\
format:\n\
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\
\n\
\tfield:pid_t pid;\toffset:8;\tsize:4;\tsigned:1;\n\
\tfield:char comm[16];\toffset:12;\tsize:16;\tsigned:0;\n\
\tfield:u64 clone_flags;\toffset:32;\tsize:8;\tsigned:0;\n\
\tfield:short oom_score_adj;\toffset:40;\tsize:2;\tsigned:1;\n\
\n\
print fmt: \"pid=%d comm=%s clone_flags=%llx oom_score_adj=%hd\", REC->pid, REC->comm, REC->clone_flags, REC->oom_score_adj\n\
";

    /// `sched/sched_process_exit/format`, copied from Linux 6.18 (x86-64).
    const SCHED_PROCESS_EXIT: &str = "\
name: sched_process_exit\n\
ID: 369\n\
format:\n\
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\
\n\
\tfield:char comm[16];\toffset:8;\tsize:16;\tsigned:0;\n\
\tfield:pid_t pid;\toffset:24;\tsize:4;\tsigned:1;\n\
\tfield:int prio;\toffset:28;\tsize:4;\tsigned:1;\n\
\tfield:bool group_dead;\toffset:32;\tsize:1;\tsigned:0;\n\
\n\
print fmt: \"comm=%s pid=%d prio=%d group_dead=%s\", REC->comm, REC->pid, REC->prio, REC->group_dead ? \"true\" : \"false\"\n\
";

    /// `syscalls/sys_enter_mmap/format`, copied from Linux 6.18 (x86-64).
    const SYS_ENTER_MMAP: &str = "\
name: sys_enter_mmap\n\
ID: 174\n\
format:\n\
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\
\n\
\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n\
\tfield:unsigned long addr;\toffset:16;\tsize:8;\tsigned:0;\n\
\tfield:unsigned long len;\toffset:24;\tsize:8;\tsigned:0;\n\
\tfield:unsigned long prot;\toffset:32;\tsize:8;\tsigned:0;\n\
\tfield:unsigned long flags;\toffset:40;\tsize:8;\tsigned:0;\n\
\tfield:unsigned long fd;\toffset:48;\tsize:8;\tsigned:0;\n\
\tfield:unsigned long off;\toffset:56;\tsize:8;\tsigned:0;\n\
\n\
print fmt: \"addr: 0x%08lx, len: 0x%08lx, prot: 0x%08lx, flags: 0x%08lx, fd: 0x%08lx, off: 0x%08lx\", ((unsigned long)(REC->addr)), ((unsigned long)(REC->len)), ((unsigned long)(REC->prot)), ((unsigned long)(REC->flags)), ((unsigned long)(REC->fd)), ((unsigned long)(REC->off))\n\
";

    /// `syscalls/sys_exit_mmap/format`, copied from Linux 6.18 (x86-64).
    const SYS_EXIT_MMAP: &str = "\
name: sys_exit_mmap\n\
ID: 173\n\
format:\n\
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\
\n\
\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n\
\tfield:long ret;\toffset:16;\tsize:8;\tsigned:1;\n\
\n\
print fmt: \"0x%lx\", REC->ret\n\
";
    const PID: FieldRead = FieldRead::global("pid", 4, config::GLOBAL_NEWTASK_PID_OFFSET);
    const CLONE_FLAGS: FieldRead =
        FieldRead::global("clone_flags", 8, config::GLOBAL_NEWTASK_CLONE_FLAGS_OFFSET);
    const GROUP_DEAD: FieldRead =
        FieldRead::global("group_dead", 1, config::GLOBAL_EXIT_GROUP_DEAD_OFFSET);

    #[test]
    fn parses_a_real_format() {
        let format = parse(TASK_NEWTASK).unwrap();
        let names: Vec<&str> = format.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "common_type",
                "common_flags",
                "common_preempt_count",
                "common_pid",
                "pid",
                "comm",
                "clone_flags",
                "oom_score_adj"
            ]
        );
        assert_eq!(
            format.field("comm"),
            Some(&Field {
                name: "comm".into(),
                decl: "char comm[16]".into(),
                offset: 12,
                size: 16,
                signed: false,
            })
        );
        assert_eq!(
            format.field("clone_flags"),
            Some(&Field {
                name: "clone_flags".into(),
                decl: "u64 clone_flags".into(),
                offset: 32,
                size: 8,
                signed: false,
            })
        );
        assert!(format.field("pid").is_some_and(|f| f.signed));
    }

    #[test]
    fn resolves_the_offsets_memwatch_reads_on_this_kernel() {
        let mut offsets = Offsets::default();
        offsets
            .resolve(&parse(TASK_NEWTASK).unwrap(), &[PID, CLONE_FLAGS])
            .unwrap();
        offsets
            .resolve(&parse(SCHED_PROCESS_EXIT).unwrap(), &[GROUP_DEAD])
            .unwrap();
        let got: Vec<(&str, u32)> = offsets.iter().map(|(n, o)| (n, *o)).collect();
        assert_eq!(
            got,
            [
                (config::GLOBAL_NEWTASK_PID_OFFSET, 8),
                (config::GLOBAL_NEWTASK_CLONE_FLAGS_OFFSET, 32),
                (config::GLOBAL_EXIT_GROUP_DEAD_OFFSET, 32),
            ]
        );
    }

    #[test]
    fn syscall_fields_are_where_the_fixed_reads_expect() {
        let enter = parse(SYS_ENTER_MMAP).unwrap();
        for (n, name) in ["addr", "len", "prot", "flags", "fd", "off"]
            .into_iter()
            .enumerate()
        {
            assert_eq!(
                FieldRead::syscall_arg(name, n as u32).check(&enter),
                Ok(16 + 8 * n as u32)
            );
        }
        assert_eq!(
            FieldRead::syscall_ret().check(&parse(SYS_EXIT_MMAP).unwrap()),
            Ok(16)
        );
    }

    #[test]
    fn a_missing_field_is_named() {
        // The same record from a kernel without `group_dead`.
        let older: String = SCHED_PROCESS_EXIT
            .lines()
            .filter(|l| !l.contains("group_dead;"))
            .map(|l| format!("{l}\n"))
            .collect();
        let mut offsets = Offsets::default();
        let err = offsets
            .resolve(&parse(&older).unwrap(), &[GROUP_DEAD])
            .unwrap_err();
        assert_eq!(
            err,
            FieldMismatch::Missing {
                field: "group_dead",
                size: 1
            }
        );
        assert_eq!(
            err.to_string(),
            "this kernel's record has no field `group_dead`, which memwatch reads (1 byte)"
        );
        assert_eq!(offsets, Offsets::default(), "nothing is kept on failure");
    }

    #[test]
    fn a_wrong_size_is_refused_with_both_sizes() {
        // A 32-bit kernel's `unsigned long clone_flags`.
        let narrow = TASK_NEWTASK.replace(
            "field:u64 clone_flags;\toffset:32;\tsize:8;",
            "field:unsigned long clone_flags;\toffset:32;\tsize:4;",
        );
        let err = CLONE_FLAGS.check(&parse(&narrow).unwrap()).unwrap_err();
        assert_eq!(
            err,
            FieldMismatch::Size {
                field: "clone_flags",
                decl: "unsigned long clone_flags".into(),
                expected: 8,
                found: 4,
            }
        );
        assert_eq!(
            err.to_string(),
            "field `clone_flags` is 4 bytes wide on this kernel (`unsigned long clone_flags`); \
             memwatch reads 8 bytes"
        );
    }

    #[test]
    fn a_moved_field_follows_for_globals_and_is_refused_for_fixed_reads() {
        // A global read takes the offset the format gives...
        let moved =
            SCHED_PROCESS_EXIT.replace("group_dead;\toffset:32;", "group_dead;\toffset:36;");
        assert_eq!(GROUP_DEAD.check(&parse(&moved).unwrap()), Ok(36));
        // ...a fixed read cannot move, so the kernel side is refused instead.
        let moved = SYS_ENTER_MMAP.replace("len;\toffset:24;", "len;\toffset:20;");
        let err = FieldRead::syscall_arg("len", 1)
            .check(&parse(&moved).unwrap())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "field `len` is at byte 20 on this kernel (`unsigned long len`); memwatch reads its 8 \
             bytes at byte 24"
        );
    }

    #[test]
    fn a_field_out_of_reach_is_refused() {
        let far = SCHED_PROCESS_EXIT.replace("group_dead;\toffset:32;", "group_dead;\toffset:512;");
        assert_eq!(
            GROUP_DEAD.check(&parse(&far).unwrap()),
            Err(FieldMismatch::OutOfReach {
                field: "group_dead",
                decl: "bool group_dead".into(),
                end: 513,
                reach: FIELD_REACH,
            })
        );
    }

    #[test]
    fn malformed_formats_are_errors() {
        assert_eq!(parse(""), Err(ParseError::NoFields));
        assert_eq!(
            parse("name: x\nID: 1\nformat:\n"),
            Err(ParseError::NoFields)
        );
        assert_eq!(
            parse("format:\n\tfield:int x;\toffset:eight;\tsize:4;\tsigned:1;\n"),
            Err(ParseError::Line {
                line: 2,
                text: "field:int x;\toffset:eight;\tsize:4;\tsigned:1;".into(),
                reason: "not a number",
            })
        );
        assert!(matches!(
            parse("\tfield:int x;\tsize:4;\tsigned:1;\n"),
            Err(ParseError::Line {
                reason: "no `offset:`",
                ..
            })
        ));
        assert!(matches!(
            parse("\tfield:;\toffset:0;\tsize:4;\n"),
            Err(ParseError::Line {
                reason: "no field name",
                ..
            })
        ));
    }

    #[test]
    fn field_names_of_every_declaration_shape() {
        assert_eq!(field_name("unsigned long clone_flags"), Some("clone_flags"));
        assert_eq!(field_name("char comm[16]"), Some("comm"));
        assert_eq!(field_name("void * sk"), Some("sk"));
        assert_eq!(field_name("void *sk"), Some("sk"));
        assert_eq!(field_name("__data_loc char[] name"), Some("name"));
        assert_eq!(field_name(""), None);
        assert_eq!(field_name("int 9lives"), None);
    }
}
