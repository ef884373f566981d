//! The PROXY protocol, as Twisted's `haproxy:` endpoint wrapper does it: a server
//! behind HAProxy (`send-proxy`, `send-proxy-v2`), nginx (`proxy_protocol on`) or any
//! L4 balancer that speaks it learns the client's real address.
//!
//! ```text
//!  balancer ─"PROXY …\r\n" or v2 binary, then the client's bytes─► engine
//!     ─► HaproxyProtocol: ProxyHeaderDecoder ─► build P for the header's source
//!     ─► P::connection_made / data_received, with peer() = client, host() = what
//!        the client connected to (the balancer's frontend)
//! ```
//!
//! * Endpoints: `haproxy:` before any server endpoint string (`haproxy:tcp:8080`,
//!   `haproxy:unix:/run/app.sock`, `haproxy:ssl:8443:…`; the header comes before the
//!   TLS handshake, as HAProxy sends it), understood by
//!   [`ServerBuilder::listen`](crate::ServerBuilder::listen), a
//!   [`ListeningService`](crate::application::ListeningService) and `weft serve`
//!   (`listen.rs` wraps the factory in a [`HaproxyServerFactory`]).
//! * Parsing: [`ProxyHeaderDecoder`], sans-IO, v1 and v2.
//! * Refusals: a missing (junk), malformed or oversized header, or none within
//!   [`DEFAULT_HEADER_TIMEOUT`]: the connection is reset, the reason logged at
//!   `info`, and the count kept in [`HaproxyStats`] per shard and [`RejectReason`];
//!   the metrics page shows them as `weft_proxy_headers_accepted_total{shard}` and
//!   `weft_proxy_headers_rejected_total{shard,reason}`.

mod factory;
mod header;
pub(crate) mod listen;
mod protocol;
mod reject;
mod stats;

pub use factory::{HaproxyServerFactory, DEFAULT_HEADER_TIMEOUT};
pub use header::{
    ProxiedAddresses, ProxyHeader, ProxyHeaderDecoder, ProxyHeaderError, ProxyHeaderEvent,
    ProxyVersion, DEFAULT_MAX_V2_LENGTH, V1_MAX_LENGTH, V2_SIGNATURE,
};
pub use protocol::HaproxyProtocol;
pub use reject::RejectReason;
pub use stats::{process_totals, HaproxyStats, ShardProxyCounts};

/// The prefix of an endpoint string whose connections start with a PROXY header.
pub const PREFIX: &str = "haproxy:";

/// Returns the endpoint inside a `haproxy:` endpoint string, or `None` if `desc`
/// is not one.
///
/// # Examples
/// ```
/// assert_eq!(weft::haproxy::inner_endpoint("haproxy:tcp:8080"), Some("tcp:8080"));
/// assert_eq!(weft::haproxy::inner_endpoint("tcp:8080"), None);
/// ```
pub fn inner_endpoint(desc: &str) -> Option<&str> {
    desc.strip_prefix(PREFIX)
}

#[cfg(test)]
mod wrapper_tests;
