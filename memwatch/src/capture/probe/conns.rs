//! The kernel side's connections map from user space: connections open before memwatch
//! attached, connections of processes that are gone, and responses whose start the kernel side
//! still holds.

use aya::maps::{HashMap, MapData};
use memwatch_common::{
    config,
    net::{ConnState, conn_key},
};

use super::{Probe, error::LoadError, loader::map};
use crate::error::SetupError;

/// A connection as both sides name it: its process, its fd, and the generation that tells it
/// from an earlier connection on the same fd (`ConnState::generation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId {
    pub pid: u32,
    pub fd: u32,
    pub generation: u64,
}

/// A response whose start the kernel side folded into its connection's next event
/// (`ConnState::response_ns`) and still holds: read from the map when recording stops or the
/// process goes, since no next event will carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FoldedResponse {
    pub conn: ConnId,
    /// The response's first write (`bpf_ktime_get_ns`, CLOCK_MONOTONIC).
    pub first_write_ns: u64,
    /// Its status code, as the kernel side read it from the status line.
    pub status: u16,
}

impl Probe {
    /// Registers connections that were open before memwatch attached, so their traffic is seen
    /// (including a read their thread was already blocked in).
    pub fn add_connections(
        &mut self,
        pid: u32,
        fds: &[u32],
        generation: u64,
    ) -> Result<(), SetupError> {
        let name = config::MAP_CONNS;
        let mut conns: HashMap<&mut MapData, u64, ConnState> =
            HashMap::try_from(map(&mut self.ebpf, name)?)
                .map_err(|source| LoadError::MapType { map: name, source })?;
        for &fd in fds {
            let state = ConnState {
                generation,
                ..ConnState::default()
            };
            conns
                .insert(conn_key(pid, fd), state, 0)
                .map_err(|source| LoadError::AddConnection { pid, fd, source })?;
        }
        Ok(())
    }

    /// The responses whose start the kernel side still holds ([`FoldedResponse`]) on `conns`,
    /// oldest first: one lookup each, so it costs nothing when no request awaits a response.
    pub fn folded_responses(&self, conns: &[ConnId]) -> Vec<FoldedResponse> {
        if conns.is_empty() {
            return Vec::new();
        }
        let Some(map) = self.ebpf.map(config::MAP_CONNS) else {
            return Vec::new();
        };
        let Ok(map) = HashMap::<&MapData, u64, ConnState>::try_from(map) else {
            return Vec::new();
        };
        let mut folded: Vec<FoldedResponse> = conns
            .iter()
            .filter_map(|&conn| {
                let state = map.get(&conn_key(conn.pid, conn.fd), 0).ok()?;
                (state.generation == conn.generation && state.response_ns != 0).then(|| {
                    FoldedResponse {
                        conn,
                        first_write_ns: state.response_ns,
                        status: u16::try_from(state.response_status).unwrap_or(0),
                    }
                })
            })
            .collect();
        folded.sort_unstable_by_key(|f| f.first_write_ns);
        folded
    }

    /// Removes the connections of processes that are gone (`pids`): an exit closes a process's
    /// sockets without the close syscall the kernel side watches. Returns how many went.
    pub fn forget_conns(&mut self, pids: &std::collections::HashSet<u32>) -> u64 {
        if pids.is_empty() {
            return 0;
        }
        let Some(map) = self.ebpf.map_mut(config::MAP_CONNS) else {
            return 0;
        };
        let Ok(mut conns) = HashMap::<&mut MapData, u64, ConnState>::try_from(map) else {
            return 0;
        };
        let gone: Vec<u64> = conns
            .keys()
            .filter_map(Result::ok)
            .filter(|key| pids.contains(&((key >> 32) as u32)))
            .collect();
        gone.iter().filter(|key| conns.remove(key).is_ok()).count() as u64
    }
}
