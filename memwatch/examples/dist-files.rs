//! Writes memwatch's man pages and shell completions, generated from its clap definition
//! (`memwatch::cli::Cli`), into a directory: `man/memwatch.1` and one page per subcommand
//! (`man/memwatch-record.1`, ...), and `completions/` for bash, zsh and fish. `cargo xtask dist`
//! runs it and packages what it writes.
//!
//! Why an example of the memwatch crate, and not xtask depending on memwatch or a hidden
//! subcommand: xtask must build when memwatch does not (`cargo xtask ebpf` is the fix memwatch's
//! build script asks for when the kernel side changed, and `cargo xtask setup` runs on machines
//! that have built nothing yet), so it must not depend on memwatch; a hidden subcommand would
//! ship the generators in every memwatch binary and change the CLI for everyone. An example
//! reuses the release build of the library, keeps clap_mangen and clap_complete out of memwatch's
//! own dependencies (they are dev-dependencies), and is never installed by `cargo install`.

use std::{
    fs,
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::CommandFactory as _;
use clap_complete::Shell;
use memwatch::cli::Cli;

fn main() -> ExitCode {
    let Some(out) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: dist-files OUT_DIR (writes OUT_DIR/man and OUT_DIR/completions)");
        return ExitCode::from(2);
    };
    match write(&out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn write(out: &Path) -> Result<(), String> {
    let man = out.join("man");
    let completions = out.join("completions");
    // Start empty: a page of a subcommand that no longer exists must not be packaged.
    for dir in [&man, &completions] {
        if dir.exists() {
            fs::remove_dir_all(dir).map_err(|e| format!("cannot empty {}: {e}", dir.display()))?;
        }
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }

    // `memwatch help SUBCOMMAND` gets no page of its own (each subcommand has one), but it is
    // completed like the others.
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    // The page's footer: the release and the date of its commit (reproducible, unlike today's
    // date), taken from the version the build script set: `0.1.0 (abc1234 2026-12-06)`.
    let date = env!("MEMWATCH_VERSION")
        .rsplit_once(' ')
        .map(|(_, date)| date.trim_end_matches(')'))
        .filter(|date| date.len() == 10)
        .unwrap_or_default();
    let source = format!("memwatch {}", env!("CARGO_PKG_VERSION"));
    pages(&cmd, &man, date, &source)?;

    let mut cmd = Cli::command();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd, "memwatch", &completions)
            .map_err(|e| format!("cannot write the {shell} completions: {e}"))?;
    }
    Ok(())
}

/// One page for `cmd` (named by its display name, `memwatch-record.1`), then one per subcommand.
fn pages(cmd: &clap::Command, dir: &Path, date: &str, source: &str) -> Result<(), String> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        pages(sub, dir, date, source)?;
    }
    let page = clap_mangen::Man::new(cmd.clone())
        .date(date)
        .source(source)
        .manual("memwatch manual");
    let path = dir.join(page.get_filename());
    let mut text = Vec::new();
    page.render(&mut text)
        .map_err(|e| format!("cannot render {}: {e}", path.display()))?;
    fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}
