//! `memwatch report FILE [--format text|json] [--stacks [--stacks-top N]]`.

use crate::{
    cli::{Format, ReportArgs},
    recording::Recording,
    views::report::Report,
};

pub fn run(args: &ReportArgs) -> anyhow::Result<()> {
    let rec = Recording::open(&args.file)?;
    let mut report = Report::build(&rec)?;
    if args.stacks {
        report = report.with_call_sites(&rec, usize::from(args.stacks_top))?;
    }
    match args.format {
        Format::Text => super::print_out(&report.to_text())?,
        Format::Json => {
            super::print_out(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
        }
    }
    Ok(())
}
