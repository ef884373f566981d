//! Why a datagram transport refused a request.

use std::fmt;
use std::io;

/// Why a [`DatagramTransport`](super::DatagramTransport) call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum DatagramError {
    /// The host is not an IP literal (Twisted's `InvalidAddressError`): datagram
    /// transports never resolve names.
    InvalidAddress(String),
    /// `connect` was called on a port already connected (Twisted raises
    /// `RuntimeError`).
    AlreadyConnected,
    /// `write` without an address on a port that is not connected.
    NotConnected,
    /// `write` to an address other than the connected peer.
    WrongPeer,
    /// The datagram is longer than the protocol allows (Twisted's
    /// `MessageLengthError`).
    MessageTooLong {
        /// Its length.
        len: usize,
        /// The most this port can send in one datagram.
        max: usize,
    },
    /// The port's outbox is full: the datagram is dropped (and counted).
    OutboxFull,
    /// The address family does not fit this port (an IPv6 peer on a `udp:` port,
    /// a multicast call on a UNIX port).
    WrongFamily,
    /// The port has stopped (the server is shutting down).
    Closed,
    /// A socket option or connect failed.
    Io(io::Error),
}

impl fmt::Display for DatagramError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatagramError::InvalidAddress(h) => {
                write!(
                    f,
                    "{h:?} is not an IP address (datagram ports do not resolve names)"
                )
            }
            DatagramError::AlreadyConnected => f.write_str("already connected"),
            DatagramError::NotConnected => {
                f.write_str("no address given and the port is not connected")
            }
            DatagramError::WrongPeer => {
                f.write_str("a connected port writes only to its connected peer")
            }
            DatagramError::MessageTooLong { len, max } => {
                write!(
                    f,
                    "a datagram of {len} bytes is longer than the {max} allowed"
                )
            }
            DatagramError::OutboxFull => f.write_str("the port's outbox is full"),
            DatagramError::WrongFamily => f.write_str("the address family does not fit this port"),
            DatagramError::Closed => f.write_str("the port has stopped"),
            DatagramError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for DatagramError {}

impl From<io::Error> for DatagramError {
    fn from(e: io::Error) -> Self {
        DatagramError::Io(e)
    }
}
