//! A TLS echo server on tokio-rustls: the peer weft's `ssl:` echo is measured
//! against (same rustls, same ring provider, one thread, TCP_NODELAY as weft).
//!
//! Usage: `tokio-rustls-echo PORT PEM` (PEM holds the key and the certificate).
//! Each connection is one task with a 4 KiB read buffer, the idiomatic shape; it
//! echoes until EOF or close_notify, then sends its own close_notify.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = args
        .next()
        .and_then(|p| p.parse().ok())
        .expect("usage: tokio-rustls-echo PORT PEM");
    let pem = args.next().expect("usage: tokio-rustls-echo PORT PEM");
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&pem)
        .expect("read PEM")
        .collect::<Result<_, _>>()
        .expect("certificates");
    let key = PrivateKeyDer::from_pem_file(&pem).expect("private key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("certificate and key");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        eprintln!("listening on tcp:{}", listener.local_addr().expect("addr"));
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                continue;
            };
            let _ = sock.set_nodelay(true);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(sock).await else {
                    return;
                };
                let mut buf = [0u8; 4096];
                loop {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if tls.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
                let _ = tls.shutdown().await;
            });
        }
    });
}
