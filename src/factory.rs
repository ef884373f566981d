//! The `Factory` trait: per-shard service state that builds one protocol per connection.
//!
//! A server is given a `Send + Sync` closure that builds one factory per shard (it is
//! handed the shard index). The factory itself never leaves its shard, so it may hold
//! `Rc`, `RefCell` and other `!Send` state; protocols that need factory state hold an
//! `Rc` to it (Twisted's `self.factory`).

use crate::address::Address;
use crate::protocol::Protocol;

/// Builds protocols for one shard's connections: Twisted's `ServerFactory`.
pub trait Factory: 'static {
    /// The protocol this factory builds.
    type Protocol: Protocol;

    /// Builds the protocol for a new connection from `peer`. Returning `None` refuses
    /// the connection: the socket is closed at once (Twisted's `buildProtocol` → `None`).
    fn build_protocol(&mut self, peer: &Address) -> Option<Self::Protocol>;

    /// Called on the shard before its first connection (Twisted's `startFactory`).
    fn start_factory(&mut self) {}

    /// Called on the shard after its last connection has ended, at shutdown
    /// (Twisted's `stopFactory`).
    fn stop_factory(&mut self) {}
}
