//! Endpoint strings in Twisted's `serverFromString` and `clientFromString` syntax.
//!
//! Files: `syntax.rs` (the tokenizer and the errors, shared by both sides),
//! `server.rs` ([`ServerEndpoint`], the table below), `client.rs`
//! ([`ClientEndpoint`]), `systemd.rs` (sockets inherited from systemd).
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

mod client;
mod server;
mod syntax;
mod systemd;

pub use client::{ClientEndpoint, DEFAULT_CONNECT_TIMEOUT};
pub use server::{ServerEndpoint, DEFAULT_BACKLOG, DEFAULT_UNIX_MODE, MAX_PACKET_SIZE_LIMIT};
pub use syntax::{tokenize, EndpointError, Fields};
pub use systemd::{Inherited, SystemdDomain, LISTEN_FDS_START};
