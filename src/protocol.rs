//! The `Protocol` trait: one instance per connection, driven by synchronous callbacks.
//!
//! Call order, for every connection, on the shard that accepted it:
//!
//! ```text
//! connection_made ──► (data_received | pause_producing | resume_producing |
//!                      read_connection_lost | server_stopping)*
//!                 ──► connection_lost (exactly once, last)
//! ```
//!
//! Callbacks are synchronous on purpose (Twisted's rule, reference A11): nothing a
//! callback writes is sent before it returns, so every write of one batch of reads
//! leaves in one `send`, and `lose_connection` takes effect before the next byte
//! is parsed. Asynchronous work is spawned on the shard (`Reactor::spawn_local`) and
//! writes back later through a [`TransportHandle`](crate::TransportHandle).

use crate::connection::Backpressure;
use crate::reason::Reason;
use crate::transport::Transport;

/// A connection's behaviour: Twisted's `IProtocol`, in snake_case.
///
/// # Panics
/// A panic inside any callback ends this connection only: its pending output is
/// discarded and `connection_lost` is called with [`Reason::ProtocolFailure`]
/// carrying the panic message. Other connections on the shard are not affected.
/// (This needs the default `panic = "unwind"`.)
pub trait Protocol: 'static {
    /// Called once the connection is set up; writes made here are the greeting.
    ///
    /// # Twisted
    /// A panic here ends the connection, where Twisted logs the exception and keeps the
    /// connection open: after a Rust panic the protocol's state cannot be trusted.
    fn connection_made(&mut self, transport: &mut Transport) {
        let _ = transport;
    }

    /// Called with every chunk of bytes read. Chunk boundaries are arbitrary.
    fn data_received(&mut self, data: &[u8], transport: &mut Transport);

    /// Called exactly once, last, however the connection ended.
    fn connection_lost(&mut self, reason: Reason) {
        let _ = reason;
    }

    /// Called when the connection's buffered output passes the high watermark
    /// (64 KiB by default, Twisted's figure): stop producing until
    /// [`resume_producing`](Protocol::resume_producing).
    fn pause_producing(&mut self, transport: &mut Transport) {
        let _ = transport;
    }

    /// Called when the output buffered since the last `pause_producing` has drained
    /// completely (Twisted resumes only at empty).
    fn resume_producing(&mut self, transport: &mut Transport) {
        let _ = transport;
    }

    /// Tells what the engine does with this connection's input while its output is
    /// above the high watermark: by default it stops reading (Twisted's idiom of the
    /// transport registered as its own streaming producer), so a peer that does not
    /// read costs one watermark of memory. A protocol that must keep reading (it
    /// bounds its own output) returns [`Backpressure::KeepReading`].
    ///
    /// # Twisted
    /// A plain Twisted protocol keeps reading unless it registers the transport as
    /// its producer; weft makes that the default because an echo-like protocol
    /// otherwise lets a non-reading peer grow the server's memory to the cap.
    fn backpressure(&self) -> Backpressure {
        Backpressure::PauseReading
    }

    /// Tells whether the protocol handles a half-close (Twisted's
    /// `IHalfCloseableProtocol`). If false (the default), a FIN from the peer is a full
    /// close: `connection_lost(ConnectionDone)` follows and unsent output is dropped.
    fn half_closeable(&self) -> bool {
        false
    }

    /// Called when the peer closed its sending side, for a half-closeable protocol
    /// only. The connection stays open for writing; call `lose_connection` when done.
    fn read_connection_lost(&mut self, transport: &mut Transport) {
        transport.lose_connection();
    }

    /// Called once when the server begins its graceful stop (SIGTERM, `stop()`),
    /// or at `connection_made` if it already has. The default closes the connection
    /// gracefully: `lose_connection`, so pending output is sent first, and
    /// `connection_lost` gets [`Reason::Shutdown`]` { drained: true }`.
    ///
    /// Override it to end in the protocol's own way first: a TLS session sends
    /// close_notify, a protocol in the middle of a request answers it. A connection
    /// still open when the drain timeout passes is aborted
    /// (`Shutdown { drained: false }`).
    ///
    /// # Twisted
    /// weft's addition: Twisted's reactor stop calls no protocol method before
    /// `connectionLost` (wrapping protocols such as TLS send nothing at a stop).
    fn server_stopping(&mut self, transport: &mut Transport) {
        transport.lose_connection();
    }
}
