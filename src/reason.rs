//! Why a connection ended: the argument of `connection_lost`.
//!
//! Twisted passes a `Failure` wrapping `ConnectionDone`, `ConnectionLost`,
//! `ConnectionAborted` or the exception that escaped a callback. weft keeps the
//! same distinctions as an enum, plus two that a sharded engine needs: a server
//! shutdown, and the output cap that bounds a slow reader.

use std::fmt;
use std::io;

/// How a connection ended. `connection_lost` receives exactly one, exactly once.
#[derive(Debug)]
#[non_exhaustive]
pub enum Reason {
    /// A clean close (Twisted's `ConnectionDone`): our `lose_connection` drained its
    /// output, or the peer closed its side (FIN) on a protocol that is not half-closeable.
    ConnectionDone,
    /// The connection failed (Twisted's `ConnectionLost`): a reset, or a `recv`/`send` error.
    ConnectionLost(io::Error),
    /// `abort_connection` was called (Twisted's `ConnectionAborted`): unsent output was
    /// discarded and the peer was sent a reset.
    ConnectionAborted,
    /// The peer stopped reading and the connection's output passed its hard cap; the
    /// connection was aborted so that its buffer cannot grow without bound.
    OutputLimitExceeded {
        /// Bytes that were buffered when the cap was passed.
        buffered: usize,
        /// The configured cap.
        limit: usize,
    },
    /// The server was shut down. `drained` tells whether everything written was sent
    /// before the close (a graceful drain) or the drain deadline passed first.
    Shutdown {
        /// True when every byte written before the shutdown reached the socket.
        drained: bool,
    },
    /// A protocol callback panicked (Twisted: an exception escaped `dataReceived`). The
    /// panic message is kept; pending output was discarded.
    ProtocolFailure(String),
}

impl Reason {
    /// Tells whether this is a clean close (Twisted's `reason.check(ConnectionDone)`).
    pub fn is_clean(&self) -> bool {
        matches!(self, Reason::ConnectionDone)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::ConnectionDone => f.write_str("connection was closed cleanly"),
            Reason::ConnectionLost(e) => write!(f, "connection was lost: {e}"),
            Reason::ConnectionAborted => f.write_str("connection was aborted"),
            Reason::OutputLimitExceeded { buffered, limit } => write!(
                f,
                "peer is not reading: {buffered} bytes buffered, over the cap of {limit}"
            ),
            Reason::Shutdown { drained: true } => f.write_str("server shutdown (output drained)"),
            Reason::Shutdown { drained: false } => {
                f.write_str("server shutdown (drain deadline passed)")
            }
            Reason::ProtocolFailure(msg) => write!(f, "protocol callback panicked: {msg}"),
        }
    }
}
