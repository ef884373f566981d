//! `systemd:domain=INET:index=N` (or `name=NAME`): a listening socket inherited
//! from systemd's socket activation.
//!
//! systemd passes `LISTEN_FDS` sockets from descriptor 3 on, sets `LISTEN_PID` to
//! the process they are meant for and may name them in `LISTEN_FDNAMES`
//! (colon-separated, from `FileDescriptorName=`). As in Twisted, exactly one of
//! `index` and `name` selects the socket.

use std::fmt;
use std::io;
use std::os::fd::RawFd;

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: RawFd = 3;

/// The address family the inherited socket must have (Twisted's `domain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemdDomain {
    /// IPv4 (`INET`).
    Inet,
    /// IPv6 (`INET6`).
    Inet6,
    /// UNIX-domain (`UNIX`).
    Unix,
}

impl SystemdDomain {
    pub(crate) fn parse(s: &str) -> Option<SystemdDomain> {
        match s.to_ascii_uppercase().as_str() {
            "INET" => Some(SystemdDomain::Inet),
            "INET6" => Some(SystemdDomain::Inet6),
            "UNIX" => Some(SystemdDomain::Unix),
            _ => None,
        }
    }
}

impl fmt::Display for SystemdDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SystemdDomain::Inet => "INET",
            SystemdDomain::Inet6 => "INET6",
            SystemdDomain::Unix => "UNIX",
        })
    }
}

/// Which inherited socket: by position or by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inherited {
    /// The N-th passed socket (descriptor 3 + N).
    Index(usize),
    /// The socket whose `FileDescriptorName=` is this.
    Name(String),
}

impl fmt::Display for Inherited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Inherited::Index(i) => write!(f, "index={i}"),
            Inherited::Name(n) => write!(f, "name={n}"),
        }
    }
}

fn not_found(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, msg)
}

impl Inherited {
    /// The descriptor systemd passed for this socket, from `LISTEN_PID`,
    /// `LISTEN_FDS` and `LISTEN_FDNAMES`.
    ///
    /// # Errors
    /// `NotFound` naming what is missing (not socket-activated, sockets meant for
    /// another process, index out of range, no such name).
    pub fn fd(&self) -> io::Result<RawFd> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let pid = var("LISTEN_PID")
            .ok_or_else(|| not_found("not socket-activated: LISTEN_PID is not set".into()))?;
        if pid.trim() != std::process::id().to_string() {
            return Err(not_found(format!(
                "the inherited sockets are for process {pid}, not this one"
            )));
        }
        let count: usize = var("LISTEN_FDS")
            .and_then(|n| n.trim().parse().ok())
            .ok_or_else(|| not_found("LISTEN_FDS is not set".into()))?;
        let index = match self {
            Inherited::Index(i) => *i,
            Inherited::Name(name) => var("LISTEN_FDNAMES")
                .and_then(|names| names.split(':').position(|n| n == name))
                .ok_or_else(|| not_found(format!("no inherited socket named {name:?}")))?,
        };
        if index >= count {
            return Err(not_found(format!(
                "index {index} is past the {count} inherited sockets"
            )));
        }
        Ok(LISTEN_FDS_START + index as RawFd)
    }
}

#[cfg(test)]
mod tests {
    use crate::endpoints::{EndpointError, Inherited, ServerEndpoint, SystemdDomain};

    #[test]
    fn systemd_strings_follow_twisted_exactly_one_of_index_and_name() {
        let e: ServerEndpoint = "systemd:domain=INET:index=1".parse().unwrap();
        assert_eq!(
            e,
            ServerEndpoint::Systemd {
                domain: SystemdDomain::Inet,
                socket: Inherited::Index(1)
            }
        );
        assert_eq!(e.to_string(), "systemd:domain=INET:index=1");
        let e: ServerEndpoint = "systemd:domain=INET6:name=web".parse().unwrap();
        assert_eq!(e.to_string(), "systemd:domain=INET6:name=web");
        assert_eq!(
            "systemd:INET:0"
                .parse::<ServerEndpoint>()
                .unwrap()
                .to_string(),
            "systemd:domain=INET:index=0"
        );
        assert!(matches!(
            "systemd:domain=INET".parse::<ServerEndpoint>(),
            Err(EndpointError::MissingField { field: "index", .. })
        ));
        assert!("systemd:domain=INET:index=0:name=x"
            .parse::<ServerEndpoint>()
            .is_err());
        assert!("systemd:domain=IPX:index=0"
            .parse::<ServerEndpoint>()
            .is_err());
    }

    #[test]
    fn without_activation_the_socket_is_not_found() {
        // LISTEN_PID of another process (or none) never selects a descriptor.
        assert!(Inherited::Index(0).fd().is_err() || std::env::var("LISTEN_PID").is_ok());
    }
}
