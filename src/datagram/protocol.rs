//! The datagram protocol: Twisted's `DatagramProtocol`, one instance per shard.

use super::address::DatagramAddress;
use super::transport::DatagramTransport;

/// Handles the datagrams of one port on one shard (Twisted's `DatagramProtocol`).
///
/// Call order: `start_protocol` once when the port is bound on the shard, then
/// `datagram_received` for every datagram (and `connection_refused` in connected
/// mode), then `stop_protocol` once when the server stops.
///
/// # Examples
/// ```
/// use weft::datagram::{DatagramAddress, DatagramProtocol, DatagramTransport};
///
/// struct Echo;
/// impl DatagramProtocol for Echo {
///     fn datagram_received(&mut self, data: &[u8], addr: &DatagramAddress, t: &mut DatagramTransport) {
///         let _ = t.write(data, addr);
///     }
/// }
/// ```
pub trait DatagramProtocol: 'static {
    /// Called once the port is bound on this shard (Twisted's `startProtocol`).
    /// The transport may already be used: connected, configured, written to.
    fn start_protocol(&mut self, _transport: &mut DatagramTransport) {}

    /// Called once when the port stops (Twisted's `stopProtocol`); the transport
    /// is gone by then.
    fn stop_protocol(&mut self) {}

    /// Receives one datagram from `addr` (Twisted's `datagramReceived`). `data` is
    /// at most the port's `max_packet_size` long (longer datagrams are truncated,
    /// counted and logged once). A panic here is logged and counted, and the port
    /// keeps serving.
    fn datagram_received(
        &mut self,
        data: &[u8],
        addr: &DatagramAddress,
        transport: &mut DatagramTransport,
    );

    /// Called in connected mode when the peer refused a datagram (an ICMP port
    /// unreachable came back; Twisted's `connectionRefused`).
    fn connection_refused(&mut self, _transport: &mut DatagramTransport) {}
}
