//! Listening sockets: binding, accept loops with back-off, and the UNIX hand-off.
//!
//! TCP: every shard gets its own socket per endpoint, built with socket2
//! (`SO_REUSEADDR`, `SO_REUSEPORT`, `IPV6_V6ONLY` for `tcp6`, the endpoint's backlog)
//! and bound before any shard starts. For port 0 the first socket learns the port
//! from the kernel and the others bind that same port, so all shards share it.
//!
//! UNIX: a path can be bound by one socket only, so shard 0 accepts and hands each
//! connection to the shards in turn (round-robin) through a channel and the
//! receiving shard's doorbell; that shard serves it on its own ring.
//!
//! Inherited (`systemd:`): each shard accepts on its own duplicate of the socket
//! systemd passed, TCP or UNIX alike, and serves what it accepts itself.
//!
//! UDP: like TCP, one socket per shard in a `SO_REUSEPORT` group, not listening.
//! UNIX datagrams: one socket, bound here, served by shard 0.
//!
//! Accept errors: `EMFILE`, `ENFILE`, `ENOBUFS` and `ENOMEM` (out of descriptors or
//! memory) make the shard log once and back off (10 ms doubling to 1 s) instead of
//! spinning; the queued connection stays in the backlog and is accepted when
//! descriptors free up. `ECONNABORTED`, `EPERM` and `EINTR` are skipped.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use socket2::{Domain, Protocol as SockProtocol, SockAddr, Socket, Type};

use crate::runtime::doorbell::Doorbell;

use crate::address::Address;
use crate::endpoints::{ServerEndpoint, SystemdDomain};
use crate::runtime::ServerError;

/// One shard's share of an endpoint.
pub(crate) enum Bound {
    /// A bound, listening TCP socket of this shard's own.
    Tcp(Socket),
    /// A duplicate of a listening stream socket systemd passed (TCP or UNIX):
    /// every shard accepts on its own duplicate of the one socket.
    Inherited(Socket),
    /// A UNIX endpoint: shard 0 binds and accepts (`route` names it in the hand-off).
    Unix {
        path: PathBuf,
        mode: u32,
        backlog: u32,
        route: usize,
    },
    /// A datagram endpoint: this shard's bound socket (`None`: another shard
    /// serves it, as for `unixgram:` on every shard but 0).
    Datagram {
        sock: Option<Socket>,
        max_packet_size: usize,
        /// The socket file to remove at stop (`unixgram:`).
        unlink: Option<PathBuf>,
    },
}

