//! What a datagram protocol can do with its port: Twisted's `IUDPTransport` and
//! `IMulticastTransport`.
//!
//! Writes are queued in the port's outbox and sent after the turn's callbacks, all
//! in the turn's one `io_uring_enter`; nothing is sent inside a callback. Socket
//! options (`set_ttl`, `join_group`, …) and `connect` take effect at once.

use std::cell::{Cell, RefCell, RefMut};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;

use socket2::{SockAddr, Socket};

use super::outbox::Outbox;
use super::{DatagramAddress, DatagramError};
use crate::reactor::Reactor;

/// The longest datagram a port receives when its endpoint says nothing (Twisted's
/// `maxPacketSize` default, 8192 bytes).
pub const DEFAULT_MAX_PACKET_SIZE: usize = 8192;

/// The longest UDP payload over IPv4 (65535 minus the IP and UDP headers).
const MAX_UDP4_PAYLOAD: usize = 65_507;
/// The longest UDP payload over IPv6 (without jumbograms).
const MAX_UDP6_PAYLOAD: usize = 65_527;

/// What the transport and its handles share: the outbox and what `write` checks.
pub(crate) struct Sink {
    host: DatagramAddress,
    connected: RefCell<Option<DatagramAddress>>,
    outbox: RefCell<Outbox>,
    /// Datagrams refused by a full outbox (the engine publishes the count).
    dropped: Cell<u64>,
    /// The port has stopped: writes fail.
    closed: Cell<bool>,
}

impl Sink {
    fn write(&self, data: &[u8], addr: &DatagramAddress) -> Result<(), DatagramError> {
        if let Some(peer) = &*self.connected.borrow() {
            if peer != addr {
                return Err(DatagramError::WrongPeer);
            }
            return self.queue(data, None);
        }
        if addr.is_unix() != self.host.is_unix()
            || addr.raw().is_ipv6() != self.host.raw().is_ipv6()
        {
            return Err(DatagramError::WrongFamily);
        }
        self.queue(data, Some(addr.raw().clone()))
    }

    fn write_connected(&self, data: &[u8]) -> Result<(), DatagramError> {
        if self.connected.borrow().is_none() {
            return Err(DatagramError::NotConnected);
        }
        self.queue(data, None)
    }

    fn queue(&self, data: &[u8], to: Option<SockAddr>) -> Result<(), DatagramError> {
        if self.closed.get() {
            return Err(DatagramError::Closed);
        }
        let max = self.max_send();
        if data.len() > max {
            return Err(DatagramError::MessageTooLong {
                len: data.len(),
                max,
            });
        }
        if self.outbox.borrow_mut().push(data, to) {
            Ok(())
        } else {
            self.dropped.set(self.dropped.get() + 1);
            Err(DatagramError::OutboxFull)
        }
    }

    fn max_send(&self) -> usize {
        if self.host.is_unix() {
            usize::MAX
        } else if self.host.raw().is_ipv6() {
            MAX_UDP6_PAYLOAD
        } else {
            MAX_UDP4_PAYLOAD
        }
    }
}

/// A port's transport, lent to its protocol's callbacks (Twisted's
/// `IUDPTransport`, plus `IMulticastTransport` for UDP ports).
pub struct DatagramTransport {
    socket: Rc<Socket>,
    sink: Rc<Sink>,
    reactor: Option<Reactor>,
    max_packet_size: usize,
    broadcast: bool,
}

/// Writes to a port from anywhere on its shard: a `call_later` closure, a spawned
/// task (Twisted's `port.write` outside `datagramReceived`). Obtained from
/// [`DatagramTransport::handle`]; what it writes goes out at the end of the turn,
/// as the transport's writes do.
#[derive(Clone)]
pub struct DatagramHandle {
    sink: Rc<Sink>,
}

impl DatagramHandle {
    /// Queues `data` for `addr`, as [`DatagramTransport::write`].
    ///
    /// # Errors
    /// As [`DatagramTransport::write`], and [`DatagramError::Closed`] once the port
    /// has stopped.
    pub fn write(&self, data: &[u8], addr: &DatagramAddress) -> Result<(), DatagramError> {
        self.sink.write(data, addr)
    }

    /// Queues `data` for the connected peer, as
    /// [`DatagramTransport::write_connected`].
    ///
    /// # Errors
    /// As [`DatagramTransport::write_connected`], and [`DatagramError::Closed`].
    pub fn write_connected(&self, data: &[u8]) -> Result<(), DatagramError> {
        self.sink.write_connected(data)
    }
}

