//! `memwatch report FILE [--format text|json]`.

use crate::{
    cli::{Format, ReportArgs},
    recording::Recording,
    views::report::Report,
};

pub fn run(args: &ReportArgs) -> anyhow::Result<()> {
    let rec = Recording::open(&args.file)?;
    let report = Report::build(&rec)?;
    match args.format {
        Format::Text => print!("{}", report.to_text()),
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(())
}
