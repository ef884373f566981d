//! Turning a client endpoint into a connected socket: names resolved off the
//! shard, addresses tried in Twisted's order, errors named as Twisted names them.
//! The socket work itself is the engine's (`runtime::dial`).

use std::io;
use std::net::{IpAddr, SocketAddr};

use crate::client::{ConnectError, Resolver};
use crate::endpoints::ClientEndpoint;
use crate::runtime::dial::{self, DialError, Dialed};

impl From<DialError> for ConnectError {
    fn from(e: DialError) -> Self {
        match e {
            DialError::NoRuntime => ConnectError::NoRuntime,
            DialError::ShuttingDown => ConnectError::ShuttingDown,
            // The address is filled in by `connect_one`, which knows it.
            DialError::Bind(error) => ConnectError::Io(error),
            DialError::Connect(e) => classify(e),
        }
    }
}

fn classify(e: io::Error) -> ConnectError {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => ConnectError::Refused,
        io::ErrorKind::TimedOut => ConnectError::TimedOut,
        _ => ConnectError::Io(e),
    }
}

/// Connects to `endpoint` from this thread's shard.
pub(crate) async fn dial(
    endpoint: &ClientEndpoint,
    resolver: &Resolver,
) -> Result<Dialed, ConnectError> {
    match endpoint {
        ClientEndpoint::Tcp {
            host,
            port,
            bind_address,
            ..
        } => dial_tcp(host, *port, *bind_address, resolver).await,
        ClientEndpoint::Unix { path, .. } => Ok(dial::connect_unix(path).await?),
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
        match dial::connect_tcp(addr, bind).await {
            Ok(d) => return Ok(d),
            Err(DialError::Bind(error)) => {
                return Err(ConnectError::Bind {
                    address: bind.expect("a bind error needs a bind address"),
                    error,
                })
            }
            Err(e) => last = e.into(),
        }
    }
    Err(last)
}