impl DatagramTransport {
    pub(crate) fn new(
        socket: Rc<Socket>,
        host: DatagramAddress,
        max_packet_size: usize,
        reactor: Option<Reactor>,
    ) -> DatagramTransport {
        DatagramTransport {
            socket,
            sink: Rc::new(Sink {
                host,
                connected: RefCell::new(None),
                outbox: RefCell::new(Outbox::default()),
                dropped: Cell::new(0),
                closed: Cell::new(false),
            }),
            reactor,
            max_packet_size,
            broadcast: false,
        }
    }

    /// The queued datagrams (the engine swaps them out at the end of the turn).
    pub(crate) fn outbox(&self) -> RefMut<'_, Outbox> {
        self.sink.outbox.borrow_mut()
    }

    /// Makes every later write fail (the port stopped).
    pub(crate) fn close(&self) {
        self.sink.closed.set(true);
    }

    /// Returns a handle that writes to this port from anywhere on the shard.
    pub fn handle(&self) -> DatagramHandle {
        DatagramHandle {
            sink: Rc::clone(&self.sink),
        }
    }

    /// Returns the shard's reactor (`call_later`, `spawn_local`), as
    /// [`Transport::reactor`](crate::Transport::reactor) does for a connection.
    ///
    /// # Panics
    /// On a transport built outside a shard (unit tests only).
    pub fn reactor(&self) -> &Reactor {
        self.reactor
            .as_ref()
            .expect("a datagram transport built by the engine has its shard's reactor")
    }

    /// Queues `data` for `addr` (Twisted's `write(data, addr)`).
    ///
    /// # Errors
    /// [`DatagramError::WrongPeer`] on a connected port if `addr` is not the peer,
    /// [`DatagramError::WrongFamily`] if `addr` is of another family than the port,
    /// [`DatagramError::MessageTooLong`] past the family's limit,
    /// [`DatagramError::OutboxFull`] when too much waits already (dropped, counted).
    pub fn write(&mut self, data: &[u8], addr: &DatagramAddress) -> Result<(), DatagramError> {
        self.sink.write(data, addr)
    }

    /// Queues `data` for `host`:`port`, where `host` must be an IP literal or
    /// `"<broadcast>"` (Twisted's `write(data, (host, port))`).
    ///
    /// # Errors
    /// [`DatagramError::InvalidAddress`] for a name, else as [`write`](Self::write).
    pub fn write_to(&mut self, data: &[u8], host: &str, port: u16) -> Result<(), DatagramError> {
        let addr = DatagramAddress::parse(host, port)?;
        self.write(data, &addr)
    }

    /// Queues `data` for the connected peer (Twisted's `write(data)` in connected
    /// mode).
    ///
    /// # Errors
    /// [`DatagramError::NotConnected`] if [`connect`](Self::connect) was not called,
    /// else as [`write`](Self::write).
    pub fn write_connected(&mut self, data: &[u8]) -> Result<(), DatagramError> {
        self.sink.write_connected(data)
    }

    /// Connects the port to `host`:`port` (Twisted's `connect`): from now on it
    /// receives only that peer's datagrams, [`write_connected`](Self::write_connected)
    /// sends to it, and a refusal from it comes back as
    /// [`connection_refused`](super::DatagramProtocol::connection_refused).
    ///
    /// # Errors
    /// [`DatagramError::AlreadyConnected`] the second time (as Twisted),
    /// [`DatagramError::InvalidAddress`] if `host` is not an IP literal,
    /// [`DatagramError::WrongFamily`] on a UNIX port (see
    /// [`connect_unix`](Self::connect_unix)), or the OS error.
    pub fn connect(&mut self, host: &str, port: u16) -> Result<(), DatagramError> {
        if self.sink.connected.borrow().is_some() {
            return Err(DatagramError::AlreadyConnected);
        }
        if self.host().is_unix() {
            return Err(DatagramError::WrongFamily);
        }
        let addr = DatagramAddress::parse(host, port)?;
        if addr.raw().is_ipv6() != self.host().raw().is_ipv6() {
            return Err(DatagramError::WrongFamily);
        }
        self.socket.connect(addr.raw())?;
        *self.sink.connected.borrow_mut() = Some(addr);
        Ok(())
    }

    /// Connects a UNIX datagram port (`unixgram:`) to the socket bound at `path`
    /// (Twisted's `connectUNIXDatagram`, with the port's own path as its
    /// `bindAddress`, so the peer can answer): from now on
    /// [`write_connected`](Self::write_connected) sends there, the kernel refuses
    /// datagrams to this port from any other socket, and a peer that has gone away
    /// comes back as [`connection_refused`](super::DatagramProtocol::connection_refused).
    ///
    /// # Errors
    /// [`DatagramError::AlreadyConnected`] the second time (as Twisted),
    /// [`DatagramError::WrongFamily`] on a UDP port, or the OS error (no socket
    /// bound at `path`: `ECONNREFUSED` or `ENOENT`).
    pub fn connect_unix(&mut self, path: &std::path::Path) -> Result<(), DatagramError> {
        if self.sink.connected.borrow().is_some() {
            return Err(DatagramError::AlreadyConnected);
        }
        if !self.host().is_unix() {
            return Err(DatagramError::WrongFamily);
        }
        let addr = DatagramAddress::unix(path)?;
        self.socket.connect(addr.raw())?;
        *self.sink.connected.borrow_mut() = Some(addr);
        Ok(())
    }

    /// Returns the connected peer, if [`connect`](Self::connect) or
    /// [`connect_unix`](Self::connect_unix) was called.
    pub fn connected_peer(&self) -> Option<DatagramAddress> {
        self.sink.connected.borrow().clone()
    }

    /// Returns the port's own address (Twisted's `getHost`).
    pub fn host(&self) -> &DatagramAddress {
        &self.sink.host
    }

    /// Returns the longest datagram received whole (longer ones are truncated).
    pub fn max_packet_size(&self) -> usize {
        self.max_packet_size
    }

    /// Returns the datagrams dropped so far because the outbox was full.
    pub fn dropped(&self) -> u64 {
        self.sink.dropped.get()
    }

    /// Allows or forbids sending to broadcast addresses (`SO_BROADCAST`; Twisted's
    /// `setBroadcastAllowed`).
    ///
    /// # Errors
    /// The OS error.
    pub fn set_broadcast_allowed(&mut self, on: bool) -> Result<(), DatagramError> {
        self.socket.set_broadcast(on)?;
        self.broadcast = on;
        Ok(())
    }

    /// Tells whether broadcast is allowed (Twisted's `getBroadcastAllowed`).
    pub fn broadcast_allowed(&self) -> bool {
        self.broadcast
    }

    /// Sets the time-to-live of multicast datagrams (Twisted's `setTTL`).
    ///
    /// # Errors
    /// The OS error; [`DatagramError::WrongFamily`] on a UNIX port.
    pub fn set_ttl(&mut self, ttl: u32) -> Result<(), DatagramError> {
        match self.family()? {
            Family::V4 => self.socket.set_multicast_ttl_v4(ttl)?,
            Family::V6 => self.socket.set_multicast_hops_v6(ttl)?,
        }
        Ok(())
    }

    /// Says whether this host's own multicast datagrams loop back to it (Twisted's
    /// `setLoopbackMode`).
    ///
    /// # Errors
    /// The OS error; [`DatagramError::WrongFamily`] on a UNIX port.
    pub fn set_loopback_mode(&mut self, on: bool) -> Result<(), DatagramError> {
        match self.family()? {
            Family::V4 => self.socket.set_multicast_loop_v4(on)?,
            Family::V6 => self.socket.set_multicast_loop_v6(on)?,
        }
        Ok(())
    }

    /// Sets the interface multicast datagrams leave by (Twisted's
    /// `setOutgoingInterface`), an IPv4 literal.
    ///
    /// # Errors
    /// [`DatagramError::InvalidAddress`], or the OS error.
    pub fn set_outgoing_interface(&mut self, interface: &str) -> Result<(), DatagramError> {
        let ip = parse_v4(interface)?;
        self.socket.set_multicast_if_v4(&ip)?;
        Ok(())
    }

    /// Joins the multicast group `group` on `interface` (`""`: any; an IPv4
    /// literal for an IPv4 group, ignored for IPv6) (Twisted's `joinGroup`).
    ///
    /// # Errors
    /// [`DatagramError::InvalidAddress`], or the OS error.
    pub fn join_group(&mut self, group: &str, interface: &str) -> Result<(), DatagramError> {
        self.membership(group, interface, true)
    }

    /// Leaves the multicast group `group` (Twisted's `leaveGroup`).
    ///
    /// # Errors
    /// As [`join_group`](Self::join_group).
    pub fn leave_group(&mut self, group: &str, interface: &str) -> Result<(), DatagramError> {
        self.membership(group, interface, false)
    }

    fn membership(
        &mut self,
        group: &str,
        interface: &str,
        join: bool,
    ) -> Result<(), DatagramError> {
        let g: IpAddr = group
            .parse()
            .map_err(|_| DatagramError::InvalidAddress(group.to_string()))?;
        match (g, self.family()?) {
            (IpAddr::V4(g), Family::V4) => {
                let i = if interface.is_empty() {
                    Ipv4Addr::UNSPECIFIED
                } else {
                    parse_v4(interface)?
                };
                if join {
                    self.socket.join_multicast_v4(&g, &i)?;
                } else {
                    self.socket.leave_multicast_v4(&g, &i)?;
                }
            }
            (IpAddr::V6(g), Family::V6) => {
                if join {
                    self.socket.join_multicast_v6(&g, 0)?;
                } else {
                    self.socket.leave_multicast_v6(&g, 0)?;
                }
            }
            _ => return Err(DatagramError::WrongFamily),
        }
        Ok(())
    }

    fn family(&self) -> Result<Family, DatagramError> {
        match self.host().ip() {
            Some(SocketAddr::V4(_)) => Ok(Family::V4),
            Some(SocketAddr::V6(_)) => Ok(Family::V6),
            None => Err(DatagramError::WrongFamily),
        }
    }
}

