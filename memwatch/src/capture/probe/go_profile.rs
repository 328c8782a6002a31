//! Go's own sampled heap: the allocations the Go runtime samples for its memory profile, and
//! what each one stands for.
//!
//! The runtime samples about one allocation in `runtime.MemProfileRate` bytes (512 KiB by
//! default), each at `runtime.mProf_Malloc(p, size)` on the allocating goroutine's thread, and
//! frees a sampled object's record at `runtime.freeSpecial(s, p, size)` when its sweeper frees
//! the object. Both are probed (on the emulated branch of their stack-bound check, through
//! `super::gc`): far fewer hits than the span hooks, and they see small objects that share a
//! span, which the span hooks can only charge to whoever took the span.
//!
//! A binary that links no memory profiler (no `runtime/pprof`, no `net/http/pprof`) has the
//! linker's `runtime.disableMemoryProfiling` set, and its runtime sets `MemProfileRate` to 0
//! at start: nothing is sampled, and the span hooks stay its only heap signal. memwatch reads
//! the rate from the process's memory, and never writes it: changing it in a running process
//! is the process's own business.

use std::{os::unix::fs::FileExt as _, path::Path};

/// The function the runtime calls with each sampled allocation: `(p, size)` in RAX, RBX from
/// Go 1.17 (its register ABI) to 1.22; `(mp, p, size)` from 1.23, which memwatch does not read
/// yet ([`reads`]).
pub const MPROF_MALLOC: &str = "runtime.mProf_Malloc";
/// The function the sweeper calls for each special record of an object it frees: `(s, p,
/// size)` in RAX, RBX, RCX.
pub const FREE_SPECIAL: &str = "runtime.freeSpecial";
/// The sampling rate, in bytes: an `int` the runtime sets as it starts (so in `.noptrbss`, with
/// nothing of it in the file).
pub const RATE: &str = "runtime.MemProfileRate";

/// Where `runtime.MemProfileRate` is in the Go executable at `path`: its link-time address,
/// and whether the executable is position-independent (then loaded at a bias).
pub fn rate_symbol(path: &Path) -> Option<(u64, bool)> {
    use object::{Object as _, ObjectSymbol as _, read::ReadCache};
    let file = std::fs::File::open(path).ok()?;
    let cache = ReadCache::new(file);
    let elf = object::File::parse(&cache).ok()?;
    let pie = elf.kind() == object::ObjectKind::Dynamic;
    elf.symbols()
        .find(|s| s.name() == Ok(RATE))
        .map(|s| (s.address(), pie))
}

/// The Go version that built the executable at `path` (`(1, 19)` for go1.19.8), from the
/// version string Go 1.18 and later keep inline in `.go.buildinfo`: a 14-byte magic, the
/// pointer size, a flags byte (2: strings inline), then at offset 32 the version as a
/// varint-prefixed string. `None` for an older Go, or a binary without it.
pub fn version(path: &Path) -> Option<(u32, u32)> {
    use object::{Object as _, ObjectSection as _, read::ReadCache};
    let file = std::fs::File::open(path).ok()?;
    let cache = ReadCache::new(file);
    let elf = object::File::parse(&cache).ok()?;
    let data = elf.section_by_name(".go.buildinfo")?.data().ok()?;
    parse_version(data)
}

fn parse_version(data: &[u8]) -> Option<(u32, u32)> {
    const MAGIC: &[u8] = b"\xff Go buildinf:";
    if !data.starts_with(MAGIC) || data.get(15)? & 2 == 0 {
        return None;
    }
    let len = usize::from(*data.get(32)?);
    // A version string is short: its length is a one-byte varint.
    if len >= 0x80 {
        return None;
    }
    let text = std::str::from_utf8(data.get(33..33 + len)?).ok()?;
    let mut parts = text.strip_prefix("go")?.split(['.', 'r', 'b', '-', ' ']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Whether memwatch reads `runtime.mProf_Malloc`'s arguments in a Go of `version`: the
/// register ABI with `(p, size)`, Go 1.18 (the first with its version inline) to 1.22.
pub fn reads(version: Option<(u32, u32)>) -> bool {
    version.is_some_and(|v| ((1, 18)..=(1, 22)).contains(&v))
}

/// The address in a process of the link-time address `addr` of its executable `path`, from its
/// `/proc/PID/maps` text: `addr` itself unless the executable is position-independent (`pie`),
/// then moved by where its first mapping (file offset 0) was loaded, as Go links one.
fn loaded_at(maps: &str, path: &Path, addr: u64, pie: bool) -> Option<u64> {
    if !pie {
        return Some(addr);
    }
    let path = path.to_str()?;
    maps.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let range = fields.next()?;
        let _perms = fields.next()?;
        let offset = u64::from_str_radix(fields.next()?, 16).ok()?;
        let _dev = fields.next()?;
        let _inode = fields.next()?;
        if fields.next()? != path || offset != 0 {
            return None;
        }
        let start = u64::from_str_radix(range.split_once('-')?.0, 16).ok()?;
        start.checked_add(addr)
    })
}