/// Binds `ep` for `shards` shards; returns each shard's part and the bound address.
pub(crate) fn bind(
    ep: &ServerEndpoint,
    shards: usize,
) -> Result<(Vec<Bound>, Address), ServerError> {
    let err = |error: io::Error| ServerError::Bind {
        endpoint: ep.to_string(),
        error,
    };
    match ep {
        ServerEndpoint::Tcp {
            port,
            interface,
            backlog,
        } => {
            let mut addr = std::net::SocketAddr::new(*interface, *port);
            let mut sockets = Vec::with_capacity(shards);
            for _ in 0..shards {
                let s = tcp_socket(addr, *backlog).map_err(err)?;
                if addr.port() == 0 {
                    let local = s.local_addr().map_err(err)?;
                    addr.set_port(local.as_socket().map(|a| a.port()).unwrap_or(0));
                }
                sockets.push(Bound::Tcp(s));
            }
            Ok((sockets, Address::Tcp(addr)))
        }
        ServerEndpoint::Unix {
            path,
            mode,
            lockfile,
            backlog,
        } => {
            prepare_unix_path(path, *lockfile).map_err(err)?;
            let route = next_route();
            let parts = (0..shards)
                .map(|_| Bound::Unix {
                    path: path.clone(),
                    mode: *mode,
                    backlog: *backlog,
                    route,
                })
                .collect();
            Ok((parts, Address::Unix(Some(path.clone()))))
        }
        ServerEndpoint::Udp {
            port,
            interface,
            max_packet_size,
        } => {
            let mut addr = std::net::SocketAddr::new(*interface, *port);
            let mut parts = Vec::with_capacity(shards);
            for _ in 0..shards {
                let s = udp_socket(addr).map_err(err)?;
                if addr.port() == 0 {
                    let local = s.local_addr().map_err(err)?;
                    addr.set_port(local.as_socket().map(|a| a.port()).unwrap_or(0));
                }
                parts.push(Bound::Datagram {
                    sock: Some(s),
                    max_packet_size: *max_packet_size,
                    unlink: None,
                });
            }
            Ok((parts, Address::Udp(addr)))
        }
        ServerEndpoint::Unixgram {
            path,
            max_packet_size,
        } => {
            prepare_unixgram_path(path).map_err(err)?;
            let s = Socket::new(Domain::UNIX, Type::DGRAM.cloexec(), None).map_err(err)?;
            s.bind(&SockAddr::unix(path).map_err(err)?).map_err(err)?;
            let mut parts = vec![Bound::Datagram {
                sock: Some(s),
                max_packet_size: *max_packet_size,
                unlink: Some(path.clone()),
            }];
            parts.extend((1..shards).map(|_| Bound::Datagram {
                sock: None,
                max_packet_size: *max_packet_size,
                unlink: None,
            }));
            Ok((parts, Address::Unixgram(path.clone())))
        }
        ServerEndpoint::Systemd { domain, socket } => {
            let fd = socket.fd().map_err(err)?;
            // SAFETY: `fd` is a socket systemd passed to this process (LISTEN_PID is
            // ours, and it is below 3 + LISTEN_FDS); nothing closes it, and it is
            // only borrowed here to be duplicated, once per shard.
            let inherited = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            let mut sockets = Vec::with_capacity(shards);
            for _ in 0..shards {
                let s = Socket::from(inherited.try_clone_to_owned().map_err(err)?);
                // The ring waits for readiness itself: its sockets are blocking.
                s.set_nonblocking(false).map_err(err)?;
                sockets.push(s);
            }
            let local = sockets[0].local_addr().map_err(err)?;
            let addr = match (domain, local.as_socket()) {
                (SystemdDomain::Inet, Some(a)) if a.is_ipv4() => Address::Tcp(a),
                (SystemdDomain::Inet6, Some(a)) if a.is_ipv6() => Address::Tcp(a),
                (SystemdDomain::Unix, None) if local.is_unix() => {
                    Address::Unix(local.as_pathname().map(Path::to_path_buf))
                }
                _ => {
                    return Err(err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("the inherited socket is not a domain={domain} stream socket"),
                    )))
                }
            };
            if sockets[0].r#type().map_err(err)? != Type::STREAM {
                return Err(err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "the inherited socket is not a stream socket",
                )));
            }
            Ok((sockets.into_iter().map(Bound::Inherited).collect(), addr))
        }
    }
}

fn next_route() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A UDP socket of a shard: in the port's SO_REUSEPORT group, so every shard
/// binds the same port and the kernel spreads flows over them.
fn udp_socket(addr: std::net::SocketAddr) -> io::Result<Socket> {
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let s = Socket::new(domain, Type::DGRAM.cloexec(), Some(SockProtocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    // SO_REUSEPORT only: for UDP, SO_REUSEADDR would let any other socket with it
    // share the port outside the group (and the port-group probe could not see it).
    s.set_reuse_port(true)?;
    s.bind(&SockAddr::from(addr))?;
    Ok(s)
}

/// Removes a stale UNIX datagram socket file; refuses a path that is not a socket.
/// (A datagram socket has no listener to probe: a live one is replaced too, as
/// Twisted's `listenUNIXDatagram` would fail instead; weft's port-group check
/// refuses the same path twice in one process.)
fn prepare_unixgram_path(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "the path exists and is not a socket",
        )),
        Err(_) => Ok(()),
    }
}

