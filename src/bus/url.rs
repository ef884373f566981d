//! `BusUrl`: where the bus is and which room, from `redis://HOST[:PORT]/ROOM`.

use std::fmt;
use std::str::FromStr;

use crate::endpoints::ClientEndpoint;

/// Redis's own port.
pub const DEFAULT_REDIS_PORT: u16 = 6379;

/// A parsed `--bus` value.
///
/// # Examples
/// ```
/// let u: weft::bus::BusUrl = "redis://127.0.0.1:7000/lobby".parse().unwrap();
/// assert_eq!((u.host.as_str(), u.port, u.room.as_str()), ("127.0.0.1", 7000, "lobby"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusUrl {
    /// The Redis host (a name or an IP literal; IPv6 in brackets in the URL).
    pub host: String,
    /// The Redis port.
    pub port: u16,
    /// The room: the Redis channel the processes share.
    pub room: String,
}

/// Why a `--bus` value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusUrlError(pub String);

impl fmt::Display for BusUrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bad bus URL: {} (expected redis://HOST[:PORT]/ROOM)",
            self.0
        )
    }
}

impl std::error::Error for BusUrlError {}

impl FromStr for BusUrl {
    type Err = BusUrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |m: &str| BusUrlError(m.to_string());
        let rest = s
            .strip_prefix("redis://")
            .ok_or_else(|| err("the scheme must be redis://"))?;
        let (authority, room) = rest.split_once('/').ok_or_else(|| err("no /ROOM"))?;
        if room.is_empty() || room.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err(err("the room must be non-empty, without spaces"));
        }
        if authority.contains('@') {
            return Err(err("credentials in the URL are not supported"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| err("unclosed ["))?;
            (h, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(err("no host"));
        }
        let port = match port {
            Some(p) => p.parse().map_err(|_| err("the port is not a number"))?,
            None => DEFAULT_REDIS_PORT,
        };
        Ok(BusUrl {
            host: host.to_string(),
            port,
            room: room.to_string(),
        })
    }
}

impl BusUrl {
    /// Returns the client endpoint of the Redis server (a 10 s connect timeout).
    pub fn endpoint(&self) -> ClientEndpoint {
        ClientEndpoint::Tcp {
            host: self.host.clone(),
            port: self.port,
            timeout: std::time::Duration::from_secs(10),
            bind_address: None,
        }
    }
}

impl fmt::Display for BusUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "redis://[{}]:{}/{}", self.host, self.port, self.room)
        } else {
            write!(f, "redis://{}:{}/{}", self.host, self.port, self.room)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_and_room_parse() {
        let u: BusUrl = "redis://localhost/r1".parse().unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.room.as_str()),
            ("localhost", 6379, "r1")
        );
        let u: BusUrl = "redis://[::1]:7000/r".parse().unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 7000));
        assert_eq!(u.to_string(), "redis://[::1]:7000/r");
    }

    #[test]
    fn bad_urls_are_refused() {
        for bad in [
            "http://h/r",
            "redis://h",
            "redis://h/",
            "redis://h:x/r",
            "redis://:1/r",
            "redis://u:p@h/r",
            "redis://h/a b",
        ] {
            assert!(bad.parse::<BusUrl>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_endpoint_points_at_the_server() {
        let u: BusUrl = "redis://127.0.0.1:7000/r".parse().unwrap();
        assert!(format!("{:?}", u.endpoint()).contains("7000"));
    }
}
