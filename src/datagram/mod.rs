//! Datagrams: Twisted's `DatagramProtocol` and its UDP transport (`listenUDP`,
//! `listenMulticast`, `listenUNIXDatagram`), served on every shard.
//!
//! ```text
//!  ServerBuilder::listen_datagram("udp:9999", |shard| MyProtocol::new())
//!    └─ per shard: one SO_REUSEPORT socket, one protocol instance, one ring
//!         multishot RecvMsg into the port's provided buffers
//!            ─► datagram_received(data, addr, transport)   (in place, no copy)
//!         transport.write(data, addr) ─► outbox (outbox.rs)
//!            ─► after the turn's callbacks: one SendMsg per datagram, all
//!               submitted in the turn's one io_uring_enter
//! ```
//!
//! Files: `protocol.rs` (the trait), `transport.rs` (what a protocol can do with
//! its port, and a handle that writes from timers and tasks), `address.rs` (a peer's or the port's address), `outbox.rs` (the
//! datagrams written and not yet handed to the kernel), `error.rs`. The engine side
//! is `runtime/datagram.rs`.
//!
//! **How Linux spreads datagrams over the shards.** Every shard binds its own
//! socket to the same port in one `SO_REUSEPORT` group; the kernel picks the socket
//! for each datagram by a hash of its source and destination addresses and ports,
//! so one flow (one client address and port) always reaches the same shard and its
//! protocol instance, and many flows spread over all of them. A reply goes out of
//! the socket the datagram came in on, so it carries the port's address.
//!
//! **Connected mode pins a peer.** After [`DatagramTransport::connect`], that
//! shard's socket receives only the connected peer's datagrams, and the kernel
//! prefers it for them over the group's hash (an exact four-tuple match scores
//! higher). While any socket of the group is connected, Linux stops hashing for
//! the others and sends every other flow to one unconnected socket of the group, so
//! connected mode is for clients and one-peer protocols, not for a server port.
//!
//! **UNIX datagrams** (`unixgram:PATH`): a path can be bound by one socket only, so
//! shard 0 serves the port alone.
//!
//! # Twisted
//! The protocol instance is per shard, built by a closure given the shard index
//! (Twisted's `listenUDP` takes one instance). A panic in `datagram_received` is
//! logged and counted and the port keeps serving, as Twisted logs and swallows an
//! exception from `datagramReceived`. A datagram longer than `max_packet_size` is
//! truncated as Twisted's `recvfrom(maxPacketSize)` does, but counted in
//! [`ShardStats::datagrams_truncated`](crate::ShardStats::datagrams_truncated) and
//! logged once per port instead of silently. `write` never sends inline: it queues,
//! and the turn's sends go out together (Twisted calls `sendto` inside `write`);
//! so a send error other than a refused connected peer is counted and logged, not
//! raised.

mod address;
mod error;
pub(crate) mod outbox;
mod protocol;
mod transport;

pub use address::DatagramAddress;
pub use error::DatagramError;
pub use protocol::DatagramProtocol;
pub use transport::{DatagramHandle, DatagramTransport, DEFAULT_MAX_PACKET_SIZE};
