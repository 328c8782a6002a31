//! `memwatch profile FILE [-o profile.json [--force]]` and `memwatch diff BASE HEAD`.

use crate::{
    cli::{DiffArgs, DiffFormat, ProfileArgs},
    error::exit,
    recording::Recording,
    views::profile::{Profile, diff},
};

pub fn profile(args: &ProfileArgs) -> anyhow::Result<i32> {
    if let Some(path) = &args.output {
        super::check_overwrite(path, args.force)?;
    }
    let profile = Profile::from_recording(&Recording::open(&args.file)?)?;
    let json = serde_json::to_string_pretty(&profile)?;
    match &args.output {
        Some(path) => crate::private::write(path, (json + "\n").as_bytes()).map_err(|e| {
            anyhow::anyhow!(crate::error::UsageError(format!(
                "cannot write the profile {}: {e}",
                path.display()
            )))
        })?,
        None => super::print_out(&format!("{json}\n"))?,
    }
    Ok(exit::OK)
}

/// Exit 0 within thresholds, 1 on a regression, 2 (through the error) on bad input.
pub fn diff_command(args: &DiffArgs) -> anyhow::Result<i32> {
    let thresholds = args.thresholds.thresholds();
    let base = Profile::load(&args.base)?;
    base.check_metric(&args.base, thresholds.metric)?;
    let head = Profile::load(&args.head)?;
    head.check_metric(&args.head, thresholds.metric)?;
    let d = diff(&base, &head, thresholds);
    match args.format {
        DiffFormat::Text => super::print_out(&d.to_text())?,
        DiffFormat::Markdown => super::print_out(&d.to_markdown())?,
        DiffFormat::Json => {
            super::print_out(&format!("{}\n", serde_json::to_string_pretty(&d)?))?;
        }
    }
    Ok(if d.regressions > 0 {
        exit::REGRESSION
    } else {
        exit::OK
    })
}
