//! The client side: the `tls:` client endpoint string, the client config, and
//! `TlsClientFactory`, which wraps a `ClientFactory` so that its protocols run over
//! TLS (Twisted's `wrapClientTLS` / `optionsForClientTLS`).
//!
//! ```text
//! tls:HOST:PORT  or  tls:host=H:port=P[:timeout=S][:bindAddress=A]
//!     [:trustRoots=ca.pem][:certificate=client.pem][:privateKey=key.pem]
//!     weft's: [:alpn=h2,http/1.1][:handshakeTimeout=SECS]
//! ```
//!
//! The server's certificate is verified against `host` (a name or an IP address);
//! without `trustRoots` the system's trust store is used. `certificate` (with
//! `privateKey`, which defaults to `certificate`) is the client's own certificate
//! for mutual TLS. A handshake failure reaches the wrapped factory's
//! `client_connection_lost` as `ConnectionLost(InvalidData)` wrapping the rustls
//! error (a bad name, an untrusted certificate).

use std::cell::{Cell, RefCell};
use std::net::IpAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::ClientConfig;

use crate::address::Address;
use crate::client::{connect, ClientFactory, ConnectError, Connector};
use crate::endpoints::{tokenize, ClientEndpoint, EndpointError, DEFAULT_CONNECT_TIMEOUT};
use crate::reactor::Reactor;
use crate::reason::Reason;

use super::error::TlsConfigError;
use super::options::{parse_alpn, parse_seconds, DEFAULT_HANDSHAKE_TIMEOUT};
use super::pem::{certificates, private_key, root_store, system_roots};
use super::provider::provider;
use super::records::Session;
use super::session::{ShardTls, TlsProtocol};
use super::stats::TlsStats;

/// The TLS half of a `tls:` client endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTlsOptions {
    /// The name the server's certificate must carry (the endpoint's `host`).
    pub server_name: String,
    /// CA certificates to trust instead of the system's (`trustRoots`).
    pub trust_roots: Option<PathBuf>,
    /// The client's certificate chain, for mutual TLS (`certificate`).
    pub certificate: Option<PathBuf>,
    /// The client's key (`privateKey`, defaults to `certificate`).
    pub private_key: Option<PathBuf>,
    /// ALPN protocols to offer (weft's `alpn`).
    pub alpn: Vec<Vec<u8>>,
    /// How long the handshake may take (weft's `handshakeTimeout`, default 10 s).
    pub handshake_timeout: Duration,
}

