//! The `ssl:` server endpoint string: Twisted's options plus weft's additions.
//!
//! ```text
//! ssl:PORT[:privateKey=key.pem][:certKey=cert.pem][:extraCertChain=chain.pem]
//!     [:sslmethod=METHOD][:interface=ADDR][:backlog=N][:dhParameters=FILE]
//!     weft's: [:alpn=h2,http/1.1][:handshakeTimeout=SECS][:clientCA=ca.pem]
//!             [:sniDirectory=DIR][:maxHandshakes=N]
//! ```
//!
//! Twisted's rules: positional order `port, privateKey, certKey, sslmethod,
//! interface, backlog, extraCertChain, dhParameters`; `privateKey` defaults to
//! `server.pem` and `certKey` to `privateKey` (one file may hold both);
//! `sslmethod` is `TLS_METHOD` or `SSLv23_METHOD` (TLS 1.2 and 1.3, the default) or
//! `TLSv1_2_METHOD` (1.2 only); SSLv3, TLS 1.0 and 1.1 are refused with a clear
//! error; `dhParameters` is accepted with a warning (TLS 1.3 and rustls's
//! TLS 1.2 use ECDHE only, so it has no effect).

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use crate::endpoints::{tokenize, EndpointError, ServerEndpoint, DEFAULT_BACKLOG};

/// The handshake timeout when `handshakeTimeout` is not given (10 s).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The per-shard cap on handshakes in progress when `maxHandshakes` is not given.
/// Each costs a rustls connection's buffers (a few KiB) until its timeout.
pub const DEFAULT_MAX_HANDSHAKES: usize = 10_000;

/// Twisted's default `privateKey`.
pub const DEFAULT_PRIVATE_KEY: &str = "server.pem";

static TLS12_ONLY: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS12];

/// Which TLS versions an endpoint speaks (Twisted's `sslmethod`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMethod {
    /// TLS 1.2 and 1.3 (`TLS_METHOD`, `SSLv23_METHOD`; the default).
    #[default]
    Tls12And13,
    /// TLS 1.2 only (`TLSv1_2_METHOD`).
    Tls12Only,
}

impl TlsMethod {
    /// Parses Twisted's method names.
    ///
    /// # Errors
    /// An explanation for SSLv3, TLS 1.0 and TLS 1.1 (insecure, unsupported by
    /// rustls) and for unknown names.
    pub fn parse(name: &str) -> Result<TlsMethod, String> {
        match name {
            "TLS_METHOD" | "SSLv23_METHOD" => Ok(TlsMethod::Tls12And13),
            "TLSv1_2_METHOD" => Ok(TlsMethod::Tls12Only),
            "SSLv3_METHOD" | "TLSv1_METHOD" | "TLSv1_1_METHOD" => Err(format!(
                "{name} is an obsolete, insecure protocol version that weft does not \
                 speak; use TLS_METHOD (TLS 1.2 and 1.3) or TLSv1_2_METHOD"
            )),
            other => Err(format!(
                "unknown method {other:?}: expected TLS_METHOD, SSLv23_METHOD or TLSv1_2_METHOD"
            )),
        }
    }

    pub(crate) fn versions(self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        match self {
            TlsMethod::Tls12And13 => rustls::ALL_VERSIONS,
            TlsMethod::Tls12Only => &TLS12_ONLY,
        }
    }
}

/// The TLS half of an `ssl:` endpoint: where the key and certificates are and how
/// to negotiate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTlsOptions {
    /// The private key file (`privateKey`); `None` only with an SNI directory.
    pub private_key: Option<PathBuf>,
    /// The certificate file (`certKey`, defaults to `privateKey`).
    pub cert_key: Option<PathBuf>,
    /// More chain certificates sent after the server's own (`extraCertChain`).
    pub extra_cert_chain: Option<PathBuf>,
    /// The TLS versions (`sslmethod`).
    pub method: TlsMethod,
    /// ALPN protocols in preference order (weft's `alpn=h2,http/1.1`).
    pub alpn: Vec<Vec<u8>>,
    /// How long a handshake may take (weft's `handshakeTimeout`, default 10 s).
    pub handshake_timeout: Duration,
    /// CA certificates that client certificates must chain to (weft's `clientCA`):
    /// mutual TLS, a client without a valid certificate is refused.
    pub client_ca: Option<PathBuf>,
    /// A directory of `NAME.pem` files chosen by SNI (weft's `sniDirectory`).
    pub sni_directory: Option<PathBuf>,
    /// The per-shard cap on handshakes in progress (weft's `maxHandshakes`).
    pub max_handshakes: usize,
}