enum Family {
    V4,
    V6,
}

fn parse_v4(s: &str) -> Result<Ipv4Addr, DatagramError> {
    s.parse()
        .map_err(|_| DatagramError::InvalidAddress(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::{Domain, Type};

    fn transport() -> DatagramTransport {
        let s = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
        s.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        let host = DatagramAddress::from_raw(s.local_addr().unwrap());
        DatagramTransport::new(Rc::new(s), host, DEFAULT_MAX_PACKET_SIZE, None)
    }

    #[test]
    fn write_to_a_name_is_an_invalid_address() {
        let mut t = transport();
        assert!(matches!(
            t.write_to(b"x", "localhost", 9),
            Err(DatagramError::InvalidAddress(_))
        ));
        assert!(t.outbox().is_empty());
        t.write_to(b"x", "127.0.0.1", 9).unwrap();
        assert_eq!(t.outbox().items().len(), 1);
    }

    #[test]
    fn a_second_connect_is_an_error() {
        let mut t = transport();
        assert!(matches!(
            t.write_connected(b"x"),
            Err(DatagramError::NotConnected)
        ));
        t.connect("127.0.0.1", 9).unwrap();
        assert!(matches!(
            t.connect("127.0.0.1", 10),
            Err(DatagramError::AlreadyConnected)
        ));
        assert!(matches!(
            t.write_to(b"x", "127.0.0.1", 10),
            Err(DatagramError::WrongPeer)
        ));
        t.write_to(b"x", "127.0.0.1", 9).unwrap();
        t.write_connected(b"y").unwrap();
        assert!(t.outbox().items().iter().all(|q| q.to.is_none()));
    }

    #[test]
    fn writes_past_the_limits_are_refused_and_counted() {
        let mut t = transport();
        assert!(matches!(
            t.write_to(&vec![0; MAX_UDP4_PAYLOAD + 1], "127.0.0.1", 9),
            Err(DatagramError::MessageTooLong { .. })
        ));
        assert!(matches!(
            t.write_to(b"x", "::1", 9),
            Err(DatagramError::WrongFamily)
        ));
        while t.write_to(b"x", "127.0.0.1", 9).is_ok() {}
        assert_eq!(t.dropped(), 1);
    }

    #[test]
    fn a_handle_writes_into_the_same_outbox_until_the_port_closes() {
        let mut t = transport();
        let h = t.handle();
        t.write_to(b"a", "127.0.0.1", 9).unwrap();
        h.write(b"b", &DatagramAddress::parse("127.0.0.1", 9).unwrap())
            .unwrap();
        assert_eq!(t.outbox().items().len(), 2);
        t.close();
        assert!(matches!(
            h.write_connected(b"c"),
            Err(DatagramError::NotConnected)
        ));
        assert!(matches!(
            t.write_to(b"c", "127.0.0.1", 9),
            Err(DatagramError::Closed)
        ));
    }
}