impl ClientTlsOptions {
    /// Options for `server_name` with the system's trust roots.
    pub fn new(server_name: impl Into<String>) -> ClientTlsOptions {
        ClientTlsOptions {
            server_name: server_name.into(),
            trust_roots: None,
            certificate: None,
            private_key: None,
            alpn: Vec::new(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// Builds the rustls client config these options describe.
    ///
    /// # Errors
    /// [`TlsConfigError`] for an unreadable or unusable file.
    pub fn config(&self) -> Result<Arc<ClientConfig>, TlsConfigError> {
        let roots = match &self.trust_roots {
            Some(path) => root_store(path)?,
            None => system_roots()?,
        };
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsConfigError::Rustls {
                context: "protocol versions".into(),
                error,
            })?
            .with_root_certificates(roots);
        let mut config = match &self.certificate {
            Some(cert) => {
                let key = self.private_key.as_ref().unwrap_or(cert);
                builder
                    .with_client_auth_cert(certificates(cert)?, private_key(key)?)
                    .map_err(|error| TlsConfigError::Rustls {
                        context: format!("certificate {}", cert.display()),
                        error,
                    })?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = self.alpn.clone();
        // After the handshake rustls hands the keys to weft's record layer
        // (src/tls/traffic.rs), which allocates nothing per record.
        config.enable_secret_extraction = true;
        Ok(Arc::new(config))
    }

    fn name(&self) -> Result<ServerName<'static>, TlsConfigError> {
        ServerName::try_from(self.server_name.clone()).map_err(|e| TlsConfigError::BadOption {
            option: "host",
            reason: e.to_string(),
        })
    }
}

fn bad(field: &'static str, value: &str, expected: &'static str) -> EndpointError {
    EndpointError::BadValue {
        field,
        value: value.to_string(),
        expected,
    }
}

/// Parses a `tls:` client endpoint string into its TCP endpoint and TLS options.
///
/// # Errors
/// [`EndpointError`] naming the bad field.
///
/// # Examples
/// ```
/// use weft::tls::parse_tls_endpoint;
/// let (tcp, tls) = parse_tls_endpoint("tls:host=localhost:port=8443:trustRoots=ca.pem").unwrap();
/// assert_eq!(tcp.to_string(), "tcp:host=localhost:port=8443");
/// assert_eq!(tls.server_name, "localhost");
/// ```
pub fn parse_tls_endpoint(desc: &str) -> Result<(ClientEndpoint, ClientTlsOptions), EndpointError> {
    let (mut positional, keyword) = tokenize(desc)?;
    if positional.is_empty() || !positional[0].eq_ignore_ascii_case("tls") {
        return Err(EndpointError::UnknownType(
            positional.first().cloned().unwrap_or_default(),
        ));
    }
    positional.remove(0);
    const KEYS: &[&str] = &[
        "host",
        "port",
        "timeout",
        "bindAddress",
        "trustRoots",
        "certificate",
        "privateKey",
        "alpn",
        "handshakeTimeout",
    ];
    let mut f: std::collections::BTreeMap<&'static str, String> = Default::default();
    for (k, v) in keyword {
        let name = KEYS
            .iter()
            .find(|a| **a == k)
            .ok_or(EndpointError::UnknownKey {
                kind: "tls",
                key: k,
            })?;
        if f.insert(name, v).is_some() {
            return Err(EndpointError::Duplicate(name));
        }
    }
    let free: Vec<&'static str> = ["host", "port"]
        .into_iter()
        .filter(|n| !f.contains_key(n))
        .collect();
    let mut pos = positional.into_iter();
    for (name, value) in free.into_iter().zip(pos.by_ref()) {
        f.insert(name, value);
    }
    if let Some(extra) = pos.next() {
        return Err(EndpointError::TooManyFields { kind: "tls", extra });
    }
    let host = f
        .get("host")
        .filter(|h| !h.is_empty())
        .ok_or(EndpointError::MissingField {
            kind: "tls",
            field: "host",
        })?
        .clone();
    let port = f.get("port").ok_or(EndpointError::MissingField {
        kind: "tls",
        field: "port",
    })?;
    let port: u16 = port
        .parse()
        .map_err(|_| bad("port", port, "a port number from 0 to 65535"))?;
    let timeout = match f.get("timeout") {
        Some(t) => parse_seconds("timeout", t)?,
        None => DEFAULT_CONNECT_TIMEOUT,
    };
    let bind_address = match f.get("bindAddress") {
        Some(a) => Some(
            a.parse::<IpAddr>()
                .map_err(|_| bad("bindAddress", a, "an IP address"))?,
        ),
        None => None,
    };
    if ServerName::try_from(host.as_str()).is_err() {
        return Err(bad("host", &host, "a DNS name or an IP address"));
    }
    let tls = ClientTlsOptions {
        server_name: host.clone(),
        trust_roots: f.get("trustRoots").map(PathBuf::from),
        certificate: f.get("certificate").map(PathBuf::from),
        private_key: f.get("privateKey").map(PathBuf::from),
        alpn: match f.get("alpn") {
            Some(a) => parse_alpn(a)?,
            None => Vec::new(),
        },
        handshake_timeout: match f.get("handshakeTimeout") {
            Some(t) => parse_seconds("handshakeTimeout", t)?,
            None => DEFAULT_HANDSHAKE_TIMEOUT,
        },
    };
    let tcp = ClientEndpoint::Tcp {
        host,
        port,
        timeout,
        bind_address,
    };
    Ok((tcp, tls))
}

/// A client factory whose protocols speak TLS to the server and plaintext to `F`'s
/// protocols. Works under a `ReconnectingClientFactory` too: wrap that.
pub struct TlsClientFactory<F: ClientFactory> {
    inner: Rc<RefCell<F>>,
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    shard: Rc<ShardTls<F::Protocol>>,
}

impl<F: ClientFactory> TlsClientFactory<F> {
    /// Wraps `inner`; the server must present a certificate for `options.server_name`.
    ///
    /// # Errors
    /// [`TlsConfigError`] for an unusable file or server name.
    pub fn new(options: &ClientTlsOptions, inner: F) -> Result<Self, TlsConfigError> {
        Ok(Self::with_config(
            options.config()?,
            options.name()?,
            options.handshake_timeout,
            inner,
        ))
    }

    /// Wraps `inner` with a prebuilt rustls config (to share one across connectors,
    /// or to build it before the reactor starts).
    pub fn with_config(
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
        handshake_timeout: Duration,
        inner: F,
    ) -> Self {
        let inner = Rc::new(RefCell::new(inner));
        let build_from = Rc::clone(&inner);
        let shard = Rc::new(ShardTls {
            build: Box::new(move |addr: &Address| build_from.borrow_mut().build_protocol(addr)),
            stats: Arc::new(TlsStats::default()),
            handshake_timeout,
            in_progress: Cell::new(0),
            last_ending: RefCell::new(None),
            scratch: Default::default(),
        });
        TlsClientFactory {
            inner,
            config,
            name,
            shard,
        }
    }

    /// Returns the wrapped factory.
    pub fn inner(&self) -> &Rc<RefCell<F>> {
        &self.inner
    }

    /// Returns the TLS counters of this factory.
    pub fn stats(&self) -> Arc<TlsStats> {
        Arc::clone(&self.shard.stats)
    }
}

impl<F: ClientFactory> ClientFactory for TlsClientFactory<F> {
    type Protocol = TlsProtocol<F::Protocol>;

    fn build_protocol(&mut self, _addr: &Address) -> Option<Self::Protocol> {
        match rustls::client::UnbufferedClientConnection::new(
            Arc::clone(&self.config),
            self.name.clone(),
        ) {
            Ok(c) => Some(TlsProtocol::new(
                Session::Client(c),
                Rc::clone(&self.shard),
                Some(self.name.to_str().into_owned()),
                self.config.enable_secret_extraction,
            )),
            Err(e) => {
                tracing::warn!("tls: cannot start a client session: {e}");
                None
            }
        }
    }

    fn started_connecting(&mut self, connector: &Connector) {
        self.inner.borrow_mut().started_connecting(connector);
    }

    fn client_connection_failed(&mut self, connector: &Connector, reason: &ConnectError) {
        self.inner
            .borrow_mut()
            .client_connection_failed(connector, reason);
    }

    fn client_connection_lost(&mut self, connector: &Connector, reason: &Reason) {
        let mapped = match self.shard.last_ending.borrow_mut().take() {
            Some(ending) => ending.reason(reason),
            None => super::session::Ending::Clean.reason(reason),
        };
        self.inner
            .borrow_mut()
            .client_connection_lost(connector, &mapped);
    }

    fn start_factory(&mut self) {
        self.inner.borrow_mut().start_factory();
    }

    fn stop_factory(&mut self) {
        self.inner.borrow_mut().stop_factory();
    }
}

/// Connects `factory` over TLS to a `tls:` endpoint string, from this shard.
///
/// # Errors
/// [`TlsConfigError`] if the string does not parse or a file named in it is bad.
pub fn connect_tls<F: ClientFactory>(
    reactor: &Reactor,
    desc: &str,
    factory: F,
) -> Result<Connector, TlsConfigError> {
    let (tcp, options) = parse_tls_endpoint(desc).map_err(TlsConfigError::Endpoint)?;
    Ok(connect(
        reactor,
        tcp,
        TlsClientFactory::new(&options, factory)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_endpoint_positional_and_keyword_forms_agree() {
        let a = parse_tls_endpoint("tls:example.org:443").unwrap();
        let b = parse_tls_endpoint("tls:host=example.org:port=443").unwrap();
        let c = parse_tls_endpoint("tls:host=example.org:443").unwrap();
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert_eq!(a.1.server_name, "example.org");
    }

    #[test]
    fn tls_endpoint_takes_twisteds_and_weft_options() {
        let (tcp, o) = parse_tls_endpoint(
            "tls:h:1:timeout=2:bindAddress=127.0.0.1:trustRoots=ca.pem:certificate=c.pem:privateKey=k.pem:alpn=irc:handshakeTimeout=3",
        )
        .unwrap();
        assert_eq!(tcp.timeout(), Duration::from_secs(2));
        assert_eq!(o.trust_roots, Some("ca.pem".into()));
        assert_eq!(o.certificate, Some("c.pem".into()));
        assert_eq!(o.private_key, Some("k.pem".into()));
        assert_eq!(o.alpn, vec![b"irc".to_vec()]);
        assert_eq!(o.handshake_timeout, Duration::from_secs(3));
    }

    #[test]
    fn tls_endpoint_errors_name_the_field() {
        let msg = |s: &str| parse_tls_endpoint(s).unwrap_err().to_string();
        assert!(msg("tls:h").contains("`port`"));
        assert!(msg("tls:port=1").contains("`host`"));
        assert!(msg("tls:h:1:color=red").contains("`color`"));
        assert!(msg("tls:h:1:timeout=0").contains("`timeout`"));
        assert!(msg("tls:h:1:x").contains("extra"));
    }
}