impl ServerTlsOptions {
    /// Options with one PEM file holding both key and certificate.
    pub fn new(pem: impl Into<PathBuf>) -> ServerTlsOptions {
        ServerTlsOptions {
            private_key: Some(pem.into()),
            cert_key: None,
            extra_cert_chain: None,
            method: TlsMethod::default(),
            alpn: Vec::new(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            client_ca: None,
            sni_directory: None,
            max_handshakes: DEFAULT_MAX_HANDSHAKES,
        }
    }
}

/// Tells whether an endpoint string is an `ssl:` one.
pub fn is_ssl(desc: &str) -> bool {
    desc.get(..4)
        .is_some_and(|k| k.eq_ignore_ascii_case("ssl:"))
}

fn bad(field: &'static str, value: &str, expected: &'static str) -> EndpointError {
    EndpointError::BadValue {
        field,
        value: value.to_string(),
        expected,
    }
}

pub(crate) fn parse_seconds(field: &'static str, v: &str) -> Result<Duration, EndpointError> {
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| bad(field, v, "a positive number of seconds"))
}

pub(crate) fn parse_alpn(v: &str) -> Result<Vec<Vec<u8>>, EndpointError> {
    let names: Vec<Vec<u8>> = v.split(',').map(|s| s.as_bytes().to_vec()).collect();
    if names.iter().any(|n| n.is_empty() || n.len() > 255) {
        return Err(bad(
            "alpn",
            v,
            "comma-separated protocol names of 1 to 255 bytes, such as h2,http/1.1",
        ));
    }
    Ok(names)
}

const ORDER: &[&str] = &[
    "port",
    "privateKey",
    "certKey",
    "sslmethod",
    "interface",
    "backlog",
    "extraCertChain",
    "dhParameters",
];
const WEFT_KEYS: &[&str] = &[
    "alpn",
    "handshakeTimeout",
    "clientCA",
    "sniDirectory",
    "maxHandshakes",
];