fn tcp_socket(addr: std::net::SocketAddr, backlog: u32) -> io::Result<Socket> {
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let s = Socket::new(domain, Type::STREAM.cloexec(), Some(SockProtocol::TCP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.bind(&SockAddr::from(addr))?;
    s.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(s)
}

/// Refuses a path held by a live server; removes a stale socket file (a socket no
/// one answers on) when `lockfile` allows, as Twisted's lockfile does.
fn prepare_unix_path(path: &Path, lockfile: bool) -> io::Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "the path exists and is not a socket",
        ));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "another server is listening on this socket",
        )),
        Err(_) if lockfile => std::fs::remove_file(path),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "a stale socket file exists (lockfile=0 forbids removing it)",
        )),
    }
}

/// Binds a UNIX listener on this shard and applies the endpoint's file mode.
pub(crate) fn unix_listener(path: &Path, mode: u32, backlog: u32) -> io::Result<Socket> {
    let s = Socket::new(Domain::UNIX, Type::STREAM.cloexec(), None)?;
    s.bind(&SockAddr::unix(path)?)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    s.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(s)
}

/// What an accept error means for the accept loop.
pub(crate) enum AcceptFailure {
    /// Out of descriptors or memory: back off, then retry.
    Exhausted,
    /// This one connection failed; go on at once.
    Skip,
    /// Unexpected: log and retry after a pause.
    Other,
}

pub(crate) fn classify(e: &io::Error) -> AcceptFailure {
    match e.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
            AcceptFailure::Exhausted
        }
        Some(libc::ECONNABORTED | libc::EPERM | libc::EINTR | libc::EAGAIN | libc::EPROTO) => {
            AcceptFailure::Skip
        }
        _ => AcceptFailure::Other,
    }
}

/// The back-off after running out of descriptors: 10 ms doubling to 1 s.
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    pub(crate) const FIRST: Duration = Duration::from_millis(10);
    pub(crate) const MAX: Duration = Duration::from_secs(1);

    pub(crate) fn new() -> Backoff {
        Backoff { next: Self::FIRST }
    }

    /// Returns the pause to take now, and whether this starts a new episode.
    pub(crate) fn step(&mut self) -> (Duration, bool) {
        let d = self.next;
        self.next = (d * 2).min(Self::MAX);
        (d, d == Self::FIRST)
    }

    pub(crate) fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

/// Channels that carry accepted UNIX connections from shard 0 to the others.
#[derive(Clone)]
pub(crate) struct Handoff {
    senders: Arc<Vec<Sender<(usize, OwnedFd)>>>,
    receivers: Arc<Vec<Receiver<(usize, OwnedFd)>>>,
    bells: Arc<Vec<Arc<Doorbell>>>,
}

impl Handoff {
    pub(crate) fn new(bells: Vec<Arc<Doorbell>>) -> Handoff {
        // Bounded: a shard that cannot keep up pushes back on shard 0's accept.
        let (senders, receivers) = bells
            .iter()
            .map(|_| crossbeam_channel::bounded(1024))
            .unzip();
        Handoff {
            senders: Arc::new(senders),
            receivers: Arc::new(receivers),
            bells: Arc::new(bells),
        }
    }

    /// Sends a connection (for the listener `route`) to `shard`; gives it back if
    /// that shard's channel is full.
    pub(crate) fn send(&self, shard: usize, route: usize, fd: OwnedFd) -> Result<(), OwnedFd> {
        match self.senders[shard].try_send((route, fd)) {
            Ok(()) => {
                self.bells[shard].ring();
                Ok(())
            }
            Err(e) => Err(e.into_inner().1),
        }
    }

    /// Takes one connection handed to `shard`, if any.
    pub(crate) fn try_receive(&self, shard: usize) -> Option<(usize, OwnedFd)> {
        self.receivers[shard].try_recv().ok()
    }

    /// Tells whether connections wait for `shard`.
    pub(crate) fn pending(&self, shard: usize) -> bool {
        !self.receivers[shard].is_empty()
    }
}
