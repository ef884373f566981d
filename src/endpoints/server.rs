//! Server endpoints: [`ServerEndpoint`], parsed from and printed as Twisted's
//! `serverFromString` strings (the table is in the module above).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::str::FromStr;

use super::syntax::{escape, fields, parse_num, tokenize, EndpointError};
use super::systemd::{Inherited, SystemdDomain};
use std::collections::BTreeMap;

/// The listen backlog used when a string gives none.
pub const DEFAULT_BACKLOG: u32 = 1024;
/// The largest `maxPacketSize` a datagram endpoint may ask for.
pub const MAX_PACKET_SIZE_LIMIT: usize = 65_536;

/// The UNIX socket file mode used when a string gives none (Twisted's `666`).
pub const DEFAULT_UNIX_MODE: u32 = 0o666;

/// A parsed server endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEndpoint {
    /// TCP over IPv4 (`tcp:`) or IPv6 (`tcp6:`).
    Tcp {
        /// The port; 0 asks the OS for a free one.
        port: u16,
        /// The local address to bind.
        interface: IpAddr,
        /// The listen backlog.
        backlog: u32,
    },
    /// A UNIX-domain stream socket.
    Unix {
        /// The socket file.
        path: PathBuf,
        /// The file mode set on the socket file.
        mode: u32,
        /// The listen backlog.
        backlog: u32,
        /// Whether a stale socket file left by a dead server may be replaced
        /// (Twisted's `lockfile`, default on for strings).
        lockfile: bool,
    },
    /// A listening socket inherited from systemd (socket activation); every shard
    /// accepts on it.
    Systemd {
        /// The address family it must have.
        domain: SystemdDomain,
        /// Which of the inherited sockets.
        socket: Inherited,
    },
    /// UDP over IPv4 (`udp:`) or IPv6 (`udp6:`): one socket per shard.
    Udp {
        /// The port; 0 asks the OS for a free one.
        port: u16,
        /// The local address to bind.
        interface: IpAddr,
        /// The longest datagram received whole (Twisted's `maxPacketSize`).
        max_packet_size: usize,
    },
    /// A UNIX-domain datagram socket (`unixgram:`), served by shard 0.
    Unixgram {
        /// The socket file.
        path: PathBuf,
        /// The longest datagram received whole.
        max_packet_size: usize,
    },
}

impl ServerEndpoint {
    /// Tells whether this endpoint carries datagrams (`udp:`, `udp6:`,
    /// `unixgram:`), served by a `DatagramProtocol` rather than a factory.
    pub fn is_datagram(&self) -> bool {
        matches!(
            self,
            ServerEndpoint::Udp { .. } | ServerEndpoint::Unixgram { .. }
        )
    }
}

impl FromStr for ServerEndpoint {
    type Err = EndpointError;

