//! TLS on rustls, as Twisted does it: a wrapping factory and a wrapping protocol
//! (`TLSMemoryBIOFactory`/`TLSMemoryBIOProtocol`) between the engine's bytes and the
//! user's protocol, which sees plaintext and the same [`Transport`](crate::Transport)
//! API as over TCP.
//!
//! ```text
//!  engine (ring, sockets)          weft::tls                      user
//!  ciphertext ──data_received──► TlsProtocol ──rustls──► plaintext ─► P::data_received
//!  send ◄── Transport::write ◄── ciphertext ◄──rustls◄── inner Transport ◄── P writes
//! ```
//!
//! * Servers: an `ssl:` endpoint string given to `ServerBuilder::listen` wraps the
//!   factory by itself ([`parse_ssl_endpoint`] has the syntax); or wrap by hand with
//!   [`TlsServerFactory`] and a [`ServerTls`].
//! * Clients: [`connect_tls`] with a `tls:` string ([`parse_tls_endpoint`]), or
//!   [`TlsClientFactory`] around any `ClientFactory`.
//! * Reload: [`ServerTls::reload`], or [`reload_all`] for every `ssl:` endpoint of
//!   the process (the SIGHUP hook).
//! * What was negotiated: [`Transport::tls`](crate::Transport::tls) → [`TlsInfo`].
//!
//! Semantics (Twisted's): `lose_connection` sends close_notify, then flushes, then
//! FIN; `abort_connection` sends neither; a peer's close_notify is `ConnectionDone`,
//! a FIN without one is `ConnectionLost` (truncation). See `session.rs` for the full
//! table, and `docs/twisted.md` for the differences.

mod client;
mod error;
mod info;
mod options;
mod pem;
mod provider;
mod records;
mod reload;
mod server;
mod server_config;
mod session;
mod sni;
mod stats;
mod traffic;

pub use client::{connect_tls, parse_tls_endpoint, ClientTlsOptions, TlsClientFactory};
pub use error::TlsConfigError;
pub use info::TlsInfo;
pub use options::{
    is_ssl, parse_ssl_endpoint, ServerTlsOptions, TlsMethod, DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_MAX_HANDSHAKES, DEFAULT_PRIVATE_KEY,
};
pub use pem::{certificates, certified_key, private_key, root_store, system_roots};
pub use provider::provider;
pub use reload::{register, reload_all, ReloadOutcome};
pub(crate) use server::ssl_service;
pub use server::TlsServerFactory;
pub use server_config::ServerTls;
pub use session::{TlsFailure, TlsProtocol};
pub use sni::SniResolver;
pub use stats::TlsStats;

/// The rustls crate weft's TLS is built on (for its types: `ProtocolVersion`,
/// `CipherSuite`, configs).
pub use rustls;

#[cfg(test)]
mod pair_tests;
#[cfg(test)]
pub(crate) mod test_pki;
#[cfg(test)]
mod traffic_tests;
