//! No silent port sharing: the checks made before any listener is bound.
//!
//! weft's listeners set `SO_REUSEPORT` (one socket per shard), so the kernel would
//! let a second weft bind a port the first already listens on and split the
//! connections between them without a word. Before binding, each TCP endpoint is
//! probed with a socket that does *not* set `SO_REUSEPORT`: if another socket is
//! bound there, the probe fails with `EADDRINUSE`. Joining an existing group (a
//! rolling restart) is the explicit choice that skips the probe. UDP endpoints are
//! probed the same way, with a UDP socket. UNIX endpoints need no probe: the engine
//! already refuses a socket file a live server answers on.

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

use crate::endpoints::ServerEndpoint;

/// Why the endpoints cannot be listened on as given.
#[derive(Debug)]
#[non_exhaustive]
pub enum PortConflict {
    /// The same endpoint appears twice.
    Duplicate(String),
    /// Another socket (another process, most likely) is bound to the port.
    InUse(String),
    /// The port needs privileges this process does not have.
    Permission(String),
    /// The probe failed otherwise (for example, an address not on this host).
    Other(String, io::Error),
}

impl fmt::Display for PortConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortConflict::Duplicate(e) => write!(f, "the endpoint {e} is given twice"),
            PortConflict::InUse(e) => write!(
                f,
                "cannot listen on {e}: another process listens on this port (use --join-port-group to share it on purpose)"
            ),
            PortConflict::Permission(e) => write!(
                f,
                "cannot listen on {e}: permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
            ),
            PortConflict::Other(e, err) => write!(f, "cannot listen on {e}: {err}"),
        }
    }
}

impl std::error::Error for PortConflict {}

/// The identity of an endpoint for the duplicate check (port 0 is always new).
fn key(ep: &ServerEndpoint) -> Option<String> {
    match ep {
        ServerEndpoint::Tcp { port: 0, .. } => None,
        ServerEndpoint::Tcp {
            port, interface, ..
        } => Some(SocketAddr::new(*interface, *port).to_string()),
        ServerEndpoint::Unix { path, .. } => Some(path.display().to_string()),
        ServerEndpoint::Udp { port: 0, .. } => None,
        ServerEndpoint::Udp {
            port, interface, ..
        } => Some(format!("udp/{}", SocketAddr::new(*interface, *port))),
        ServerEndpoint::Unixgram { path, .. } => Some(path.display().to_string()),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// Refuses an endpoint given twice, and (unless `join_port_group`) a TCP port that
/// another socket is bound to.
///
/// # Errors
/// The first [`PortConflict`] found.
pub fn check_endpoints(
    endpoints: &[ServerEndpoint],
    join_port_group: bool,
) -> Result<(), PortConflict> {
    let mut seen = HashSet::new();
    for ep in endpoints {
        if let Some(k) = key(ep) {
            if !seen.insert(k) {
                return Err(PortConflict::Duplicate(ep.to_string()));
            }
        }
    }
    if join_port_group {
        return Ok(());
    }
    for ep in endpoints {
        let (addr, kind) = match ep {
            ServerEndpoint::Tcp {
                port, interface, ..
            } => (SocketAddr::new(*interface, *port), Type::STREAM),
            ServerEndpoint::Udp {
                port, interface, ..
            } => (SocketAddr::new(*interface, *port), Type::DGRAM),
            _ => continue,
        };
        if addr.port() == 0 {
            continue;
        }
        probe(addr, kind).map_err(|e| {
            let name = ep.to_string();
            match e.raw_os_error() {
                Some(libc::EADDRINUSE) => PortConflict::InUse(name),
                Some(libc::EACCES) | Some(libc::EPERM) => PortConflict::Permission(name),
                _ => PortConflict::Other(name, e),
            }
        })?;
    }
    Ok(())
}

/// Binds and closes a socket without `SO_REUSEPORT` (with `SO_REUSEADDR`, so a
/// port in TIME_WAIT is not taken for one in use).
fn probe(addr: SocketAddr, kind: Type) -> io::Result<()> {
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let protocol = if kind == Type::DGRAM {
        Protocol::UDP
    } else {
        Protocol::TCP
    };
    let s = Socket::new(domain, kind.cloexec(), Some(protocol))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    if kind == Type::STREAM {
        // No SO_REUSEADDR for UDP: there it would let the probe share the port.
        s.set_reuse_address(true)?;
    }
    s.bind(&addr.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eps(descs: &[&str]) -> Vec<ServerEndpoint> {
        descs.iter().map(|d| d.parse().unwrap()).collect()
    }

    #[test]
    fn the_same_endpoint_twice_is_refused_but_port_zero_is_not() {
        assert!(matches!(
            check_endpoints(&eps(&["unix:/tmp/x.sock", "unix:/tmp/x.sock"]), true),
            Err(PortConflict::Duplicate(_))
        ));
        assert!(check_endpoints(
            &eps(&["tcp:0:interface=127.0.0.1", "tcp:0:interface=127.0.0.1"]),
            false
        )
        .is_ok());
    }

    #[test]
    fn a_port_someone_listens_on_is_refused_unless_joining_the_group() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let e = eps(&[&format!("tcp:{port}:interface=127.0.0.1")]);
        assert!(matches!(
            check_endpoints(&e, false),
            Err(PortConflict::InUse(_))
        ));
        assert!(check_endpoints(&e, true).is_ok());
    }

    #[test]
    fn a_udp_port_someone_uses_is_refused_and_udp_does_not_clash_with_tcp() {
        // Bound as weft binds its own UDP sockets: SO_REUSEPORT.
        let u = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
        u.set_reuse_port(true).unwrap();
        u.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        let port = u.local_addr().unwrap().as_socket().unwrap().port();
        let e = eps(&[&format!("udp:{port}:interface=127.0.0.1")]);
        assert!(matches!(
            check_endpoints(&e, false),
            Err(PortConflict::InUse(_))
        ));
        assert!(check_endpoints(&e, true).is_ok());
        // The same number over TCP and UDP are two ports.
        let both = eps(&["tcp:7:interface=127.0.0.1", "udp:7:interface=127.0.0.1"]);
        assert!(check_endpoints(&both, true).is_ok());
        let twice = eps(&["udp:7:interface=127.0.0.1", "udp:7:interface=127.0.0.1"]);
        assert!(matches!(
            check_endpoints(&twice, true),
            Err(PortConflict::Duplicate(_))
        ));
    }
}