/// `pid`'s sampling rate now, read from its memory: `symbol` is [`rate_symbol`]'s answer for
/// its executable, `exe` the executable's own path (as its mappings name it). `None` when it
/// cannot be read.
pub fn rate(pid: u32, maps: &str, exe: &Path, (symbol, pie): (u64, bool)) -> Option<u64> {
    let addr = loaded_at(maps, exe, symbol, pie)?;
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).ok()?;
    let mut word = [0u8; 8];
    mem.read_exact_at(&mut word, addr).ok()?;
    // An `int`: a negative rate is no rate.
    u64::try_from(i64::from_ne_bytes(word)).ok()
}

/// The bytes a sampled allocation of `size` bytes stands for, at `rate`: the runtime samples an
/// allocation of `size` with probability `1 - exp(-size / rate)` (the bytes between samples
/// are drawn from an exponential distribution of mean `rate`), so each sample is weighed by
/// its inverse, as `go tool pprof` scales a profile. A rate of 1 samples everything.
pub fn weight(size: u64, rate: u64) -> f64 {
    if rate <= 1 || size == 0 {
        return size as f64;
    }
    let p = -(-(size as f64) / rate as f64).exp_m1();
    size as f64 / p
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
00400000-0062a000 r-xp 00000000 fd:01 1311 /srv/app/server
0062a000-00873000 r--p 0022a000 fd:01 1311 /srv/app/server
00873000-008b0000 rw-p 00473000 fd:01 1311 /srv/app/server
008b0000-008e0000 rw-p 00000000 00:00 0
c000000000-c000400000 rw-p 00000000 00:00 0
";

    #[test]
    fn a_symbol_is_where_it_was_linked_unless_the_binary_is_position_independent() {
        let exe = Path::new("/srv/app/server");
        assert_eq!(loaded_at(MAPS, exe, 0x8c6df0, false), Some(0x8c6df0));
        // A PIE Go binary is linked at 0 and loaded where its first mapping begins.
        assert_eq!(loaded_at(MAPS, exe, 0x4c6df0, true), Some(0x8c6df0));
        assert_eq!(
            loaded_at(MAPS, Path::new("/srv/app/other"), 0x10, true),
            None
        );
    }

    #[test]
    fn the_go_version_is_read_from_its_build_info() {
        let mut data = b"\xff Go buildinf:\x08\x02".to_vec();
        data.resize(32, 0);
        data.push(8);
        data.extend_from_slice(b"go1.19.8");
        assert_eq!(parse_version(&data), Some((1, 19)));
        let release = |v: &str| {
            let mut d = data[..32].to_vec();
            d.push(v.len() as u8);
            d.extend_from_slice(v.as_bytes());
            parse_version(&d)
        };
        assert_eq!(release("go1.23rc1"), Some((1, 23)));
        assert_eq!(release("go1.22 X:boringcrypto"), Some((1, 22)));
        assert_eq!(release("devel +abc"), None);
        // Before Go 1.18 the strings are not inline.
        data[15] = 0;
        assert_eq!(parse_version(&data), None);
        assert!(reads(Some((1, 19))) && reads(Some((1, 22))));
        assert!(!reads(Some((1, 23))) && !reads(Some((1, 17))) && !reads(None));
    }

    /// The runtime tests' Go fixture, when it has been built with `-tags pprof`: its rate is
    /// found in `.noptrbss`, and its version read.
    #[test]
    fn the_pprof_fixture_has_its_rate_symbol() {
        let fixture =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/runtimes/go-pprof-fixture");
        if !fixture.is_file() {
            return;
        }
        let (addr, pie) = rate_symbol(&fixture).expect("runtime.MemProfileRate");
        assert!(addr > 0 && !pie, "{addr:#x}");
        assert!(reads(version(&fixture)), "{:?}", version(&fixture));
    }

    #[test]
    fn a_sample_stands_for_the_bytes_the_rate_says() {
        let rate = 512 * 1024;
        // 256 KiB is sampled with probability 1 - e^-0.5, about 0.393.
        let w = weight(256 * 1024, rate);
        assert!((w - 666_237.4).abs() < 0.1, "{w}");
        // Far above the rate, nearly every one is sampled; far below, each stands for the rate.
        assert!((weight(64 << 20, rate) - f64::from(64 << 20)).abs() < 1.0);
        assert!((weight(16, rate) - (rate as f64 + 8.0)).abs() < 1.0);
        // Every allocation sampled, or an unknown rate: a sample is itself.
        assert_eq!(weight(4096, 1), 4096.0);
        assert_eq!(weight(4096, 0), 4096.0);
    }
}
