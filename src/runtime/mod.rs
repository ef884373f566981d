//! The engine: the only code that knows io_uring (and glommio, which places and
//! runs each shard's thread).
//!
//! ```text
//! ServerBuilder::start()                              builder.rs
//!   ├─ binds every listening socket up front (socket2: SO_REUSEPORT, backlog),
//!   │  one per shard per TCP endpoint, so a bind error is reported at once
//!   ├─ one thread per shard, pinned to its core; on it, shard.rs's loop:
//!   │    turn: completions from the ring (ring/) ─► accepts (accept.rs),
//!   │          receives and sends (connection.rs ◄─► the connection machine,
//!   │          crate::connection) ─► timers ─► tasks (tasks.rs) ─► mesh inbox
//!   │          (inbox.rs) ─► connections to service ─► datagram ports' sends
//!   │          (datagram.rs) ─► one io_uring_enter that
//!   │          submits the turn's SQEs and, when idle, sleeps until a completion,
//!   │          the doorbell (doorbell.rs) or the next timer
//!   └─ returns once every shard listens                handle.rs, stop.rs, stats.rs
//! ```
//!
//! Above this module nothing names io_uring or glommio: protocols see a
//! [`Transport`] and a [`Reactor`].
//!
//! [`Transport`]: crate::Transport
//! [`Reactor`]: crate::Reactor

mod accept;
mod builder;
mod config;
mod connection;
mod datagram;
pub(crate) mod dial;
mod doorbell;
mod handle;
pub(crate) mod inbox;
mod listener;
mod log_limit;
mod probe;
mod ring;
pub(crate) mod shard;
mod shutdown;
mod signal;
mod stash;
mod stats;
mod stop;
mod tasks;

use std::fmt;
use std::io;

use crate::endpoints::EndpointError;

pub use builder::{Server, ServerBuilder};
pub(crate) use builder::{ServiceInstaller, TypedService};
pub use config::{DEFAULT_DRAIN_TIMEOUT, DEFAULT_RECEIVE_BUFFERS, DEFAULT_SHARD_OUTPUT_BUDGET};
pub use handle::ServerHandle;
pub use probe::check_io_uring;
pub(crate) use shard::guarded;
pub use signal::{block_stop_signals, on_reload, on_reopen_log, on_stopping};
pub use stats::{ShardStats, ShardSummary, TURN_BUCKETS_NS};
pub use stop::StopHandle;

/// Why a server could not start or did not stop cleanly.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServerError {
    /// An endpoint string did not parse.
    Endpoint(EndpointError),
    /// A listening socket could not be set up.
    Bind {
        /// The endpoint.
        endpoint: String,
        /// The OS error.
        error: io::Error,
    },
    /// A shard's executor could not start (no io_uring, or too low a memlock limit).
    Runtime(String),
    /// The builder was given no endpoint.
    NoEndpoints,
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::Endpoint(e) => write!(f, "bad endpoint: {e}"),
            ServerError::Bind { endpoint, error } => {
                write!(f, "cannot listen on {endpoint}: {error}")
            }
            ServerError::Runtime(msg) => f.write_str(msg),
            ServerError::NoEndpoints => f.write_str("no endpoint to listen on"),
        }
    }
}

impl std::error::Error for ServerError {}

impl From<EndpointError> for ServerError {
    fn from(e: EndpointError) -> Self {
        ServerError::Endpoint(e)
    }
}

/// Runs `f` on a fresh thread: used by the signal thread and tests.
pub(crate) fn spawn_named<F: FnOnce() + Send + 'static>(name: &str, f: F) {
    let _ = std::thread::Builder::new().name(name.into()).spawn(f);
}
