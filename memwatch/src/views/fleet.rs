//! What a fleet takes from a recording while it runs (`docs/fleet.md`): `/metrics` served, and
//! pprof profiles written every period. The options, as the command line gives them, and the
//! checks of what the user can get wrong in them before anything is loaded.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{
    error::UsageError,
    private::Secret,
    views::{metrics::DEFAULT_MAX_ROUTES, server},
};

/// The fleet's options: where `/metrics` is served and who may read it, and where profiles go.
#[derive(Debug, Clone)]
pub struct Fleet {
    /// Serve `/metrics` here (`--metrics`).
    pub metrics: Option<SocketAddr>,
    pub metrics_token: Option<Secret>,
    /// Names besides loopback that a request's `Host` may give (`--allow-host`).
    pub allow_hosts: Vec<String>,
    /// Routes with series of their own on `/metrics` (the page's too).
    pub max_routes: usize,
    /// Write a profile into this directory every so often (`--pprof-dir`, `--pprof-every`).
    pub pprof: Option<(PathBuf, Duration)>,
}

impl Default for Fleet {
    fn default() -> Self {
        Self {
            metrics: None,
            metrics_token: None,
            allow_hosts: Vec::new(),
            max_routes: DEFAULT_MAX_ROUTES,
            pprof: None,
        }
    }
}

impl Fleet {
    /// Everything the user can get wrong here, before anything is loaded.
    pub fn check(&self) -> Result<(), UsageError> {
        if let Some(addr) = self.metrics {
            server::check_exposure(
                "--metrics",
                addr,
                "--metrics-token",
                self.metrics_token.as_deref(),
            )?;
        }
        if let Some((dir, every)) = &self.pprof {
            if *every < Duration::from_secs(1) {
                return Err(UsageError(format!(
                    "--pprof-every {}: profiles cover whole seconds; use 1s or more",
                    humantime::format_duration(*every)
                )));
            }
            check_dir(dir)?;
        }
        Ok(())
    }
}

/// `dir` exists, is a directory, and a file can be created in it.
fn check_dir(dir: &Path) -> Result<(), UsageError> {
    if !dir.is_dir() {
        return Err(UsageError(format!(
            "--pprof-dir {}: no such directory; create it first",
            dir.display()
        )));
    }
    let probe = dir.join(format!(".memwatch-write-check-{}", std::process::id()));
    match std::fs::write(&probe, b"") {
        Ok(()) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(UsageError(format!(
            "--pprof-dir {}: cannot write there ({e}); pick a writable directory",
            dir.display()
        ))),
    }
}
