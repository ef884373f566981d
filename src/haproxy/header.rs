//! `ProxyHeaderDecoder`: a sans-IO parser of the PROXY protocol header, versions 1
//! (text) and 2 (binary), as HAProxy's `send-proxy` and `send-proxy-v2` write it.
//!
//! Bytes go in with [`feed`](ProxyHeaderDecoder::feed), in chunks of any size; the
//! decoder answers with [`next_event`](ProxyHeaderDecoder::next_event): not yet, a
//! header and the bytes that followed it, or an error. It never holds more than one
//! header's worth of bytes, and it refuses a stream as soon as its first bytes can no
//! longer be the start of a header, so junk is rejected on its first segment.
//!
//! ```text
//!   Sniffing ──"PROXY "──► V1 (up to 107 bytes, CRLF ends it)
//!      │ ──"\r\n\r\n\0\r\nQUIT\n"──► V2 (16-byte head, then LEN bytes)
//!      └──anything else──► Failed(NotProxy)
//! ```
//!
//! What a header says: a v1 `TCP4`/`TCP6` line or a v2 `PROXY` command with an
//! INET, INET6 or UNIX family carries the client's (source) and the balancer's
//! (destination) address; v1 `UNKNOWN`, v2 `LOCAL` (the balancer's own health check)
//! and v2 `UNSPEC` carry none, and the connection keeps its real addresses. v2 TLVs
//! are skipped. v2 datagram families are refused: this is a stream wrapper.
//!
//! # Security
//! A v1 header is at most 107 bytes (the specification's figure); a v2 header at
//! most `16 + max_v2_length` bytes ([`DEFAULT_MAX_V2_LENGTH`] by default). A stream
//! that does not complete a valid header within those bounds is refused, so a
//! connection costs at most that much memory before its protocol exists.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use crate::address::Address;

/// The longest v1 header the specification allows, CRLF included.
pub const V1_MAX_LENGTH: usize = 107;

/// The v2 signature: the first twelve bytes of every v2 header.
pub const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// The default cap on a v2 header's LEN field (addresses plus TLVs), in bytes. HAProxy
/// sends 12 to 216 bytes of addresses and a few TLVs; 4 KiB leaves room for its SSL
/// TLVs while bounding what a stranger can make a connection hold.
pub const DEFAULT_MAX_V2_LENGTH: usize = 4096;

const V1_PREFIX: &[u8] = b"PROXY ";
const V2_HEAD: usize = 16;

/// Which version of the protocol a header was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyVersion {
    /// The text header (`send-proxy`).
    V1,
    /// The binary header (`send-proxy-v2`).
    V2,
}

/// A parsed PROXY header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyHeader {
    /// The version it was written in.
    pub version: ProxyVersion,
    /// The client's address (`source`) and the address it connected to
    /// (`destination`), or `None` for a header that carries none (v1 `UNKNOWN`,
    /// v2 `LOCAL` or `UNSPEC`).
    pub addresses: Option<ProxiedAddresses>,
}

/// The two addresses a header carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxiedAddresses {
    /// Where the client connected from: what `peer()` returns.
    pub source: Address,
    /// What the client connected to (the balancer's address): what `host()` returns.
    pub destination: Address,
}

/// Why a stream was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyHeaderError {
    /// The stream does not start with a PROXY header (junk, or a client that talks
    /// to the port directly).
    NotProxy,
    /// A v1 header with no CRLF within 107 bytes.
    V1TooLong,
    /// A v1 header that does not follow the grammar; says which part.
    V1Malformed(&'static str),
    /// A v2 header of a version other than 2.
    V2BadVersion(u8),
    /// A v2 command other than LOCAL (0) and PROXY (1).
    V2BadCommand(u8),
    /// A v2 address family or transport this wrapper does not serve.
    V2UnsupportedFamily(u8),
    /// A v2 LEN too short for the addresses of its family.
    V2BadLength {
        /// The LEN field.
        length: usize,
        /// What the family needs at least.
        needed: usize,
    },
    /// A v2 LEN past the configured cap.
    V2TooLong {
        /// The LEN field.
        length: usize,
        /// The cap.
        limit: usize,
    },
}

