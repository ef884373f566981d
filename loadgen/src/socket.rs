//! Non-blocking TCP sockets through socket2: connect, send, receive, and errno names.
//!
//! Everything here is one system call deep, so that the cost of a request is exactly the
//! `send` and `recv` it needs (`strace -c` agrees). Sends use `MSG_NOSIGNAL`: a peer that
//! resets the connection is an error to count, not a `SIGPIPE` that kills the run. The
//! event loops own their sockets as `OwnedFd`s (what the poller registers); socket2's
//! `SockRef` borrows one for each call, with no `unsafe` here.

use std::io::{self, Read};
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::OwnedFd;
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, SockRef, Socket, Type};

/// Resolves `target` (`HOST:PORT`) to its first address, once, before any event loop runs.
///
/// # Errors
/// A message naming the target when it does not parse or resolve.
pub fn resolve(target: &str) -> Result<SocketAddr, String> {
    target
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve target {target:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("target {target:?} resolved to no address"))
}

/// Resolves a comma-separated list of targets (`HOST:PORT,HOST:PORT`), each to its first
/// address, in the order given.
///
/// # Errors
/// A message naming the first target that does not parse or resolve, or an empty item.
pub fn resolve_all(targets: &str) -> Result<Vec<SocketAddr>, String> {
    targets
        .split(',')
        .map(|t| {
            if t.is_empty() {
                Err(format!("empty target in {targets:?}"))
            } else {
                resolve(t)
            }
        })
        .collect()
}

/// Whether a non-blocking connect finished at once or is under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectState {
    /// The connection is established.
    Connected,
    /// The handshake is under way: wait for writability, then [`take_error`].
    InProgress,
}

/// Starts a non-blocking connect to `addr` with `TCP_NODELAY` set.
///
/// # Errors
/// The `socket` or `connect` error (other than `EINPROGRESS`).
pub fn connect(addr: &SocketAddr) -> io::Result<(OwnedFd, ConnectState)> {
    let sock = Socket::new(
        Domain::for_address(*addr),
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    )?;
    // A failure only loses a tuning option, so it is ignored.
    let _ = sock.set_tcp_nodelay(true);
    let state = match sock.connect(&SockAddr::from(*addr)) {
        Ok(()) => ConnectState::Connected,
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => ConnectState::InProgress,
        Err(e) => return Err(e),
    };
    Ok((sock.into(), state))
}

/// Returns the outcome of a non-blocking connect once the socket is writable
/// (`SO_ERROR`): `None` when it connected.
///
/// # Errors
/// The `getsockopt` error itself.
pub fn take_error(fd: &OwnedFd) -> io::Result<Option<io::Error>> {
    SockRef::from(fd).take_error()
}

/// Makes `close` send a reset at once instead of a FIN (`SO_LINGER` with a zero timeout),
/// so that a connection storm does not leave its ports in `TIME_WAIT`.
pub fn set_linger_zero(fd: &OwnedFd) {
    // A failure only means a FIN instead of a reset, so it is ignored.
    let _ = SockRef::from(fd).set_linger(Some(Duration::ZERO));
}

/// Receives into `buf`; `Ok(0)` is end of stream.
///
/// # Errors
/// The `recv` error (`WouldBlock` when nothing is there).
#[inline]
pub fn recv(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    (&*SockRef::from(fd)).read(buf)
}

/// Sends from `buf` without raising `SIGPIPE`; returns how many bytes the kernel took.
///
/// # Errors
/// The `send` error (`WouldBlock` when the send buffer is full).
#[inline]
pub fn send(fd: &OwnedFd, buf: &[u8]) -> io::Result<usize> {
    SockRef::from(fd).send_with_flags(buf, libc::MSG_NOSIGNAL)
}

/// Returns the symbolic name of an errno, for errors grouped by kind.
pub fn errno_name(errno: i32) -> String {
    let name = match errno {
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::ECONNRESET => "ECONNRESET",
        libc::ECONNABORTED => "ECONNABORTED",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EMFILE => "EMFILE",
        libc::ENFILE => "ENFILE",
        libc::EPIPE => "EPIPE",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::ENOBUFS => "ENOBUFS",
        libc::ENOMEM => "ENOMEM",
        libc::EAGAIN => "EAGAIN",
        libc::EACCES => "EACCES",
        libc::EPERM => "EPERM",
        libc::EINTR => "EINTR",
        other => return format!("errno {other}"),
    };
    name.to_string()
}

/// Returns the errno name of an I/O error, or its kind when it has no errno.
pub fn error_name(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(e) => errno_name(e),
        None => format!("{:?}", err.kind()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_of_targets_resolves_in_order_and_an_empty_item_is_named() {
        let a = resolve_all("127.0.0.1:1,127.0.0.1:2").unwrap();
        assert_eq!(
            a,
            [
                "127.0.0.1:1".parse().unwrap(),
                "127.0.0.1:2".parse().unwrap()
            ]
        );
        assert_eq!(resolve_all("127.0.0.1:3").unwrap().len(), 1);
        assert!(resolve_all("127.0.0.1:1,")
            .unwrap_err()
            .contains("empty target"));
        assert!(resolve_all("127.0.0.1:1,nope")
            .unwrap_err()
            .contains("\"nope\""));
    }
}
