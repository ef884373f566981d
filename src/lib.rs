//! # weft
//!
//! Twisted's server and client programming model — reactor, `Factory`, `Protocol`,
//! `Transport` — on a thread-per-core engine: one pinned glommio (io_uring) executor
//! per CPU core, each accepting on its own `SO_REUSEPORT` listener and running its own
//! protocol instances and its own factory. Nothing on the hot path is shared between
//! cores: no locks, no `Send`, no atomics per message.
//!
//! ```text
//!  Server::builder().cores(N).listen("tcp:8000", |shard| MyFactory::new(shard))
//!                      │ a Send + Sync closure, called once per shard
//!        ┌─────────────┴──────────────┐
//!   shard 0 (core 0)              shard N-1 (core N-1)
//!   ├ listener (own SO_REUSEPORT socket)
//!   ├ factory (shard-local, !Send is fine)
//!   ├ one task per connection: recv ─► protocol.data_received(&[u8], &mut Transport)
//!   │                                  ─► everything written leaves in one send()
//!   └ clock (call_later) and local tasks (spawn_local)
//! ```
//!
//! ## Quick start
//! ```no_run
//! use weft::{Address, Factory, Protocol, Server, Transport};
//!
//! struct Echo;
//! impl Protocol for Echo {
//!     fn data_received(&mut self, data: &[u8], t: &mut Transport) {
//!         t.write(data);
//!     }
//! }
//!
//! struct EchoFactory;
//! impl Factory for EchoFactory {
//!     type Protocol = Echo;
//!     fn build_protocol(&mut self, _peer: &Address) -> Option<Echo> {
//!         Some(Echo)
//!     }
//! }
//!
//! let server = Server::builder()
//!     .listen("tcp:8000:interface=127.0.0.1", |_shard| EchoFactory)
//!     .start()
//!     .expect("listening");
//! server.join().expect("clean shutdown");
//! ```
//!
//! ## Twisted → weft
//!
//! | Twisted | weft |
//! |---|---|
//! | `Protocol.connectionMade()` | [`Protocol::connection_made`] |
//! | `dataReceived(data)` | [`Protocol::data_received`] |
//! | `connectionLost(reason)` | [`Protocol::connection_lost`] with a [`Reason`] |
//! | `transport.write / writeSequence` | [`Transport::write`], [`Transport::write_bytes`], [`Transport::write_sequence`] |
//! | `loseConnection / abortConnection` | [`Transport::lose_connection`], [`Transport::abort_connection`] |
//! | `Factory.buildProtocol(addr)` | [`Factory::build_protocol`] (`None` refuses) |
//! | `reactor.callLater` → `DelayedCall` | [`Reactor::call_later`] → [`DelayedCall`] |
//! | Deferred | [`Reactor::spawn_local`] + [`TransportHandle`] |
//! | `serverFromString` | [`endpoints::ServerEndpoint`] |
//! | `listenSSL`, `TLSMemoryBIOFactory`, `negotiatedProtocol` | `ssl:` endpoints, [`tls::TlsServerFactory`], [`Transport::tls`] |
//! | `haproxy:` endpoints, `HAProxyWrappingFactory` | [`haproxy::HaproxyServerFactory`] (through `ServerBuilder::listen`, `ListeningService` and `weft serve`) |
//! | `StringTransport`, `Clock`, `iosim` | [`testing`] |
//!
//! The deliberate differences are listed in `docs/twisted.md`.
//!
//! ## Operating requirements
//! Linux with io_uring (kernel 5.8 or later), and a memlock rlimit (`ulimit -l`) of at
//! least 8 MiB for the default settings; [`ServerBuilder::start`] fails with a clear error
//! when io_uring cannot be set up.

#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod address;
pub mod application;
pub mod bus;
pub mod client;
pub mod clock;
mod connection;
pub mod datagram;
pub mod endpoints;
pub mod factory;
pub mod haproxy;
pub mod mesh;
pub mod metrics;
pub mod policies;
pub mod protocol;
pub mod protocols;
pub mod reactor;
pub mod reason;
pub mod runtime;
pub mod services;
pub mod testing;
pub mod tls;
pub mod transport;

pub use address::Address;
pub use clock::{Clock, DelayedCall, DelayedCallError};
pub use connection::Backpressure;
pub use datagram::{DatagramAddress, DatagramProtocol, DatagramTransport};
pub use factory::Factory;
pub use protocol::Protocol;
pub use reactor::Reactor;
pub use reason::Reason;
pub use runtime::{Server, ServerBuilder, ServerError, ServerHandle, ShardStats, StopHandle};
pub use transport::{OutputLimits, Transport, TransportHandle};
