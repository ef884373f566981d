//! TLS for the echo and connect workloads (`--tls`): the client config (trust roots from
//! `--ca FILE`, the system's store, or none at all with `--insecure`), the server name
//! to verify, and a socket as the `Read`/`Write` rustls moves ciphertext through.
//!
//! rustls's buffered client is used: a load generator's cost per request matters only
//! as far as it stays well below the server's, and the buffered API keeps each
//! workload's loop as it is over plain TCP (ciphertext in and out through
//! [`FdIo`], plaintext through the connection's reader and writer).

use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;

use weft::tls::rustls;
use weft::tls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use weft::tls::rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use weft::tls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use weft::tls::rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

use crate::config::RunConfig;
use crate::socket;

/// Which certificates the client accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The system's trust store.
    System,
    /// The CA certificates in this PEM file (`--ca`).
    Ca(PathBuf),
    /// Any certificate at all (`--insecure`): for benchmarks against a test certificate.
    Insecure,
}

/// How a run speaks TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// Which certificates to accept.
    pub trust: Trust,
    /// The name the server's certificate must carry (`--server-name`, by default the
    /// target's host).
    pub server_name: String,
}

/// A client config and the name the server's certificate must carry.
pub type Client = (Arc<ClientConfig>, ServerName<'static>);

/// What a worker thread connects with: the client config and server name when the
/// run is over TLS, `None` when not.
///
/// # Errors
/// `tls:config:…`, as the thread records it. The options were validated before the
/// threads start, so this is an error rather than a panic only to be safe.
pub fn client_of(cfg: &RunConfig) -> Result<Option<Client>, String> {
    cfg.tls
        .as_ref()
        .map(TlsOptions::client)
        .transpose()
        .map_err(|e| format!("tls:config:{e}"))
}

impl TlsOptions {
    /// Builds the rustls client config and the server name these options describe.
    ///
    /// # Errors
    /// A message naming the unreadable CA file or the unusable name.
    pub fn client(&self) -> Result<Client, String> {
        let provider = weft::tls::provider();
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("tls: {e}"))?;
        let config = match &self.trust {
            Trust::Insecure => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnything(provider)))
                .with_no_client_auth(),
            Trust::Ca(path) => builder
                .with_root_certificates(weft::tls::root_store(path).map_err(|e| e.to_string())?)
                .with_no_client_auth(),
            Trust::System => builder
                .with_root_certificates(weft::tls::system_roots().map_err(|e| e.to_string())?)
                .with_no_client_auth(),
        };
        // Every connection a full handshake: no session resumption (the server's
        // tickets are never used), so a `connect --tls` storm measures full handshakes.
        let mut config = config;
        config.resumption = rustls::client::Resumption::disabled();
        let name = ServerName::try_from(self.server_name.clone())
            .map_err(|e| format!("--server-name {}: {e}", self.server_name))?;
        Ok((Arc::new(config), name))
    }
}

/// `--insecure`: accepts every certificate, still checking the handshake's signatures
/// (so the server must hold the key of the certificate it shows).
#[derive(Debug)]
struct AcceptAnything(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A non-blocking socket as rustls's transport: `read_tls` receives into rustls's
/// buffer, `write_tls` sends from it.
pub struct FdIo<'a>(pub &'a OwnedFd);

impl Read for FdIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        socket::recv(self.0, buf)
    }
}

impl Write for FdIo<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        socket::send(self.0, buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Sends what rustls has queued, until it is all sent or the socket is full. Returns
/// the bytes sent.
///
/// # Errors
/// The socket's error (not `WouldBlock`, which only ends the sending).
pub fn send_queued(conn: &mut rustls::ClientConnection, fd: &OwnedFd) -> io::Result<usize> {
    let mut sent = 0;
    while conn.wants_write() {
        match conn.write_tls(&mut FdIo(fd)) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(sent)
}

/// The kind a TLS failure is counted under (`tls:` and rustls's words).
pub fn error_kind(e: &rustls::Error) -> String {
    let text = format!("{e:?}");
    let word: String = text
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    format!("tls:{word}")
}

/// Connects to `addr` and completes a TLS handshake, blocking (up to 5 s for each);
/// returns the socket, non-blocking with `TCP_NODELAY`, and the session.
///
/// # Errors
/// The error kind to count: `connect:ERRNO`, `tls:...` or `tls_io:ERRNO`.
pub fn connect_blocking(
    addr: &std::net::SocketAddr,
    config: &Arc<ClientConfig>,
    name: &ServerName<'static>,
) -> Result<(OwnedFd, rustls::ClientConnection), String> {
    use std::net::TcpStream;
    use std::time::Duration;
    let mut stream = TcpStream::connect_timeout(addr, Duration::from_secs(5))
        .map_err(|e| format!("connect:{}", socket::error_name(&e)))?;
    let io_err = |e: io::Error| match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(t) => error_kind(t),
        None => format!("tls_io:{}", socket::error_name(&e)),
    };
    stream
        .set_nodelay(true)
        .and_then(|_| stream.set_read_timeout(Some(Duration::from_secs(5))))
        .map_err(io_err)?;
    let mut conn = rustls::ClientConnection::new(Arc::clone(config), name.clone())
        .map_err(|e| error_kind(&e))?;
    while conn.is_handshaking() {
        conn.complete_io(&mut stream).map_err(io_err)?;
    }
    stream.set_nonblocking(true).map_err(io_err)?;
    Ok((OwnedFd::from(stream), conn))
}
