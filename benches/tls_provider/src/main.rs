//! Server-side CPU per full TLS 1.3 handshake (ECDSA P-256), ring against
//! aws-lc-rs: client and server in memory, only the server's calls are timed.
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn run(name: &str, p: CryptoProvider, pem: &str, n: u32) {
    let p = Arc::new(p);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(pem)
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(pem).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certs[0].clone()).unwrap();
    let sc = Arc::new(
        rustls::ServerConfig::builder_with_provider(p.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap(),
    );
    let cc = Arc::new(
        rustls::ClientConfig::builder_with_provider(p.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let mut server_time = Duration::ZERO;
    for _ in 0..n {
        let mut c =
            rustls::ClientConnection::new(cc.clone(), ServerName::try_from("localhost").unwrap())
                .unwrap();
        let mut s = rustls::ServerConnection::new(sc.clone()).unwrap();
        let mut buf = Vec::new();
        while c.is_handshaking() || s.is_handshaking() {
            buf.clear();
            while c.wants_write() {
                c.write_tls(&mut buf).unwrap();
            }
            let t = Instant::now();
            if !buf.is_empty() {
                s.read_tls(&mut &buf[..]).unwrap();
                s.process_new_packets().unwrap();
            }
            let mut out = Vec::new();
            while s.wants_write() {
                s.write_tls(&mut out).unwrap();
            }
            server_time += t.elapsed();
            if !out.is_empty() {
                c.read_tls(&mut &out[..]).unwrap();
                c.process_new_packets().unwrap();
            }
            if buf.is_empty() && out.is_empty() {
                break;
            }
        }
    }
    println!(
        "{name}: {n} handshakes, server {:.1} us each, {:.0} per server-CPU-second",
        server_time.as_secs_f64() * 1e6 / n as f64,
        n as f64 / server_time.as_secs_f64()
    );
}

fn main() {
    let pem = std::env::args().nth(1).unwrap();
    for _ in 0..2 {
        run("ring", rustls::crypto::ring::default_provider(), &pem, 3000);
        run(
            "aws-lc-rs",
            rustls::crypto::aws_lc_rs::default_provider(),
            &pem,
            3000,
        );
    }
}
