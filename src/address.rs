//! Connection addresses: what `peer()` and `host()` return (Twisted's `IPv4Address`,
//! `IPv6Address` and `UNIXAddress`).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The address of one end of a connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// A TCP address, IPv4 or IPv6.
    Tcp(SocketAddr),
    /// A UNIX-domain socket path; `None` for an unnamed (client) socket.
    Unix(Option<PathBuf>),
    /// A UDP port's address (what a server's `udp:` endpoint is bound to).
    Udp(SocketAddr),
    /// A UNIX datagram socket's path (a server's `unixgram:` endpoint).
    Unixgram(PathBuf),
}

impl Address {
    /// Returns the socket address of a TCP or UDP endpoint, `None` for UNIX.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match self {
            Address::Tcp(a) | Address::Udp(a) => Some(*a),
            Address::Unix(_) | Address::Unixgram(_) => None,
        }
    }

    /// Returns the host part as text: the IP for TCP, the path for UNIX (Twisted's
    /// `addr.host`), which is what the chat server uses as a default name.
    pub fn host(&self) -> String {
        match self {
            Address::Tcp(a) | Address::Udp(a) => a.ip().to_string(),
            Address::Unix(Some(p)) | Address::Unixgram(p) => p.display().to_string(),
            Address::Unix(None) => String::from("unix"),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp(a) => write!(f, "tcp:{a}"),
            Address::Unix(Some(p)) => write!(f, "unix:{}", p.display()),
            Address::Unix(None) => f.write_str("unix:(unnamed)"),
            Address::Udp(a) => write!(f, "udp:{a}"),
            Address::Unixgram(p) => write!(f, "unixgram:{}", p.display()),
        }
    }
}