/// Parses an `ssl:` endpoint string into its TCP listener and its TLS options.
/// Files are not read here (see [`ServerTls::load`](super::ServerTls::load)).
///
/// # Errors
/// [`EndpointError`] naming the bad field, as for `tcp:`.
///
/// # Examples
/// ```
/// use weft::tls::{parse_ssl_endpoint, TlsMethod};
/// let (tcp, tls) = parse_ssl_endpoint("ssl:8443:privateKey=k.pem:alpn=h2,http/1.1").unwrap();
/// assert_eq!(tcp.to_string(), "tcp:8443:interface=0.0.0.0:backlog=1024");
/// assert_eq!(tls.cert_key, None); // defaults to privateKey
/// assert_eq!(tls.alpn, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
/// assert!(parse_ssl_endpoint("ssl:443:sslmethod=TLSv1_METHOD").is_err());
/// ```
pub fn parse_ssl_endpoint(desc: &str) -> Result<(ServerEndpoint, ServerTlsOptions), EndpointError> {
    let (mut positional, keyword) = tokenize(desc)?;
    if positional.is_empty() || !positional[0].eq_ignore_ascii_case("ssl") {
        return Err(EndpointError::UnknownType(
            positional.first().cloned().unwrap_or_default(),
        ));
    }
    positional.remove(0);
    let mut f: std::collections::BTreeMap<&'static str, String> = Default::default();
    let mut pos = positional.into_iter();
    for (name, value) in ORDER.iter().zip(pos.by_ref()) {
        f.insert(name, value);
    }
    if let Some(extra) = pos.next() {
        return Err(EndpointError::TooManyFields { kind: "ssl", extra });
    }
    for (k, v) in keyword {
        let name =
            ORDER
                .iter()
                .chain(WEFT_KEYS)
                .find(|a| **a == k)
                .ok_or(EndpointError::UnknownKey {
                    kind: "ssl",
                    key: k,
                })?;
        if f.insert(name, v).is_some() {
            return Err(EndpointError::Duplicate(name));
        }
    }
    let port = f.get("port").ok_or(EndpointError::MissingField {
        kind: "ssl",
        field: "port",
    })?;
    let port: u16 = port
        .parse()
        .map_err(|_| bad("port", port, "a port number from 0 to 65535"))?;
    let interface = match f.get("interface") {
        Some(i) => i
            .parse::<IpAddr>()
            .map_err(|_| bad("interface", i, "an IP address such as 127.0.0.1"))?,
        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    };
    let backlog = match f.get("backlog") {
        Some(b) => b.parse().map_err(|_| bad("backlog", b, "a whole number"))?,
        None => DEFAULT_BACKLOG,
    };
    let method = match f.get("sslmethod") {
        Some(m) => TlsMethod::parse(m).map_err(|_| {
            bad(
                "sslmethod",
                m,
                "TLS_METHOD, SSLv23_METHOD or TLSv1_2_METHOD (SSLv3, TLS 1.0 and 1.1 are insecure and not supported)",
            )
        })?,
        None => TlsMethod::default(),
    };
    if let Some(dh) = f.get("dhParameters") {
        tracing::warn!(
            "ssl endpoint: dhParameters={dh} has no effect (weft's TLS uses ECDHE key exchange only)"
        );
    }
    let sni_directory = f.get("sniDirectory").map(PathBuf::from);
    let private_key = match f.get("privateKey") {
        Some(k) => Some(PathBuf::from(k)),
        None if sni_directory.is_some() => None,
        None => Some(PathBuf::from(DEFAULT_PRIVATE_KEY)),
    };
    let tls = ServerTlsOptions {
        private_key,
        cert_key: f.get("certKey").map(PathBuf::from),
        extra_cert_chain: f.get("extraCertChain").map(PathBuf::from),
        method,
        alpn: match f.get("alpn") {
            Some(a) => parse_alpn(a)?,
            None => Vec::new(),
        },
        handshake_timeout: match f.get("handshakeTimeout") {
            Some(t) => parse_seconds("handshakeTimeout", t)?,
            None => DEFAULT_HANDSHAKE_TIMEOUT,
        },
        client_ca: f.get("clientCA").map(PathBuf::from),
        sni_directory,
        max_handshakes: match f.get("maxHandshakes") {
            Some(n) => n
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| bad("maxHandshakes", n, "a positive whole number"))?,
            None => DEFAULT_MAX_HANDSHAKES,
        },
    };
    Ok((
        ServerEndpoint::Tcp {
            port,
            interface,
            backlog,
        },
        tls,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(s: &str) -> ServerTlsOptions {
        parse_ssl_endpoint(s).unwrap().1
    }

    #[test]
    fn ssl_defaults_follow_twisted() {
        let o = opts("ssl:443");
        assert_eq!(o.private_key, Some(PathBuf::from("server.pem")));
        assert_eq!(o.cert_key, None);
        assert_eq!(o.method, TlsMethod::Tls12And13);
        assert_eq!(o.handshake_timeout, DEFAULT_HANDSHAKE_TIMEOUT);
    }

    #[test]
    fn ssl_positional_order_is_twisteds() {
        let (tcp, o) =
            parse_ssl_endpoint("ssl:443:k.pem:c.pem:TLSv1_2_METHOD:127.0.0.1:7").unwrap();
        assert_eq!(o.private_key, Some(PathBuf::from("k.pem")));
        assert_eq!(o.cert_key, Some(PathBuf::from("c.pem")));
        assert_eq!(o.method, TlsMethod::Tls12Only);
        assert_eq!(tcp.to_string(), "tcp:443:interface=127.0.0.1:backlog=7");
    }

    #[test]
    fn ssl_weft_additions_parse() {
        let o = opts(
            "ssl:0:privateKey=k.pem:alpn=h2:handshakeTimeout=0.5:clientCA=ca.pem:maxHandshakes=3",
        );
        assert_eq!(o.alpn, vec![b"h2".to_vec()]);
        assert_eq!(o.handshake_timeout, Duration::from_millis(500));
        assert_eq!(o.client_ca, Some(PathBuf::from("ca.pem")));
        assert_eq!(o.max_handshakes, 3);
        assert_eq!(opts("ssl:0:sniDirectory=/d").private_key, None);
    }

    #[test]
    fn ssl_errors_name_the_field() {
        let msg = |s: &str| parse_ssl_endpoint(s).unwrap_err().to_string();
        for old in ["SSLv3_METHOD", "TLSv1_METHOD", "TLSv1_1_METHOD", "nonsense"] {
            assert!(msg(&format!("ssl:1:sslmethod={old}")).contains("`sslmethod`"));
        }
        assert!(msg("ssl:1:alpn=h2,,x").contains("`alpn`"));
        assert!(msg("ssl:1:handshakeTimeout=0").contains("`handshakeTimeout`"));
        assert!(msg("ssl:x").contains("`port`"));
        assert!(msg("ssl:1:color=red").contains("`color`"));
        assert!(msg("ssl").contains("`port`"));
        assert!(TlsMethod::parse("TLSv1_1_METHOD")
            .unwrap_err()
            .contains("insecure"));
    }

    #[test]
    fn ssl_dh_parameters_are_accepted() {
        assert!(parse_ssl_endpoint("ssl:1:dhParameters=dh.pem").is_ok());
    }
}
