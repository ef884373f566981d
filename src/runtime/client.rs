//! The engine side of client connections: connect a socket, then hand it to the
//! same connection driver the accept loops use.
//!
//! ```text
//!  client::Connector / connect_protocol          (src/client, no glommio)
//!     │ dial(endpoint, resolver)
//!     ▼
//!  resolve (IP literal, or a helper thread) ─► socket2: socket, [bind], connect
//!     (non-blocking) ─► glommio TcpStream ─► wait until writable (a zero-byte send)
//!     │ Dialed { stream, peer, host }
//!     ▼ start(dialed, protocol)
//!  connection::run on this shard: the very driver a server connection uses, so a
//!  client connection is registered with the shard, drained at shutdown, and has
//!  the same Transport semantics.
//! ```
//!
//! The connect is done by hand rather than with glommio's `TcpStream::connect`
//! because that one resolves names on the executor thread (blocking it) and cannot
//! bind the local end first (`bindAddress`). Completion is observed with a
//! zero-byte `send`: on a socket still in SYN_SENT it fails with `EAGAIN`, so glommio
//! arms a writability poll; once the handshake is done it returns 0, and if the
//! handshake failed it returns the socket's error (`ECONNREFUSED`).
//!
//! Timeouts and cancellation are not handled here: the caller races this future
//! against the shard clock and drops it, which closes the half-open socket.
//!
//! The shard a client runs on is found through a thread-local set when the shard
//! starts: each shard is one thread, and a `Reactor` never leaves its thread.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::pin::Pin;
use std::rc::{Rc, Weak};

use futures_lite::io::AsyncWrite;
use glommio::net::{TcpStream, UnixStream};
use socket2::{Domain, Protocol as SockProtocol, SockAddr, Socket, Type};

use crate::address::Address;
use crate::client::{ConnectError, Resolver};
use crate::endpoints::ClientEndpoint;
use crate::protocol::Protocol;
use crate::runtime::connection;
use crate::runtime::shard::Shard;

thread_local! {
    static CURRENT: RefCell<Weak<Shard>> = const { RefCell::new(Weak::new()) };
}

/// Records `shard` as the one running on this thread (called once per shard).
pub(crate) fn enter(shard: &Rc<Shard>) {
    CURRENT.with(|c| *c.borrow_mut() = Rc::downgrade(shard));
}

fn current() -> Result<Rc<Shard>, ConnectError> {
    CURRENT
        .with(|c| c.borrow().upgrade())
        .ok_or(ConnectError::NoRuntime)
}

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// A connected socket waiting for its protocol.
pub(crate) struct Dialed {
    stream: Stream,
    peer: Address,
    host: Address,
}

impl Dialed {
    /// The server's address (what `build_protocol` is given).
    pub(crate) fn peer(&self) -> &Address {
        &self.peer
    }
}

/// Connects to `endpoint` from this thread's shard.
pub(crate) async fn dial(
    endpoint: &ClientEndpoint,
    resolver: &Resolver,
) -> Result<Dialed, ConnectError> {
    if current()?.is_stopping() {
        return Err(ConnectError::ShuttingDown);
    }
    match endpoint {
        ClientEndpoint::Tcp {
            host,
            port,
            bind_address,
            ..
        } => dial_tcp(host, *port, *bind_address, resolver).await,
        ClientEndpoint::Unix { path, .. } => {
            let stream = UnixStream::connect(path)
                .await
                .map_err(|e| classify(e.into()))?;
            Ok(Dialed {
                stream: Stream::Unix(stream),
                peer: Address::Unix(Some(path.clone())),
                host: Address::Unix(None),
            })
        }
    }
}

async fn dial_tcp(
    host: &str,
    port: u16,
    bind: Option<IpAddr>,
    resolver: &Resolver,
) -> Result<Dialed, ConnectError> {
    let mut addrs = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => resolver
            .resolve(host, port)
            .await
            .map_err(|error| ConnectError::DnsLookup {
                host: host.to_string(),
                error,
            })?,
    };
    // `tcp:` is Twisted's TCP4ClientEndpoint: prefer IPv4, keep IPv6 as a fallback.
    addrs.sort_by_key(|a| !a.is_ipv4());
    if let Some(ip) = bind {
        addrs.retain(|a| a.is_ipv4() == ip.is_ipv4());
    }
    let mut last = ConnectError::DnsLookup {
        host: host.to_string(),
        error: io::Error::new(io::ErrorKind::NotFound, "no usable address"),
    };
    for addr in addrs {
        match connect_tcp(addr, bind).await {
            Ok(d) => return Ok(d),
            Err(e @ ConnectError::Bind { .. }) => return Err(e),
            Err(e) => last = e,
        }
    }
    Err(last)
}

async fn connect_tcp(addr: SocketAddr, bind: Option<IpAddr>) -> Result<Dialed, ConnectError> {
    let sock = Socket::new(
        Domain::for_address(addr),
        Type::STREAM,
        Some(SockProtocol::TCP),
    )
    .map_err(ConnectError::Io)?;
    sock.set_nonblocking(true).map_err(ConnectError::Io)?;
    if let Some(ip) = bind {
        sock.bind(&SockAddr::from(SocketAddr::new(ip, 0)))
            .map_err(|error| ConnectError::Bind { address: ip, error })?;
    }
    match sock.connect(&SockAddr::from(addr)) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(classify(e)),
    }
    let fd = sock.into_raw_fd();
    // SAFETY: `fd` is a TCP socket whose ownership `into_raw_fd` just released; the
    // glommio stream becomes its only owner and closes it when dropped (also when
    // this future is dropped half-way, which is how a timeout cancels the connect).
    let mut stream = unsafe { TcpStream::from_raw_fd(fd) };
    poll_fn(|cx| Pin::new(&mut stream).poll_write(cx, &[]))
        .await
        .map_err(classify)?;
    let host = stream.local_addr().map_err(|e| classify(e.into()))?;
    Ok(Dialed {
        stream: Stream::Tcp(stream),
        peer: Address::Tcp(addr),
        host: Address::Tcp(host),
    })
}

fn classify(e: io::Error) -> ConnectError {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => ConnectError::Refused,
        io::ErrorKind::TimedOut => ConnectError::TimedOut,
        _ => ConnectError::Io(e),
    }
}

/// Runs `protocol` over a dialed socket with the shard's connection driver.
///
/// # Errors
/// [`ConnectError::NoRuntime`] if this thread runs no shard.
pub(crate) fn start<P: Protocol>(dialed: Dialed, protocol: P) -> Result<(), ConnectError> {
    let shard = current()?;
    let Dialed { stream, peer, host } = dialed;
    match stream {
        Stream::Tcp(s) => {
            if shard.config.nodelay {
                let _ = s.set_nodelay(true);
            }
            glommio::spawn_local(connection::run(shard, s, protocol, peer, host)).detach();
        }
        Stream::Unix(s) => {
            glommio::spawn_local(connection::run(shard, s, protocol, peer, host)).detach();
        }
    }
    Ok(())
}
