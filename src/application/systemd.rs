//! systemd's `Type=notify` protocol: READY, STATUS, STOPPING and WATCHDOG messages.
//!
//! ```text
//! every shard listens ──► READY=1, STATUS=N connections open on M shards
//! every few seconds   ──► STATUS=…, and WATCHDOG=1 if every shard's loop advanced
//!                          since the last one (a stalled shard withholds it, so
//!                          systemd's WatchdogSec= restarts the service)
//! graceful stop       ──► STOPPING=1
//! ```
//!
//! Messages are datagrams to the socket named by `NOTIFY_SOCKET` (a path, or an
//! abstract name written `@name`); without that variable nothing is sent. A
//! shard's loop is seen advancing through a heartbeat: a timer on each shard that
//! bumps its counter, one atomic store per period, nothing per connection.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::reactor::Reactor;
use crate::runtime::{ServerBuilder, ShardStats, StopHandle};

/// A connection to systemd's notification socket.
pub struct SystemdNotify {
    socket: UnixDatagram,
    target: String,
}

impl SystemdNotify {
    /// Connects to `$NOTIFY_SOCKET`; `None` when the variable is not set (not run
    /// by systemd with `Type=notify`).
    ///
    /// # Errors
    /// The OS error if the socket cannot be reached.
    pub fn from_env() -> io::Result<Option<SystemdNotify>> {
        let Some(target) = std::env::var("NOTIFY_SOCKET")
            .ok()
            .filter(|s| !s.is_empty())
        else {
            return Ok(None);
        };
        let socket = UnixDatagram::unbound()?;
        let n = SystemdNotify { socket, target };
        Ok(Some(n))
    }

    /// Sends one message (`READY=1`, `STATUS=…`); errors are returned, not logged.
    ///
    /// # Errors
    /// The OS error of the send.
    pub fn notify(&self, state: &str) -> io::Result<()> {
        if let Some(name) = self.target.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            self.socket.send_to_addr(state.as_bytes(), &addr)?;
        } else {
            self.socket.send_to(state.as_bytes(), &self.target)?;
        }
        Ok(())
    }

    /// The watchdog period systemd asked for (`WATCHDOG_USEC`, for this process
    /// when `WATCHDOG_PID` is set), if any.
    pub fn watchdog_period() -> Option<Duration> {
        if let Ok(pid) = std::env::var("WATCHDOG_PID") {
            if pid.trim() != std::process::id().to_string() {
                return None;
            }
        }
        let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
        (usec > 0).then(|| Duration::from_micros(usec))
    }
}

/// One counter per shard, bumped by a timer on that shard.
#[derive(Clone)]
pub struct Heartbeats {
    beats: Arc<Vec<AtomicU64>>,
    period: Duration,
}

impl Heartbeats {
    /// Counters for `shards` shards, bumped every `period`.
    pub fn new(shards: usize, period: Duration) -> Self {
        Heartbeats {
            beats: Arc::new((0..shards).map(|_| AtomicU64::new(0)).collect()),
            period,
        }
    }

    /// Adds the per-shard timer to the builder.
    pub fn install(&self, builder: ServerBuilder) -> ServerBuilder {
        let hb = self.clone();
        builder.on_shard(move |reactor, stop| hb.beat(reactor.clone(), stop.clone()))
    }

    fn beat(&self, reactor: Reactor, stop: StopHandle) {
        if stop.is_stopping() {
            return;
        }
        if let Some(b) = self.beats.get(reactor.shard()) {
            b.store(b.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        }
        let hb = self.clone();
        let r = reactor.clone();
        reactor.call_later(self.period, move || hb.beat(r, stop));
    }

    /// The shards whose counter has not moved since `last` (which is updated).
    pub fn stalled(&self, last: &mut Vec<u64>) -> Vec<usize> {
        last.resize(self.beats.len(), u64::MAX);
        let mut stalled = Vec::new();
        for (i, b) in self.beats.iter().enumerate() {
            let now = b.load(Ordering::Relaxed);
            if now == last[i] {
                stalled.push(i);
            }
            last[i] = now;
        }
        stalled
    }
}

/// The `STATUS=` line: the connections open now, over every shard.
pub fn status_line(stats: &[Arc<ShardStats>]) -> String {
    let open: u64 = stats.iter().map(|s| s.open()).sum();
    let accepted: u64 = stats.iter().map(|s| s.accepted()).sum();
    format!(
        "STATUS={open} connections open, {accepted} accepted, on {} shards",
        stats.len()
    )
}
