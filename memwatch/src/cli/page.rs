//! The page's arguments (`--listen`, `--token`, `--allow-host`), shared by `serve` and
//! `view`, and `view`'s own.

use std::{net::SocketAddr, path::PathBuf};

use clap::Args;

use super::parse::{parse_allow_host, parse_listen, parse_secret};
use crate::{private::Secret, views::server::ServeOptions};

/// `--listen` and `--token`, shared by `serve` and `view`.
#[derive(Debug, Clone, Args)]
pub struct PageArgs {
    /// Address for the page: IP:PORT or HOST:PORT (port 0: a free one).
    ///
    /// A host name is resolved, its loopback address preferred (localhost:0 is 127.0.0.1:0). An
    /// address other than loopback is reachable from other hosts, and refused without --token.
    #[arg(long, default_value = "127.0.0.1:7070", value_name = "ADDR", value_parser = parse_listen)]
    pub listen: SocketAddr,
    /// Require this token on every request to the page.
    ///
    /// As `Authorization: Bearer TOKEN` or `?token=`; the printed URL carries it.
    #[arg(long, value_name = "TOKEN", env = "MEMWATCH_TOKEN", hide_env_values = true,
          value_parser = parse_secret)]
    pub token: Option<Secret>,
}

impl PageArgs {
    /// The page's options; `hosts` are the `--allow-host` names (given once, for the page and
    /// `/metrics` alike).
    pub fn options(&self, hosts: &HostArgs) -> ServeOptions {
        let Self { listen, token } = self.clone();
        ServeOptions {
            listen,
            token,
            allow_hosts: hosts.allow_hosts.clone(),
        }
    }
}

/// `--allow-host`, shared by the page and `/metrics`.
#[derive(Debug, Clone, Args)]
pub struct HostArgs {
    /// Also answer a Host header of NAME or NAME:PORT (repeatable).
    ///
    /// As a reverse proxy or another name for this machine sends. 127.0.0.1, localhost, [::1] and
    /// the listen address are always answered; any other name gets 421.
    #[arg(long = "allow-host", value_name = "NAME", value_parser = parse_allow_host)]
    pub allow_hosts: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ViewArgs {
    /// A recording written by `memwatch record` or `memwatch serve`.
    #[arg(required_unless_present = "access_logs", value_name = "RECORDING")]
    pub file: Option<PathBuf>,
    /// With no recording: show this access log's request volume and URLs.
    ///
    /// There is no memory series then, only the log's requests.
    #[arg(long = "access-log", value_name = "PATH", conflicts_with = "file")]
    pub access_logs: Vec<PathBuf>,
    /// Access-log format (as for `record`).
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
    #[command(flatten, next_help_heading = "Page")]
    pub serve: PageArgs,
    #[command(flatten)]
    pub hosts: HostArgs,
}
