//! Client endpoints: [`ClientEndpoint`], parsed from and printed as Twisted's
//! `clientFromString` strings.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

use super::syntax::{escape, fields, parse_num, tokenize, EndpointError};

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
