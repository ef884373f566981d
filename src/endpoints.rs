//! Endpoint strings in Twisted's `serverFromString` syntax.
//!
//! Grammar (Twisted's `_tokenize`/`_parse`): fields are separated by `:`; a `\`
//! escapes the next character (so `\:` is a literal colon); within a field the first
//! `=` makes it `key=value`, and after it only `:` ends the value (`a=b=c` is key `a`,
//! value `b=c`). Fields without `=` are positional, in the order each type defines.
//!
//! | string | meaning |
//! |---|---|
//! | `tcp:PORT[:interface=ADDR][:backlog=N]` | IPv4 TCP; positional order port, interface, backlog; interface defaults to `0.0.0.0` |
//! | `tcp6:PORT[:backlog=N][:interface=ADDR]` | IPv6 TCP; positional order port, backlog, interface; interface defaults to `::` (escape its colons: `interface=\:\:1`) |
//! | `unix:PATH[:mode=OCTAL][:backlog=N][:lockfile=0/1]` | UNIX socket; mode defaults to `666` |
//! | `systemd:domain=INET:index=N` or `systemd:domain=INET:name=NAME` | a TCP socket inherited from systemd's socket activation (`domain` INET or INET6) |
//! | `udp:PORT[:interface=ADDR][:maxPacketSize=N]` | IPv4 UDP (weft's own string); positional order port, interface, maxPacketSize; interface defaults to `0.0.0.0`, maxPacketSize to 8192 |
//! | `udp6:PORT[:interface=ADDR][:maxPacketSize=N]` | IPv6 UDP, the same fields; interface defaults to `::` |
//! | `unixgram:PATH[:maxPacketSize=N]` | a UNIX datagram socket (weft's own string) |
//!
//! Twisted has no endpoint strings for datagrams (`listenUDP` and
//! `listenUNIXDatagram` take arguments); weft's `udp:`, `udp6:` and `unixgram:` use
//! the argument names of those calls. They are served with
//! [`ServerBuilder::listen_datagram`](crate::ServerBuilder::listen_datagram).
//!
//! # Twisted
//! The default backlog is 1024, not Twisted's 50: a burst of connections to a busy
//! multi-core server should not see SYN retransmits.
//!
//! # Examples
//! ```
//! use weft::endpoints::ServerEndpoint;
//! let e: ServerEndpoint = "tcp:8000:interface=127.0.0.1:backlog=128".parse().unwrap();
//! assert_eq!(e.to_string(), "tcp:8000:interface=127.0.0.1:backlog=128");
//! let err = "tcp:80x".parse::<ServerEndpoint>().unwrap_err();
//! assert!(err.to_string().contains("port"));
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::str::FromStr;

mod systemd;
pub use systemd::{Inherited, SystemdDomain, LISTEN_FDS_START};

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

/// Why an endpoint string was rejected. The message names the bad field.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndpointError {
    /// The string is empty.
    Empty,
    /// The first field names no known endpoint type.
    UnknownType(String),
    /// A required field is missing.
    MissingField {
        /// The endpoint type.
        kind: &'static str,
        /// The missing field.
        field: &'static str,
    },
    /// A field's value does not parse.
    BadValue {
        /// The field.
        field: &'static str,
        /// The value given.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// A `key=value` field this endpoint type does not take.
    UnknownKey {
        /// The endpoint type.
        kind: &'static str,
        /// The key.
        key: String,
    },
    /// More positional fields than the type takes.
    TooManyFields {
        /// The endpoint type.
        kind: &'static str,
        /// The first extra field.
        extra: String,
    },
    /// The same field was given twice (positionally and by key, or twice by key).
    Duplicate(&'static str),
    /// The string ends in a lone `\`.
    TrailingEscape,
    /// A datagram endpoint given where a stream one is needed, or the reverse.
    WrongKind {
        /// The endpoint string.
        endpoint: String,
        /// What was needed.
        expected: &'static str,
    },
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointError::Empty => f.write_str("empty endpoint string"),
            EndpointError::UnknownType(t) => {
                write!(
                    f,
                    "unknown endpoint type {t:?} (expected tcp, tcp6, unix, systemd, udp, udp6 or unixgram)"
                )
            }
            EndpointError::MissingField { kind, field } => {
                write!(f, "{kind} endpoint: missing field `{field}`")
            }
            EndpointError::BadValue {
                field,
                value,
                expected,
            } => write!(
                f,
                "bad value {value:?} for field `{field}`: expected {expected}"
            ),
            EndpointError::UnknownKey { kind, key } => {
                write!(f, "{kind} endpoint: unknown field `{key}`")
            }
            EndpointError::TooManyFields { kind, extra } => {
                write!(f, "{kind} endpoint: unexpected extra field {extra:?}")
            }
            EndpointError::Duplicate(field) => write!(f, "field `{field}` given twice"),
            EndpointError::TrailingEscape => f.write_str("endpoint string ends in a lone `\\`"),
            EndpointError::WrongKind { endpoint, expected } => {
                write!(f, "{endpoint:?} is not {expected}")
            }
        }
    }
}