impl fmt::Display for ProxyHeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyHeaderError::NotProxy => {
                f.write_str("the stream does not start with a PROXY header")
            }
            ProxyHeaderError::V1TooLong => {
                write!(f, "PROXY v1 header longer than {V1_MAX_LENGTH} bytes")
            }
            ProxyHeaderError::V1Malformed(what) => write!(f, "malformed PROXY v1 header: {what}"),
            ProxyHeaderError::V2BadVersion(v) => write!(f, "PROXY v2 header of version {v}"),
            ProxyHeaderError::V2BadCommand(c) => write!(f, "PROXY v2 header with command {c}"),
            ProxyHeaderError::V2UnsupportedFamily(b) => {
                write!(
                    f,
                    "PROXY v2 header with unsupported family/transport 0x{b:02x}"
                )
            }
            ProxyHeaderError::V2BadLength { length, needed } => write!(
                f,
                "PROXY v2 header length {length} is shorter than its addresses ({needed})"
            ),
            ProxyHeaderError::V2TooLong { length, limit } => {
                write!(
                    f,
                    "PROXY v2 header length {length} is over the limit of {limit}"
                )
            }
        }
    }
}

impl std::error::Error for ProxyHeaderError {}

/// What [`ProxyHeaderDecoder::next_event`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum ProxyHeaderEvent {
    /// More bytes are needed.
    Incomplete,
    /// The header, and the bytes fed after it (the protocol's first bytes).
    Header(ProxyHeader, Vec<u8>),
    /// The stream is refused; the decoder stays failed.
    Failed(ProxyHeaderError),
}

/// Parses one PROXY header from a stream fed in chunks of any size.
///
/// # Examples
/// ```
/// use weft::haproxy::{ProxyHeaderDecoder, ProxyHeaderEvent};
/// let mut d = ProxyHeaderDecoder::new();
/// d.feed(b"PROXY TCP4 192.0.2.7 198.51.100.1 4000 80\r\nhel");
/// let ProxyHeaderEvent::Header(h, rest) = d.next_event() else { panic!() };
/// let a = h.addresses.unwrap();
/// assert_eq!(a.source.to_string(), "tcp:192.0.2.7:4000");
/// assert_eq!(rest, b"hel");
/// ```
#[derive(Debug)]
pub struct ProxyHeaderDecoder {
    buf: Vec<u8>,
    max_v2_length: usize,
    failed: Option<ProxyHeaderError>,
    done: bool,
}

impl Default for ProxyHeaderDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ProxyHeaderDecoder {
    /// Creates a decoder with the default v2 cap ([`DEFAULT_MAX_V2_LENGTH`]).
    pub fn new() -> ProxyHeaderDecoder {
        Self::with_max_v2_length(DEFAULT_MAX_V2_LENGTH)
    }

    /// Creates a decoder that refuses a v2 LEN over `max`.
    pub fn with_max_v2_length(max: usize) -> ProxyHeaderDecoder {
        ProxyHeaderDecoder {
            buf: Vec::new(),
            max_v2_length: max,
            failed: None,
            done: false,
        }
    }

    /// Appends bytes read from the stream. After a header or a failure, more bytes
    /// are ignored (the wrapper hands them to the protocol, or closes).
    pub fn feed(&mut self, data: &[u8]) {
        if self.failed.is_none() && !self.done {
            self.buf.extend_from_slice(data);
        }
    }

    /// Returns the bytes held: never more than one header's bound plus the last chunk.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Parses what was fed.
    pub fn next_event(&mut self) -> ProxyHeaderEvent {
        if let Some(e) = &self.failed {
            return ProxyHeaderEvent::Failed(e.clone());
        }
        if self.done {
            return ProxyHeaderEvent::Incomplete;
        }
        match self.parse() {
            Ok(None) => ProxyHeaderEvent::Incomplete,
            Ok(Some((header, used))) => {
                self.done = true;
                let rest = self.buf.split_off(used);
                self.buf = Vec::new();
                ProxyHeaderEvent::Header(header, rest)
            }
            Err(e) => {
                self.failed = Some(e.clone());
                self.buf = Vec::new();
                ProxyHeaderEvent::Failed(e)
            }
        }
    }