    fn from_str(desc: &str) -> Result<Self, EndpointError> {
        if desc.is_empty() {
            return Err(EndpointError::Empty);
        }
        let (mut positional, keyword) = tokenize(desc)?;
        let kind = positional.remove(0).to_ascii_lowercase();
        let (kind, order, allowed): (&'static str, &[&'static str], &[&'static str]) =
            match kind.as_str() {
                "tcp" => (
                    "tcp",
                    &["port", "interface", "backlog"],
                    &["port", "interface", "backlog"],
                ),
                "tcp6" => (
                    "tcp6",
                    &["port", "backlog", "interface"],
                    &["port", "interface", "backlog"],
                ),
                "unix" => (
                    "unix",
                    &["address", "mode", "backlog", "lockfile"],
                    &["address", "mode", "backlog", "lockfile"],
                ),
                "systemd" => (
                    "systemd",
                    &["domain", "index"],
                    &["domain", "index", "name"],
                ),
                "udp" => (
                    "udp",
                    &["port", "interface", "maxPacketSize"],
                    &["port", "interface", "maxPacketSize"],
                ),
                "udp6" => (
                    "udp6",
                    &["port", "interface", "maxPacketSize"],
                    &["port", "interface", "maxPacketSize"],
                ),
                "unixgram" => (
                    "unixgram",
                    &["address", "maxPacketSize"],
                    &["address", "maxPacketSize"],
                ),
                _ => return Err(EndpointError::UnknownType(kind)),
            };
        let f = fields(kind, order, allowed, positional, keyword)?;
        if matches!(kind, "udp" | "udp6" | "unixgram") {
            return parse_datagram(kind, &f);
        }
        if kind == "systemd" {
            let domain = f.get("domain").ok_or(EndpointError::MissingField {
                kind,
                field: "domain",
            })?;
            let domain = SystemdDomain::parse(domain).ok_or_else(|| EndpointError::BadValue {
                field: "domain",
                value: domain.clone(),
                expected: "INET, INET6 or UNIX",
            })?;
            let socket = match (f.get("index"), f.get("name")) {
                (Some(i), None) => Inherited::Index(parse_num("index", i, "a whole number")?),
                (None, Some(n)) => Inherited::Name(n.clone()),
                (Some(_), Some(_)) => return Err(EndpointError::Duplicate("index")),
                (None, None) => {
                    return Err(EndpointError::MissingField {
                        kind,
                        field: "index",
                    })
                }
            };
            return Ok(ServerEndpoint::Systemd { domain, socket });
        }
        let backlog = match f.get("backlog") {
            Some(b) => parse_num("backlog", b, "a whole number")?,
            None => DEFAULT_BACKLOG,
        };
        if kind == "unix" {
            let path =
                f.get("address")
                    .filter(|p| !p.is_empty())
                    .ok_or(EndpointError::MissingField {
                        kind,
                        field: "address",
                    })?;
            let mode = match f.get("mode") {
                Some(m) => u32::from_str_radix(m, 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| EndpointError::BadValue {
                        field: "mode",
                        value: m.clone(),
                        expected: "an octal file mode such as 660",
                    })?,
                None => DEFAULT_UNIX_MODE,
            };
            let lockfile = match f.get("lockfile").map(String::as_str) {
                None | Some("1") => true,
                Some("0") => false,
                Some(other) => {
                    return Err(EndpointError::BadValue {
                        field: "lockfile",
                        value: other.to_string(),
                        expected: "0 or 1",
                    })
                }
            };
            return Ok(ServerEndpoint::Unix {
                path: PathBuf::from(path),
                mode,
                backlog,
                lockfile,
            });
        }
        let (port, interface) = port_and_interface(kind, kind == "tcp", &f)?;
        Ok(ServerEndpoint::Tcp {
            port,
            interface,
            backlog,
        })
    }
}

/// The `port` and `interface` fields of an IP endpoint (`v4`: `tcp`/`udp`, else the
/// IPv6 kinds); the interface defaults to the unspecified address.
fn port_and_interface(
    kind: &'static str,
    v4: bool,
    f: &BTreeMap<&'static str, String>,
) -> Result<(u16, IpAddr), EndpointError> {
    let port = f.get("port").ok_or(EndpointError::MissingField {
        kind,
        field: "port",
    })?;
    let port = parse_num("port", port, "a port number from 0 to 65535")?;
    let interface = match f.get("interface") {
        Some(i) if v4 => IpAddr::V4(parse_num(
            "interface",
            i,
            "an IPv4 address such as 127.0.0.1",
        )?),
        Some(i) => IpAddr::V6(parse_num("interface", i, "an IPv6 address such as ::1")?),
        None if v4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        None => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    Ok((port, interface))
}

/// The datagram endpoints' fields, collected by `fields`.
fn parse_datagram(
    kind: &'static str,
    f: &BTreeMap<&'static str, String>,
) -> Result<ServerEndpoint, EndpointError> {
    let max_packet_size = match f.get("maxPacketSize") {
        Some(m) => m
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PACKET_SIZE_LIMIT).contains(n))
            .ok_or_else(|| EndpointError::BadValue {
                field: "maxPacketSize",
                value: m.clone(),
                expected: "a number of bytes from 1 to 65536",
            })?,
        None => crate::datagram::DEFAULT_MAX_PACKET_SIZE,
    };
    if kind == "unixgram" {
        let path =
            f.get("address")
                .filter(|p| !p.is_empty())
                .ok_or(EndpointError::MissingField {
                    kind,
                    field: "address",
                })?;
        return Ok(ServerEndpoint::Unixgram {
            path: PathBuf::from(path),
            max_packet_size,
        });
    }
    let (port, interface) = port_and_interface(kind, kind == "udp", f)?;
    Ok(ServerEndpoint::Udp {
        port,
        interface,
        max_packet_size,
    })
}

