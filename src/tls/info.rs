//! What a finished handshake negotiated, as the inner protocol sees it
//! (Twisted's `negotiatedProtocol`, `getPeerCertificate`, `ISSLTransport`).

use rustls::pki_types::CertificateDer;
use rustls::{CipherSuite, ProtocolVersion};

/// The facts of one TLS session, fixed when its handshake completed. A protocol
/// reads them through [`Transport::tls`](crate::Transport::tls).
///
/// # Examples
/// ```no_run
/// # use weft::{Protocol, Transport};
/// struct Hello;
/// impl Protocol for Hello {
///     fn connection_made(&mut self, t: &mut Transport) {
///         let alpn = t.tls().and_then(|tls| tls.negotiated_protocol()).map(<[u8]>::to_vec);
///         t.write(alpn.as_deref().unwrap_or(b"none"));
///     }
///     fn data_received(&mut self, _: &[u8], _: &mut Transport) {}
/// }
/// ```
#[derive(Debug, Clone)]
pub struct TlsInfo {
    pub(crate) alpn: Option<Vec<u8>>,
    pub(crate) version: Option<ProtocolVersion>,
    pub(crate) cipher_suite: Option<CipherSuite>,
    pub(crate) server_name: Option<String>,
    pub(crate) peer_certificates: Vec<CertificateDer<'static>>,
}

impl TlsInfo {
    /// The facts of `conn`; `server_name` is the name a client verified, or the
    /// name a server's client asked for.
    pub(crate) fn of(conn: &rustls::CommonState, server_name: Option<String>) -> TlsInfo {
        TlsInfo {
            alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
            version: conn.protocol_version(),
            cipher_suite: conn.negotiated_cipher_suite().map(|s| s.suite()),
            server_name,
            peer_certificates: conn
                .peer_certificates()
                .map(<[CertificateDer<'static>]>::to_vec)
                .unwrap_or_default(),
        }
    }

    /// Returns the ALPN protocol both ends agreed on, if any (Twisted's
    /// `negotiatedProtocol`).
    pub fn negotiated_protocol(&self) -> Option<&[u8]> {
        self.alpn.as_deref()
    }

    /// Returns the TLS version, such as `TLSv1_3`.
    pub fn version(&self) -> Option<ProtocolVersion> {
        self.version
    }

    /// Returns the cipher suite, such as `TLS13_AES_128_GCM_SHA256`.
    pub fn cipher_suite(&self) -> Option<CipherSuite> {
        self.cipher_suite
    }

    /// Returns the server name: on a server, what the client asked for (SNI); on a
    /// client, the name it verified the server's certificate against.
    pub fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    /// Returns the peer's certificate chain, its own first (Twisted's
    /// `getPeerCertificate` gives the first); empty when the peer sent none.
    pub fn peer_certificates(&self) -> &[CertificateDer<'static>] {
        &self.peer_certificates
    }
}
