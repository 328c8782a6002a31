//! Ctrl-C and SIGTERM, the two ways a user stops memwatch: listened for before anything says
//! that Ctrl-C stops it, and a second one while it stops ends it at once.

use tokio::signal::unix::{SignalKind, signal};

/// Ctrl-C and SIGTERM, listened for from the moment this is made.
///
/// Make it before telling the user that Ctrl-C stops something: a signal that arrives between
/// the message and the first [`StopSignals::recv`] is kept, not lost. (Tokio's streams see only
/// the signals delivered after they were created, and once memwatch has any handler, an
/// unwatched SIGINT does nothing at all.)
pub struct StopSignals {
    sigint: tokio::signal::unix::Signal,
    sigterm: tokio::signal::unix::Signal,
}

impl std::fmt::Debug for StopSignals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StopSignals(SIGINT, SIGTERM)")
    }
}

impl StopSignals {
    pub fn new() -> anyhow::Result<Self> {
        let listen = |kind: SignalKind, name: &str| {
            signal(kind).map_err(|e| {
                anyhow::anyhow!(
                    "cannot listen for {name}, which stops memwatch cleanly: {e}; nothing was \
                     started (report this with the kernel and libc in use)"
                )
            })
        };
        Ok(Self {
            sigint: listen(SignalKind::interrupt(), "SIGINT (Ctrl-C)")?,
            sigterm: listen(SignalKind::terminate(), "SIGTERM")?,
        })
    }

    /// Waits for Ctrl-C or SIGTERM, or returns at once if one came since the last call.
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.sigint.recv() => {}
            _ = self.sigterm.recv() => {}
        }
    }

    /// memwatch is stopping after a first Ctrl-C or SIGTERM: a second one ends it at once,
    /// with [`exit::FORCED`](crate::error::exit::FORCED), whatever it is still doing. The
    /// recording is readable up to its last commit, as after a kill.
    pub fn escalate(mut self) {
        tokio::spawn(async move {
            self.recv().await;
            say!(
                "memwatch: stopped at once (second Ctrl-C); the recording holds what was committed"
            );
            std::process::exit(crate::error::exit::FORCED);
        });
    }
}