impl fmt::Display for ServerEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerEndpoint::Tcp {
                port,
                interface,
                backlog,
            } => {
                let kind = if interface.is_ipv4() { "tcp" } else { "tcp6" };
                write!(
                    f,
                    "{kind}:{port}:interface={}:backlog={backlog}",
                    escape(&interface.to_string())
                )
            }
            ServerEndpoint::Unix {
                path,
                mode,
                backlog,
                lockfile,
            } => write!(
                f,
                "unix:{}:mode={mode:o}:backlog={backlog}:lockfile={}",
                escape(&path.display().to_string()),
                u8::from(*lockfile)
            ),
            ServerEndpoint::Systemd { domain, socket } => {
                write!(f, "systemd:domain={domain}:{socket}")
            }
            ServerEndpoint::Udp {
                port,
                interface,
                max_packet_size,
            } => {
                let kind = if interface.is_ipv4() { "udp" } else { "udp6" };
                write!(
                    f,
                    "{kind}:{port}:interface={}:maxPacketSize={max_packet_size}",
                    escape(&interface.to_string())
                )
            }
            ServerEndpoint::Unixgram {
                path,
                max_packet_size,
            } => write!(
                f,
                "unixgram:{}:maxPacketSize={max_packet_size}",
                escape(&path.display().to_string())
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ServerEndpoint, EndpointError> {
        s.parse()
    }

    #[test]
    fn tokenize_follows_twisted() {
        assert_eq!(
            tokenize(r"tcp:80:interface=a\:b").unwrap(),
            (
                vec!["tcp".into(), "80".into()],
                vec![("interface".into(), "a:b".into())]
            )
        );
        assert_eq!(
            tokenize("x:a=b=c").unwrap().1,
            vec![("a".to_string(), "b=c".to_string())]
        );
        assert_eq!(tokenize("tcp:80\\"), Err(EndpointError::TrailingEscape));
    }

    #[test]
    fn tcp_positional_and_keyword_forms() {
        let want = ServerEndpoint::Tcp {
            port: 8080,
            interface: "127.0.0.1".parse().unwrap(),
            backlog: DEFAULT_BACKLOG,
        };
        assert_eq!(parse("tcp:8080:127.0.0.1").unwrap(), want);
        assert_eq!(parse("tcp:8080:interface=127.0.0.1").unwrap(), want);
        assert_eq!(parse("TCP:port=8080:interface=127.0.0.1").unwrap(), want);
        assert_eq!(
            parse("tcp:0").unwrap(),
            ServerEndpoint::Tcp {
                port: 0,
                interface: "0.0.0.0".parse().unwrap(),
                backlog: DEFAULT_BACKLOG
            }
        );
    }

    #[test]
    fn tcp6_takes_escaped_colons_and_backlog_second() {
        assert_eq!(
            parse(r"tcp6:9000:5:interface=\:\:1").unwrap(),
            ServerEndpoint::Tcp {
                port: 9000,
                interface: "::1".parse().unwrap(),
                backlog: 5
            }
        );
    }

    #[test]
    fn unix_mode_is_octal_and_lockfile_defaults_on() {
        assert_eq!(
            parse("unix:/tmp/x.sock:mode=660").unwrap(),
            ServerEndpoint::Unix {
                path: "/tmp/x.sock".into(),
                mode: 0o660,
                backlog: DEFAULT_BACKLOG,
                lockfile: true
            }
        );
    }

    #[test]
    fn errors_name_the_bad_field() {
        let msg = |s: &str| parse(s).unwrap_err().to_string();
        assert!(msg("tcp:http").contains("`port`"));
        assert!(msg("tcp:70000").contains("`port`"));
        assert!(msg("tcp:80:backlog=x").contains("`backlog`"));
        assert!(msg("tcp:80:interface=::1").contains("`interface`"));
        assert!(msg("tcp:80:color=red").contains("`color`"));
        assert!(msg("tcp").contains("`port`"));
        assert!(msg("unix:/x:mode=999").contains("`mode`"));
        assert!(msg("sctp:53").contains("unknown endpoint type"));
        assert!(msg("tcp:80:1.2.3.4:5:6").contains("extra"));
        assert!(msg("tcp:80:port=81").contains("twice"));
        assert_eq!(parse(""), Err(EndpointError::Empty));
    }

    #[test]
    fn udp_defaults_follow_twisteds_listen_udp() {
        assert_eq!(
            parse("udp:9999").unwrap(),
            ServerEndpoint::Udp {
                port: 9999,
                interface: "0.0.0.0".parse().unwrap(),
                max_packet_size: 8192
            }
        );
        assert_eq!(
            parse("udp:7:127.0.0.1:512").unwrap(),
            parse("udp:7:interface=127.0.0.1:maxPacketSize=512").unwrap()
        );
        assert_eq!(
            parse(r"udp6:7:interface=\:\:1").unwrap(),
            ServerEndpoint::Udp {
                port: 7,
                interface: "::1".parse().unwrap(),
                max_packet_size: 8192
            }
        );
        assert_eq!(
            parse("unixgram:/tmp/e.sock:maxPacketSize=64").unwrap(),
            ServerEndpoint::Unixgram {
                path: "/tmp/e.sock".into(),
                max_packet_size: 64
            }
        );
        assert!(parse("udp:7").unwrap().is_datagram());
        assert!(!parse("tcp:7").unwrap().is_datagram());
    }

    #[test]
    fn udp_errors_name_the_bad_field() {
        let msg = |s: &str| parse(s).unwrap_err().to_string();
        assert!(msg("udp:7:maxPacketSize=0").contains("`maxPacketSize`"));
        assert!(msg("udp:7:maxPacketSize=65537").contains("`maxPacketSize`"));
        assert!(msg("udp:7:interface=::1").contains("`interface`"));
        assert!(msg("udp6:7:interface=1.2.3.4").contains("`interface`"));
        assert!(msg("udp:7:backlog=5").contains("`backlog`"));
        assert!(msg("udp").contains("`port`"));
        assert!(msg("unixgram:").contains("`address`"));
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "tcp:8000:interface=127.0.0.1:backlog=7",
            r"tcp6:1:interface=\:\:1:backlog=9",
            r"unix:/tmp/a\:b:mode=600:backlog=3:lockfile=0",
            "udp:53:interface=127.0.0.1:maxPacketSize=512",
            r"udp6:0:interface=\:\:1:maxPacketSize=8192",
            r"unixgram:/tmp/d\:g:maxPacketSize=100",
        ] {
            let e = parse(s).unwrap();
            assert_eq!(parse(&e.to_string()).unwrap(), e, "{s}");
        }
    }
}