impl std::error::Error for EndpointError {}

/// The fields of an endpoint string: positional ones, then `key=value` ones.
pub type Fields = (Vec<String>, Vec<(String, String)>);

/// Splits a description into positional fields and `key=value` fields, following
/// Twisted's tokenizer.
pub fn tokenize(desc: &str) -> Result<Fields, EndpointError> {
    let mut positional = Vec::new();
    let mut keyword = Vec::new();
    let mut cur = String::new();
    let mut key: Option<String> = None;
    let mut chars = desc.chars();
    let mut finish = |cur: &mut String, key: &mut Option<String>| match key.take() {
        Some(k) => keyword.push((k, std::mem::take(cur))),
        None => positional.push(std::mem::take(cur)),
    };
    while let Some(c) = chars.next() {
        match c {
            '\\' => cur.push(chars.next().ok_or(EndpointError::TrailingEscape)?),
            ':' => finish(&mut cur, &mut key),
            '=' if key.is_none() => key = Some(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    finish(&mut cur, &mut key);
    Ok((positional, keyword))
}

/// Collects a type's fields: positional ones in `order`, then keyed ones.
fn fields(
    kind: &'static str,
    order: &[&'static str],
    allowed: &[&'static str],
    positional: Vec<String>,
    keyword: Vec<(String, String)>,
) -> Result<BTreeMap<&'static str, String>, EndpointError> {
    let mut out = BTreeMap::new();
    let mut pos = positional.into_iter();
    for (name, value) in order.iter().zip(pos.by_ref()) {
        out.insert(*name, value);
    }
    if let Some(extra) = pos.next() {
        return Err(EndpointError::TooManyFields { kind, extra });
    }
    for (k, v) in keyword {
        let name = allowed
            .iter()
            .find(|a| **a == k)
            .ok_or(EndpointError::UnknownKey { kind, key: k })?;
        if out.insert(*name, v).is_some() {
            return Err(EndpointError::Duplicate(name));
        }
    }
    Ok(out)
}

fn parse_num<T: FromStr>(
    field: &'static str,
    value: &str,
    expected: &'static str,
) -> Result<T, EndpointError> {
    value.parse().map_err(|_| EndpointError::BadValue {
        field,
        value: value.to_string(),
        expected,
    })
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
        let port = f.get("port").ok_or(EndpointError::MissingField {
            kind,
            field: "port",
        })?;
        let port = parse_num("port", port, "a port number from 0 to 65535")?;
        let interface = match f.get("interface") {
            Some(i) if kind == "tcp" => IpAddr::V4(parse_num(
                "interface",
                i,
                "an IPv4 address such as 127.0.0.1",
            )?),
            Some(i) => IpAddr::V6(parse_num("interface", i, "an IPv6 address such as ::1")?),
            None if kind == "tcp" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            None => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        Ok(ServerEndpoint::Tcp {
            port,
            interface,
            backlog,
        })
    }
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
    let port = f.get("port").ok_or(EndpointError::MissingField {
        kind,
        field: "port",
    })?;
    let port = parse_num("port", port, "a port number from 0 to 65535")?;
    let interface = match f.get("interface") {
        Some(i) if kind == "udp" => IpAddr::V4(parse_num(
            "interface",
            i,
            "an IPv4 address such as 127.0.0.1",
        )?),
        Some(i) => IpAddr::V6(parse_num("interface", i, "an IPv6 address such as ::1")?),
        None if kind == "udp" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        None => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    Ok(ServerEndpoint::Udp {
        port,
        interface,
        max_packet_size,
    })
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace(':', "\\:")
        .replace('=', "\\=")
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

// ---------------------------------------------------------------------------
// Client endpoints (Twisted's `clientFromString`).
// ---------------------------------------------------------------------------

/// How long a client connection attempt may take when the string gives no
/// `timeout` (Twisted's default, 30 s).
pub const DEFAULT_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A parsed client endpoint, in Twisted's `clientFromString` syntax.
///
/// | string | meaning |
/// |---|---|
/// | `tcp:HOST:PORT` or `tcp:host=H:port=P[:timeout=S][:bindAddress=IP]` | TCP; positional order host, port; `timeout` in seconds (default 30); `bindAddress` binds the local end to that IP (port 0) before connecting |
/// | `unix:PATH` or `unix:path=P[:timeout=S]` | a UNIX-domain stream socket |
///
/// A host name is resolved off the shard's thread when the connection is made
/// (see [`crate::client::Resolver`]); for `tcp:`, IPv4 addresses are tried first.
///
/// # Twisted
/// `timeout` may have a fraction (`timeout=0.5`), where Twisted passes it through
/// `int()`. The `unix:` client's `lockfile` (PID check) is not supported.
///
/// # Examples
/// ```
/// use weft::endpoints::ClientEndpoint;
/// let e: ClientEndpoint = "tcp:host=localhost:port=6667:timeout=5".parse().unwrap();
/// assert_eq!(e, "tcp:localhost:6667:timeout=5".parse().unwrap());
/// assert_eq!(e.to_string(), "tcp:host=localhost:port=6667:timeout=5");
/// assert!("tcp:localhost".parse::<ClientEndpoint>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientEndpoint {
    /// TCP to a host name or IP literal.
    Tcp {
        /// A host name or an IP address.
        host: String,
        /// The port.
        port: u16,
        /// How long resolution plus connection may take.
        timeout: std::time::Duration,
        /// A local address to bind before connecting (the port is always 0).
        bind_address: Option<IpAddr>,
    },
    /// A UNIX-domain stream socket.
    Unix {
        /// The socket file.
        path: PathBuf,
        /// How long the connection may take.
        timeout: std::time::Duration,
    },
}

impl ClientEndpoint {
    /// Returns the connect timeout.
    pub fn timeout(&self) -> std::time::Duration {
        match self {
            ClientEndpoint::Tcp { timeout, .. } | ClientEndpoint::Unix { timeout, .. } => *timeout,
        }
    }
}

fn parse_timeout(value: &str) -> Result<std::time::Duration, EndpointError> {
    value
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0)
        .and_then(|s| std::time::Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| EndpointError::BadValue {
            field: "timeout",
            value: value.to_string(),
            expected: "a positive number of seconds",
        })
}

impl FromStr for ClientEndpoint {
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
                    &["host", "port"],
                    &["host", "port", "timeout", "bindAddress"],
                ),
                "unix" => ("unix", &["path"], &["path", "timeout"]),
                _ => return Err(EndpointError::UnknownType(kind)),
            };
        // Twisted lets one value be positional and the other a keyword
        // (`tcp:host=H:80`): positional fields fill the slots keywords left free.
        let taken: Vec<&str> = keyword.iter().map(|(k, _)| k.as_str()).collect();
        let order: Vec<&'static str> = order
            .iter()
            .copied()
            .filter(|name| !taken.contains(name))
            .collect();
        let f = fields(kind, &order, allowed, positional, keyword)?;
        let timeout = match f.get("timeout") {
            Some(t) => parse_timeout(t)?,
            None => DEFAULT_CONNECT_TIMEOUT,
        };
        if kind == "unix" {
            let path =
                f.get("path")
                    .filter(|p| !p.is_empty())
                    .ok_or(EndpointError::MissingField {
                        kind,
                        field: "path",
                    })?;
            return Ok(ClientEndpoint::Unix {
                path: PathBuf::from(path),
                timeout,
            });
        }
        let host = f
            .get("host")
            .filter(|h| !h.is_empty())
            .ok_or(EndpointError::MissingField {
                kind,
                field: "host",
            })?
            .clone();
        let port = f.get("port").ok_or(EndpointError::MissingField {
            kind,
            field: "port",
        })?;
        let port = parse_num("port", port, "a port number from 0 to 65535")?;
        let bind_address = match f.get("bindAddress") {
            Some(a) => Some(parse_num("bindAddress", a, "an IP address")?),
            None => None,
        };
        Ok(ClientEndpoint::Tcp {
            host,
            port,
            timeout,
            bind_address,
        })
    }
}

impl fmt::Display for ClientEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let timeout = |f: &mut fmt::Formatter<'_>, t: &std::time::Duration| {
            if *t != DEFAULT_CONNECT_TIMEOUT {
                write!(f, ":timeout={}", t.as_secs_f64())?;
            }
            Ok(())
        };
        match self {
            ClientEndpoint::Tcp {
                host,
                port,
                timeout: t,
                bind_address,
            } => {
                write!(f, "tcp:host={}:port={port}", escape(host))?;
                timeout(f, t)?;
                if let Some(a) = bind_address {
                    write!(f, ":bindAddress={}", escape(&a.to_string()))?;
                }
                Ok(())
            }
            ClientEndpoint::Unix { path, timeout: t } => {
                write!(f, "unix:path={}", escape(&path.display().to_string()))?;
                timeout(f, t)
            }
        }
    }
}