    /// `Ok(None)`: incomplete; `Ok(Some((header, bytes used)))`; or the error.
    fn parse(&self) -> Result<Option<(ProxyHeader, usize)>, ProxyHeaderError> {
        let b = &self.buf[..];
        if is_prefix_of(b, V1_PREFIX) {
            return if b.len() < V1_PREFIX.len() {
                Ok(None)
            } else {
                parse_v1(b)
            };
        }
        if is_prefix_of(b, V2_SIGNATURE) {
            return if b.len() < V2_HEAD {
                Ok(None)
            } else {
                parse_v2(b, self.max_v2_length)
            };
        }
        Err(ProxyHeaderError::NotProxy)
    }
}

/// True if `b` and `sig` agree on their common length (`b` may be shorter or longer).
fn is_prefix_of(b: &[u8], sig: &[u8]) -> bool {
    let n = b.len().min(sig.len());
    b[..n] == sig[..n]
}

fn parse_v1(b: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyHeaderError> {
    let window = &b[..b.len().min(V1_MAX_LENGTH)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        return if b.len() >= V1_MAX_LENGTH {
            Err(ProxyHeaderError::V1TooLong)
        } else if window.contains(&b'\n') {
            // A bare LF can never become part of a CRLF-terminated line.
            Err(ProxyHeaderError::V1Malformed(
                "a line feed without a carriage return",
            ))
        } else {
            Ok(None)
        };
    };
    let line = std::str::from_utf8(&b[V1_PREFIX.len()..end])
        .map_err(|_| ProxyHeaderError::V1Malformed("not ASCII"))?;
    let mut fields = line.split(' ');
    let proto = fields.next().unwrap_or("");
    let addresses = match proto {
        // UNKNOWN: the rest of the line is to be ignored.
        "UNKNOWN" => None,
        "TCP4" | "TCP6" => {
            let parts: Vec<&str> = fields.collect();
            let [src, dst, sport, dport] = parts[..] else {
                return Err(ProxyHeaderError::V1Malformed("not four address fields"));
            };
            let (src, dst) = (v1_ip(src)?, v1_ip(dst)?);
            let v4 = proto == "TCP4";
            if src.is_ipv4() != v4 || dst.is_ipv4() != v4 {
                return Err(ProxyHeaderError::V1Malformed(
                    "an address of the wrong family",
                ));
            }
            Some(ProxiedAddresses {
                source: Address::Tcp(SocketAddr::new(src, v1_port(sport)?)),
                destination: Address::Tcp(SocketAddr::new(dst, v1_port(dport)?)),
            })
        }
        _ => return Err(ProxyHeaderError::V1Malformed("unknown protocol")),
    };
    Ok(Some((
        ProxyHeader {
            version: ProxyVersion::V1,
            addresses,
        },
        end + 2,
    )))
}

fn v1_ip(s: &str) -> Result<IpAddr, ProxyHeaderError> {
    s.parse()
        .map_err(|_| ProxyHeaderError::V1Malformed("an address that does not parse"))
}

fn v1_port(s: &str) -> Result<u16, ProxyHeaderError> {
    // Digits only: Rust's parser would take a leading '+'; no leading zeros either.
    let ok =
        !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if !ok {
        return Err(ProxyHeaderError::V1Malformed(
            "a port that is not a decimal number",
        ));
    }
    s.parse()
        .map_err(|_| ProxyHeaderError::V1Malformed("a port over 65535"))
}

fn parse_v2(b: &[u8], max: usize) -> Result<Option<(ProxyHeader, usize)>, ProxyHeaderError> {
    let version = b[12] >> 4;
    let command = b[12] & 0x0f;
    if version != 2 {
        return Err(ProxyHeaderError::V2BadVersion(version));
    }
    if command > 1 {
        return Err(ProxyHeaderError::V2BadCommand(command));
    }
    let family = b[13];
    let length = usize::from(u16::from_be_bytes([b[14], b[15]]));
    if length > max {
        return Err(ProxyHeaderError::V2TooLong { length, limit: max });
    }
    // LOCAL ignores the family; PROXY needs one this wrapper serves.
    let needed = match (command, family) {
        (0, _) | (1, 0x00) => 0,
        (1, 0x11) => 12,
        (1, 0x21) => 36,
        (1, 0x31) => 216,
        _ => return Err(ProxyHeaderError::V2UnsupportedFamily(family)),
    };
    if length < needed {
        return Err(ProxyHeaderError::V2BadLength { length, needed });
    }
    if b.len() < V2_HEAD + length {
        return Ok(None);
    }
    let a = &b[V2_HEAD..V2_HEAD + needed];
    let addresses = match (command, family) {
        (1, 0x11) => {
            let ip = |i: usize| IpAddr::V4(Ipv4Addr::new(a[i], a[i + 1], a[i + 2], a[i + 3]));
            let port = |i: usize| u16::from_be_bytes([a[i], a[i + 1]]);
            Some(ProxiedAddresses {
                source: Address::Tcp(SocketAddr::new(ip(0), port(8))),
                destination: Address::Tcp(SocketAddr::new(ip(4), port(10))),
            })
        }
        (1, 0x21) => {
            let ip = |i: usize| {
                let o: [u8; 16] = a[i..i + 16].try_into().expect("16 bytes");
                IpAddr::V6(Ipv6Addr::from(o))
            };
            let port = |i: usize| u16::from_be_bytes([a[i], a[i + 1]]);
            Some(ProxiedAddresses {
                source: Address::Tcp(SocketAddr::new(ip(0), port(32))),
                destination: Address::Tcp(SocketAddr::new(ip(16), port(34))),
            })
        }
        (1, 0x31) => Some(ProxiedAddresses {
            source: unix_path(&a[..108]),
            destination: unix_path(&a[108..216]),
        }),
        _ => None,
    };
    Ok(Some((
        ProxyHeader {
            version: ProxyVersion::V2,
            addresses,
        },
        V2_HEAD + length,
    )))
}

/// A NUL-padded UNIX path; empty means unnamed.
fn unix_path(raw: &[u8]) -> Address {
    let end = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
    if end == 0 {
        return Address::Unix(None);
    }
    use std::os::unix::ffi::OsStrExt;
    Address::Unix(Some(PathBuf::from(std::ffi::OsStr::from_bytes(
        &raw[..end],
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1_TCP4: &[u8] = b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 8080\r\n";

    fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | command);
        h.push(family);
        h.extend_from_slice(&(body.len() as u16).to_be_bytes());
        h.extend_from_slice(body);
        h
    }

    fn v2_tcp4() -> Vec<u8> {
        let mut body = vec![192, 0, 2, 7, 198, 51, 100, 1];
        body.extend_from_slice(&40000u16.to_be_bytes());
        body.extend_from_slice(&8080u16.to_be_bytes());
        // A TLV (PP2_TYPE_UNIQUE_ID), skipped.
        body.extend_from_slice(&[0x05, 0x00, 0x03, b'a', b'b', b'c']);
        v2(1, 0x11, &body)
    }

    fn decode_whole(bytes: &[u8]) -> ProxyHeaderEvent {
        let mut d = ProxyHeaderDecoder::new();
        d.feed(bytes);
        d.next_event()
    }

    /// Feeds `bytes` in chunks of `size`, asking after each one; returns the first
    /// answer that is not `Incomplete`.
    fn decode_chunked(bytes: &[u8], size: usize) -> ProxyHeaderEvent {
        let mut d = ProxyHeaderDecoder::new();
        for c in bytes.chunks(size) {
            d.feed(c);
            match d.next_event() {
                ProxyHeaderEvent::Incomplete => {}
                other => return other,
            }
        }
        ProxyHeaderEvent::Incomplete
    }

    fn tcp(s: &str) -> Address {
        Address::Tcp(s.parse().unwrap())
    }

    fn proxied(src: &str, dst: &str) -> Option<ProxiedAddresses> {
        Some(ProxiedAddresses {
            source: tcp(src),
            destination: tcp(dst),
        })
    }

    #[test]
    fn v1_tcp4_gives_both_addresses_and_the_bytes_after_it() {
        let mut input = V1_TCP4.to_vec();
        input.extend_from_slice(b"hello");
        let ProxyHeaderEvent::Header(h, rest) = decode_whole(&input) else {
            panic!("no header")
        };
        assert_eq!(h.version, ProxyVersion::V1);
        assert_eq!(h.addresses, proxied("192.0.2.7:40000", "198.51.100.1:8080"));
        assert_eq!(rest, b"hello");
    }

    #[test]
    fn v1_tcp6_parses() {
        let ProxyHeaderEvent::Header(h, rest) =
            decode_whole(b"PROXY TCP6 2001:db8::1 ::1 1 65535\r\n")
        else {
            panic!()
        };
        assert_eq!(h.addresses, proxied("[2001:db8::1]:1", "[::1]:65535"));
        assert!(rest.is_empty());
    }

    #[test]
    fn v1_unknown_carries_no_addresses() {
        let ProxyHeaderEvent::Header(h, _) = decode_whole(b"PROXY UNKNOWN whatever\r\n") else {
            panic!()
        };
        assert_eq!(h.addresses, None);
    }

    #[test]
    fn v1_split_at_every_index_and_one_byte_at_a_time_parses_the_same() {
        let mut input = V1_TCP4.to_vec();
        input.extend_from_slice(b"data");
        let whole = decode_whole(&input);
        for i in 0..=input.len() {
            let mut d = ProxyHeaderDecoder::new();
            d.feed(&input[..i]);
            let first = d.next_event();
            if let ProxyHeaderEvent::Header(h, mut rest) = first {
                // Bytes after a complete header go to the protocol, not the decoder.
                rest.extend_from_slice(&input[i..]);
                assert_eq!(ProxyHeaderEvent::Header(h, rest), whole, "split at {i}");
                continue;
            }
            assert_eq!(first, ProxyHeaderEvent::Incomplete, "split at {i}");
            d.feed(&input[i..]);
            assert_eq!(d.next_event(), whole, "split at {i}");
        }
        let ProxyHeaderEvent::Header(h, rest) = decode_chunked(&input, 1) else {
            panic!()
        };
        assert_eq!(h.addresses, proxied("192.0.2.7:40000", "198.51.100.1:8080"));
        // Fed one byte at a time, the header completes on its last byte.
        assert!(rest.is_empty());
    }

    #[test]
    fn v2_split_over_every_chunk_size_parses_the_same() {
        let input = v2_tcp4();
        for size in 1..=input.len() {
            let ProxyHeaderEvent::Header(h, _) = decode_chunked(&input, size) else {
                panic!("chunk size {size}")
            };
            assert_eq!(h.version, ProxyVersion::V2);
            assert_eq!(h.addresses, proxied("192.0.2.7:40000", "198.51.100.1:8080"));
        }
    }

    #[test]
    fn v2_tcp6_parses() {
        let mut body = Vec::new();
        body.extend_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
        body.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        body.extend_from_slice(&[0x12, 0x34, 0x00, 0x50]);
        let ProxyHeaderEvent::Header(h, rest) =
            decode_whole(&[v2(1, 0x21, &body), b"x".to_vec()].concat())
        else {
            panic!()
        };
        assert_eq!(h.addresses, proxied("[2001:db8::7]:4660", "[::1]:80"));
        assert_eq!(rest, b"x");
    }

    #[test]
    fn v2_unix_gives_paths() {
        let mut body = vec![0u8; 216];
        body[..9].copy_from_slice(b"/tmp/cli\0");
        body[108..116].copy_from_slice(b"/run/lb\0");
        let ProxyHeaderEvent::Header(h, _) = decode_whole(&v2(1, 0x31, &body)) else {
            panic!()
        };
        let a = h.addresses.unwrap();
        assert_eq!(a.source, Address::Unix(Some("/tmp/cli".into())));
        assert_eq!(a.destination, Address::Unix(Some("/run/lb".into())));
    }

    #[test]
    fn v2_local_health_check_carries_no_addresses() {
        let ProxyHeaderEvent::Header(h, rest) =
            decode_whole(&[v2(0, 0x00, &[]), b"ok".to_vec()].concat())
        else {
            panic!()
        };
        assert_eq!(h.addresses, None);
        assert_eq!(rest, b"ok");
    }

    #[test]
    fn v2_length_shorter_than_its_addresses_is_refused() {
        let h = v2(1, 0x11, &[1, 2, 3, 4]);
        assert_eq!(
            decode_whole(&h),
            ProxyHeaderEvent::Failed(ProxyHeaderError::V2BadLength {
                length: 4,
                needed: 12
            })
        );
    }

    #[test]
    fn v2_length_over_the_cap_is_refused_before_the_body_arrives() {
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert_eq!(
            decode_whole(&h),
            ProxyHeaderEvent::Failed(ProxyHeaderError::V2TooLong {
                length: 65535,
                limit: DEFAULT_MAX_V2_LENGTH
            })
        );
    }

    #[test]
    fn v2_bad_version_command_and_datagram_family_are_refused() {
        let mut h = v2_tcp4();
        h[12] = 0x31;
        assert_eq!(
            decode_whole(&h),
            ProxyHeaderEvent::Failed(ProxyHeaderError::V2BadVersion(3))
        );
        let mut h = v2_tcp4();
        h[12] = 0x22;
        assert_eq!(
            decode_whole(&h),
            ProxyHeaderEvent::Failed(ProxyHeaderError::V2BadCommand(2))
        );
        let mut h = v2_tcp4();
        h[13] = 0x12;
        assert_eq!(
            decode_whole(&h),
            ProxyHeaderEvent::Failed(ProxyHeaderError::V2UnsupportedFamily(0x12))
        );
    }

    #[test]
    fn junk_is_refused_on_its_first_byte() {
        assert_eq!(
            decode_whole(b"G"),
            ProxyHeaderEvent::Failed(ProxyHeaderError::NotProxy)
        );
        assert_eq!(
            decode_whole(b"GET / HTTP/1.1\r\n"),
            ProxyHeaderEvent::Failed(ProxyHeaderError::NotProxy)
        );
        assert_eq!(
            decode_whole(b"PROXX"),
            ProxyHeaderEvent::Failed(ProxyHeaderError::NotProxy)
        );
        assert_eq!(
            decode_whole(b"\r\n\r\n\0\r\nQUIX"),
            ProxyHeaderEvent::Failed(ProxyHeaderError::NotProxy)
        );
    }

    #[test]
    fn a_prefix_of_either_signature_waits() {
        assert_eq!(decode_whole(b"PROX"), ProxyHeaderEvent::Incomplete);
        assert_eq!(decode_whole(b"\r\n\r\n\0"), ProxyHeaderEvent::Incomplete);
        assert_eq!(decode_whole(b""), ProxyHeaderEvent::Incomplete);
    }

    #[test]
    fn v1_without_crlf_within_107_bytes_is_refused() {
        let mut h = b"PROXY TCP4 ".to_vec();
        h.resize(V1_MAX_LENGTH, b'1');
        assert_eq!(
            decode_whole(&h),
            ProxyHeaderEvent::Failed(ProxyHeaderError::V1TooLong)
        );
        // One byte short of the limit still waits.
        assert_eq!(
            decode_whole(&h[..V1_MAX_LENGTH - 1]),
            ProxyHeaderEvent::Incomplete
        );
    }

    #[test]
    fn v1_malformed_lines_are_refused() {
        for bad in [
            &b"PROXY TCP4 192.0.2.7 198.51.100.1 40000\r\n"[..],
            b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 8080 9\r\n",
            b"PROXY TCP4 ::1 198.51.100.1 40000 8080\r\n",
            b"PROXY TCP6 192.0.2.7 ::1 40000 8080\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 +4000 8080\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 04000 8080\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 70000 8080\r\n",
            b"PROXY TCP4 192.0.2.7  198.51.100.1 4000 8080\r\n",
            b"PROXY UDP4 192.0.2.7 198.51.100.1 4000 8080\r\n",
            b"PROXY TCP4 300.0.2.7 198.51.100.1 4000 8080\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 4000 8080\n",
        ] {
            assert!(
                matches!(
                    decode_whole(bad),
                    ProxyHeaderEvent::Failed(ProxyHeaderError::V1Malformed(_))
                ),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn after_a_failure_the_decoder_stays_failed_and_holds_nothing() {
        let mut d = ProxyHeaderDecoder::new();
        d.feed(b"junk");
        assert!(matches!(d.next_event(), ProxyHeaderEvent::Failed(_)));
        d.feed(V1_TCP4);
        assert!(matches!(d.next_event(), ProxyHeaderEvent::Failed(_)));
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn random_bytes_never_panic_and_never_buffer_past_the_bound() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            let mut d = ProxyHeaderDecoder::new();
            // Start from a valid prefix half of the time, so the deep paths run.
            if x & 1 == 0 {
                d.feed(&v2_tcp4()[..(x as usize % 16)]);
            } else {
                d.feed(&V1_TCP4[..(x as usize % 20)]);
            }
            for _ in 0..40 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                d.feed(&x.to_le_bytes()[..(x as usize % 8)]);
                match d.next_event() {
                    ProxyHeaderEvent::Incomplete => {
                        assert!(d.buffered() <= V2_HEAD + DEFAULT_MAX_V2_LENGTH + 8)
                    }
                    _ => break,
                }
            }
        }
    }
}
