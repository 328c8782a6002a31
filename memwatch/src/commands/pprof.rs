//! `memwatch pprof FILE -o out.pb.gz [--force] [--route R] [--from T] [--to T]`.

use crate::{
    cli::{PprofArgs, TimeArg},
    error::{UsageError, exit},
    model::meta,
    recording::{Recording, query::Range},
    units::bytes,
    views::pprof::{self, Selection},
};

/// Writes the profile and says what it holds; exit 0, or 2 (through the error) on bad input.
pub fn run(args: &PprofArgs) -> anyhow::Result<i32> {
    super::check_overwrite(&args.output, args.force)?;
    let rec = Recording::open(&args.file)?;
    let selection = Selection {
        range: range(&rec, args.from, args.to)?,
        route: args.route.clone(),
    };
    let profile = pprof::write(&rec, &selection, &args.output)?;
    let retained: i64 = profile.sample.iter().map(|s| s.value[0]).sum();
    say!(
        "memwatch pprof: wrote {}: {} samples, {} retained; read it with `go tool pprof -top {}`",
        args.output.display(),
        profile.sample.len(),
        bytes(retained),
        args.output.display()
    );
    Ok(exit::OK)
}

/// `--from` and `--to` as wall-clock nanoseconds.
fn range(rec: &Recording, from: Option<TimeArg>, to: Option<TimeArg>) -> anyhow::Result<Range> {
    let started = rec.meta_i64(meta::STARTED_NS)?;
    let resolve = |t: Option<TimeArg>, flag: &str| -> anyhow::Result<Option<i64>> {
        let Some(t) = t else { return Ok(None) };
        t.resolve(started).map(Some).ok_or_else(|| {
            UsageError(format!(
                "{flag} is given from the recording's start, and {} does not say when it \
                 started.\n  Give {flag} as an RFC 3339 time (2026-05-19T08:00:00Z)",
                rec.path().display()
            ))
            .into()
        })
    };
    let range = Range {
        from_ns: resolve(from, "--from")?,
        to_ns: resolve(to, "--to")?,
    };
    if let (Some(f), Some(t)) = (range.from_ns, range.to_ns)
        && f > t
    {
        let time = |ns: i64| chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339();
        return Err(UsageError(format!(
            "--from ({}) is after --to ({}); give --from the earlier time",
            time(f),
            time(t)
        ))
        .into());
    }
    // The routes' figures end when memwatch stopped the command it started: its exit freed
    // everything, which is no call site's release.
    Ok(rec.figures_range(range)?)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{
        commands::exit_code,
        error::message,
        recording::{
            Writer,
            query::stacks::fixture::{self, B, S},
        },
        views::pprof::PprofError,
    };

    /// Relative times count from the recording's start; one that does not say when it started
    /// takes RFC 3339 times only; --from after --to is refused. Each is bad input (exit 2).
    #[test]
    fn times_resolve_against_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("started.db");
        Writer::create(&path, &[(meta::STARTED_NS, (B * S).to_string())])
            .unwrap()
            .finish()
            .unwrap();
        let rec = Recording::open(&path).unwrap();
        let secs = |s| Some(TimeArg::FromStart(Duration::from_secs(s)));
        let r = range(&rec, secs(1), secs(2)).unwrap();
        assert_eq!((r.from_ns, r.to_ns), (Some((B + 1) * S), Some((B + 2) * S)));
        let r = range(&rec, None, Some(TimeArg::At(7))).unwrap();
        assert_eq!((r.from_ns, r.to_ns), (None, Some(7)));
        let err = range(&rec, secs(2), secs(1)).unwrap_err();
        assert_eq!(
            message(&err),
            "--from (2027-01-15T08:00:02+00:00) is after --to (2027-01-15T08:00:01+00:00); \
             give --from the earlier time"
        );
        assert_eq!(exit_code(&err), exit::INPUT);
        let unstarted = dir.path().join("fixture.db");
        fixture::write(&unstarted);
        let rec = Recording::open(&unstarted).unwrap();
        let err = range(&rec, None, secs(1)).unwrap_err();
        assert_eq!(
            message(&err),
            format!(
                "--to is given from the recording's start, and {} does not say when it \
                 started.\n  Give --to as an RFC 3339 time (2026-05-19T08:00:00Z)",
                unstarted.display()
            )
        );
        assert_eq!(exit_code(&err), exit::INPUT);
    }

    /// The command writes the file and exits 0; a recording without stacks exits 2.
    #[test]
    fn writes_the_profile_or_says_to_record_stacks() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("r.db");
        fixture::write(&file);
        let output = dir.path().join("out.pb.gz");
        let args = |file: &std::path::Path| PprofArgs {
            file: file.to_owned(),
            output: output.clone(),
            force: true,
            route: Some("/a".into()),
            from: Some(TimeArg::At(B * S)),
            to: None,
        };
        assert_eq!(run(&args(&file)).unwrap(), exit::OK);
        let gz = std::fs::read(&output).unwrap();
        assert_eq!(&gz[..2], &[0x1f, 0x8b], "gzip");
        let bare = dir.path().join("bare.db");
        Writer::create(&bare, &[]).unwrap().finish().unwrap();
        let err = run(&args(&bare)).unwrap_err();
        assert!(
            matches!(
                err.downcast_ref::<PprofError>(),
                Some(PprofError::NoStacks { .. })
            ),
            "{err}"
        );
        assert_eq!(exit_code(&err), exit::INPUT);
        // The profile written above is kept without --force.
        let err = run(&PprofArgs {
            force: false,
            ..args(&file)
        })
        .unwrap_err();
        assert_eq!(
            message(&err),
            format!(
                "{} already exists; pass --force to overwrite it, or choose another -o path",
                output.display()
            )
        );
        assert_eq!(exit_code(&err), exit::INPUT);
    }
}