#[cfg(test)]
mod client_tests {
    use super::*;
    use std::time::Duration;

    fn parse(s: &str) -> Result<ClientEndpoint, EndpointError> {
        s.parse()
    }

    fn tcp(host: &str, port: u16) -> ClientEndpoint {
        ClientEndpoint::Tcp {
            host: host.into(),
            port,
            timeout: DEFAULT_CONNECT_TIMEOUT,
            bind_address: None,
        }
    }

    #[test]
    fn client_tcp_positional_keyword_and_mixed_forms_agree() {
        let want = tcp("example.org", 6667);
        assert_eq!(parse("tcp:example.org:6667").unwrap(), want);
        assert_eq!(parse("tcp:host=example.org:port=6667").unwrap(), want);
        assert_eq!(parse("tcp:host=example.org:6667").unwrap(), want);
        assert_eq!(parse("tcp:port=6667:example.org").unwrap(), want);
        assert_eq!(parse("TCP:example.org:6667").unwrap(), want);
    }

    #[test]
    fn client_tcp_timeout_and_bind_address() {
        assert_eq!(
            parse("tcp:127.0.0.1:80:timeout=2.5:bindAddress=127.0.0.2").unwrap(),
            ClientEndpoint::Tcp {
                host: "127.0.0.1".into(),
                port: 80,
                timeout: Duration::from_millis(2500),
                bind_address: Some("127.0.0.2".parse().unwrap()),
            }
        );
    }

