//! The page's and `/metrics`' listeners, bound before anything is loaded or recorded: an
//! address that cannot be had is a usage error (exit 2) that names it and, when it is in use,
//! who holds it.

use std::net::SocketAddr;

use crate::{capture::procfs, error::UsageError};

/// Binds `addr`, given with the option `flag` (`--listen`, `--metrics`).
pub(super) fn bind(addr: SocketAddr, flag: &str) -> Result<std::net::TcpListener, UsageError> {
    let bound = std::net::TcpListener::bind(addr).and_then(|l| {
        l.set_nonblocking(true)?;
        Ok(l)
    });
    bound.map_err(|e| {
        let why = if e.kind() == std::io::ErrorKind::AddrInUse {
            let holders = procfs::port_holders(addr.port());
            if holders.is_empty() {
                "the address is in use".to_owned()
            } else {
                let named: Vec<String> = holders
                    .iter()
                    .map(|(pid, comm)| format!("pid {pid} ({comm})"))
                    .collect();
                format!("the address is in use, by {}", named.join(", "))
            }
        } else {
            e.to_string()
        };
        UsageError(format!(
            "cannot listen on {addr} ({flag}): {why}; choose another address with {flag} (port \
             0 picks a free one)"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_address_names_who_holds_it() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = held.local_addr().unwrap();
        let err = bind(addr, "--listen").unwrap_err();
        assert_eq!(
            err.0,
            format!(
                "cannot listen on {addr} (--listen): the address is in use, by pid {} ({}); \
                 choose another address with --listen (port 0 picks a free one)",
                std::process::id(),
                procfs::info(std::process::id()).unwrap().comm
            )
        );
        assert!(bind("127.0.0.1:0".parse().unwrap(), "--listen").is_ok());
    }
}
