//! A datagram peer's (or port's) address: an IP address and port, or a UNIX path.
//!
//! Held inline (a `sockaddr_storage`, no heap), so receiving a datagram allocates
//! nothing for its sender's address.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use socket2::SockAddr;

use super::DatagramError;

/// Where a datagram came from or goes to (Twisted's `(host, port)` tuple for UDP,
/// a path for UNIX datagrams).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DatagramAddress {
    raw: SockAddr,
}

impl DatagramAddress {
    /// Parses `host` as an IP literal, as Twisted's UDP `write` and `connect` do;
    /// `"<broadcast>"` means 255.255.255.255.
    ///
    /// # Errors
    /// [`DatagramError::InvalidAddress`] for anything else: names are never
    /// resolved.
    ///
    /// # Examples
    /// ```
    /// use weft::datagram::DatagramAddress;
    /// assert_eq!(DatagramAddress::parse("127.0.0.1", 7).unwrap().to_string(), "udp:127.0.0.1:7");
    /// assert!(DatagramAddress::parse("localhost", 7).is_err());
    /// ```
    pub fn parse(host: &str, port: u16) -> Result<DatagramAddress, DatagramError> {
        let ip = if host == "<broadcast>" {
            IpAddr::V4(Ipv4Addr::BROADCAST)
        } else {
            host.parse::<IpAddr>()
                .map_err(|_| DatagramError::InvalidAddress(host.to_string()))?
        };
        Ok(SocketAddr::new(ip, port).into())
    }

    /// Returns the address of a UNIX datagram socket bound at `path`.
    ///
    /// # Errors
    /// The path is too long for a socket address.
    pub fn unix(path: &Path) -> std::io::Result<DatagramAddress> {
        SockAddr::unix(path).map(DatagramAddress::from_raw)
    }

    pub(crate) fn from_raw(raw: SockAddr) -> DatagramAddress {
        DatagramAddress { raw }
    }

    pub(crate) fn raw(&self) -> &SockAddr {
        &self.raw
    }

    /// Returns the IP address and port, `None` for a UNIX address.
    pub fn ip(&self) -> Option<SocketAddr> {
        self.raw.as_socket()
    }

    /// Returns the UNIX path, `None` for an IP address or an unnamed UNIX socket.
    pub fn path(&self) -> Option<&Path> {
        self.raw.as_pathname()
    }

    /// Tells whether this is a UNIX-domain address.
    pub fn is_unix(&self) -> bool {
        self.raw.is_unix()
    }

    /// Returns the host part as text: the IP, or the path (Twisted's `addr.host`).
    pub fn host(&self) -> String {
        match (self.ip(), self.path()) {
            (Some(a), _) => a.ip().to_string(),
            (None, Some(p)) => p.display().to_string(),
            (None, None) => "unixgram".to_string(),
        }
    }
}

impl From<SocketAddr> for DatagramAddress {
    fn from(a: SocketAddr) -> Self {
        DatagramAddress { raw: a.into() }
    }
}

impl fmt::Display for DatagramAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.ip(), self.path()) {
            (Some(a), _) => write!(f, "udp:{a}"),
            (None, Some(p)) => write!(f, "unixgram:{}", p.display()),
            (None, None) => f.write_str("unixgram:(unnamed)"),
        }
    }
}

impl fmt::Debug for DatagramAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatagramAddress({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_literals_parse_and_names_are_refused() {
        let a = DatagramAddress::parse("::1", 53).unwrap();
        assert_eq!(a.ip(), Some("[::1]:53".parse().unwrap()));
        assert_eq!(a.to_string(), "udp:[::1]:53");
        assert_eq!(
            DatagramAddress::parse("<broadcast>", 9).unwrap().ip(),
            Some("255.255.255.255:9".parse().unwrap())
        );
        for bad in ["localhost", "example.org", "", "1.2.3", "127.0.0.1:5"] {
            assert!(
                matches!(
                    DatagramAddress::parse(bad, 1),
                    Err(DatagramError::InvalidAddress(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn unix_addresses_show_their_path() {
        let a = DatagramAddress::unix(Path::new("/tmp/x.sock")).unwrap();
        assert!(a.is_unix());
        assert_eq!(a.ip(), None);
        assert_eq!(a.path(), Some(Path::new("/tmp/x.sock")));
        assert_eq!(a.to_string(), "unixgram:/tmp/x.sock");
    }
}