    #[test]
    fn client_unix_forms() {
        let want = ClientEndpoint::Unix {
            path: "/tmp/a:b".into(),
            timeout: Duration::from_secs(3),
        };
        assert_eq!(parse(r"unix:/tmp/a\:b:timeout=3").unwrap(), want);
        assert_eq!(parse(r"unix:path=/tmp/a\:b:timeout=3").unwrap(), want);
    }

    #[test]
    fn client_errors_name_the_bad_field() {
        let msg = |s: &str| parse(s).unwrap_err().to_string();
        assert!(msg("tcp:localhost").contains("`port`"));
        assert!(msg("tcp:port=80").contains("`host`"));
        assert!(msg("tcp:h:80:timeout=0").contains("`timeout`"));
        assert!(msg("tcp:h:80:timeout=-1").contains("`timeout`"));
        assert!(msg("tcp:h:80:bindAddress=nope").contains("`bindAddress`"));
        assert!(msg("tcp:h:80:backlog=5").contains("`backlog`"));
        assert!(msg("tcp:h:80:extra").contains("extra"));
        assert!(msg("unix:").contains("`path`"));
        assert!(msg("ssl:h:443").contains("unknown endpoint type"));
    }

    #[test]
    fn client_display_round_trips() {
        for s in [
            "tcp:host=h:port=1",
            "tcp:host=h:port=1:timeout=0.25:bindAddress=127.0.0.1",
            r"tcp:host=\:\:1:port=1:bindAddress=\:\:1",
            r"unix:path=/tmp/x\:y:timeout=4",
        ] {
            let e = parse(s).unwrap();
            assert_eq!(e.to_string(), s);
            assert_eq!(parse(&e.to_string()).unwrap(), e, "{s}");
        }
    }
}
