//! `loadgen echo --tls` and `loadgen connect --tls` against weft's echo over TLS (2
//! shards, in this process, a P-256 certificate made by `openssl req`): requests and
//! handshakes counted on both sides, every echoed byte checked, and an untrusted
//! certificate refused.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{eventually, loadgen, read_json, temp_path};
use weft::services::wire::{Echo, SimpleFactory};
use weft::tls::{ServerTls, ServerTlsOptions, TlsServerFactory, TlsStats};

/// A self-signed P-256 certificate for `localhost` and 127.0.0.1: returns the PEM
/// with key and certificate (for the server) and the certificate alone (the CA).
fn certificate(tag: &str) -> (PathBuf, PathBuf) {
    let key_and_cert = temp_path(&format!("{tag}-server.pem"));
    let cert = temp_path(&format!("{tag}-cert.pem"));
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .arg("ec_paramgen_curve:prime256v1")
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key_and_cert)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs (installed by .ci/test)");
    assert!(status.success(), "openssl req failed");
    let mut pem = std::fs::read(&key_and_cert).unwrap();
    pem.extend(std::fs::read(&cert).unwrap());
    std::fs::write(&key_and_cert, pem).unwrap();
    (key_and_cert, cert)
}

/// weft's echo over TLS on 2 shards; returns the server, its address and every
/// shard's TLS counters.
fn tls_echo(pem: &Path) -> (weft::ServerHandle, String, Arc<Mutex<Vec<Arc<TlsStats>>>>) {
    weft::runtime::check_io_uring().expect("io_uring is required");
    let tls = ServerTls::load(ServerTlsOptions::new(pem)).expect("certificate loads");
    let stats = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&stats);
    let server = weft::Server::builder()
        .cores(2)
        .listen("tcp:0:interface=127.0.0.1", move |_| {
            let f = TlsServerFactory::new(Arc::clone(&tls), SimpleFactory::new(|| Echo));
            seen.lock().unwrap().push(f.stats());
            f
        })
        .start()
        .expect("weft starts");
    let addr = server.tcp_addr().unwrap().to_string();
    (server, addr, stats)
}

fn completed(stats: &Mutex<Vec<Arc<TlsStats>>>) -> u64 {
    stats.lock().unwrap().iter().map(|s| s.completed()).sum()
}

fn run(args: &[&str]) -> (support::Run, serde_json::Value) {
    let json = temp_path("tls-run.json");
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--json", json.to_str().unwrap()]);
    let run = loadgen(&all, Duration::from_secs(60));
    let v = std::fs::read(&json)
        .ok()
        .map(|_| read_json(&json))
        .unwrap_or(serde_json::Value::Null);
    let _ = std::fs::remove_file(&json);
    (run, v)
}

#[test]
fn loadgen_echo_tls_with_a_ca_file_echoes_through_weft_with_zero_errors() {
    let (pem, ca) = certificate("echo-ca");
    let (server, addr, stats) = tls_echo(&pem);
    let (r, v) = run(&[
        "echo",
        "--target",
        &addr,
        "--tls",
        "--ca",
        ca.to_str().unwrap(),
        "--server-name",
        "localhost",
        "--connections",
        "16",
        "--duration",
        "1s",
    ]);
    assert_eq!(r.status, 0, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    let requests = v["requests"].as_u64().unwrap();
    assert!(requests > 500, "only {requests} requests");
    assert_eq!(v["error_count"], 0);
    // One handshake per connection, each one completed on the server.
    assert_eq!(completed(&stats), 16);
    // Ciphertext: every 64-byte request costs more than 64 bytes on the wire.
    let sent = v["bytes_sent"].as_u64().unwrap();
    assert!(
        sent > requests * 64,
        "{sent} bytes sent for {requests} requests"
    );
    server.shutdown().unwrap();
}

#[test]
fn loadgen_echo_tls_insecure_accepts_the_test_certificate_by_address() {
    let (pem, _) = certificate("echo-insecure");
    let (server, addr, stats) = tls_echo(&pem);
    let (r, v) = run(&[
        "echo",
        "--target",
        &addr,
        "--tls",
        "--insecure",
        "--connections",
        "4",
        "--depth",
        "4",
        "--size",
        "1000",
        "--duration",
        "500ms",
    ]);
    assert_eq!(r.status, 0, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    assert!(v["requests"].as_u64().unwrap() > 100);
    assert_eq!(v["error_count"], 0);
    assert_eq!(completed(&stats), 4);
    server.shutdown().unwrap();
}

#[test]
fn loadgen_echo_tls_refuses_an_untrusted_certificate_and_says_so() {
    let (pem, _) = certificate("echo-untrusted");
    let (server, addr, stats) = tls_echo(&pem);
    // No --ca: the system's store does not hold this self-signed certificate.
    let (r, v) = run(&[
        "echo",
        "--target",
        &addr,
        "--tls",
        "--server-name",
        "localhost",
        "--connections",
        "2",
        "--duration",
        "200ms",
    ]);
    assert_ne!(r.status, 0, "a refused certificate is a failed run");
    let errors = v["errors"].as_object().expect("errors in the report");
    assert!(
        errors
            .keys()
            .any(|k| k.starts_with("tls:InvalidCertificate")),
        "{errors:?}"
    );
    assert_eq!(completed(&stats), 0);
    server.shutdown().unwrap();
}

#[test]
fn loadgen_connect_tls_counts_full_handshakes_the_server_completed() {
    let (pem, ca) = certificate("connect");
    let (server, addr, stats) = tls_echo(&pem);
    let (r, v) = run(&[
        "connect",
        "--target",
        &addr,
        "--tls",
        "--ca",
        ca.to_str().unwrap(),
        "--server-name",
        "localhost",
        "--connections",
        "8",
        "--close",
        "fin",
        "--duration",
        "1s",
    ]);
    assert_eq!(r.status, 0, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    assert_eq!(v["error_count"], 0);
    let handshakes = v["requests"].as_u64().unwrap();
    assert!(handshakes > 20, "only {handshakes} handshakes");
    // The client is done once it has sent its Finished; the server may still be
    // reading the last few when the run ends.
    eventually(Duration::from_secs(10), || {
        completed(&stats) + 8 >= handshakes
    });
    let served = completed(&stats);
    assert!(
        served + 8 >= handshakes && served <= handshakes + 8,
        "server completed {served}, loadgen counted {handshakes}"
    );
    assert!(v["latency_us"]["count"].as_u64().unwrap() > 0);
    server.shutdown().unwrap();
}

#[test]
fn loadgen_tls_options_are_checked_before_any_connection() {
    let usage = |args: &[&str]| loadgen(args, Duration::from_secs(10));
    // --ca means nothing without --tls.
    let r = usage(&["echo", "--target", "127.0.0.1:1", "--ca", "ca.pem"]);
    assert_eq!(r.status, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--tls"), "{}", r.stderr);
    // --ca and --insecure contradict each other.
    let r = usage(&[
        "connect",
        "--target",
        "127.0.0.1:1",
        "--tls",
        "--ca",
        "ca.pem",
        "--insecure",
    ]);
    assert_eq!(r.status, 2, "{}", r.stderr);
    // A CA file that cannot be read is named, before anything connects.
    let missing = temp_path("no-such-ca.pem");
    let r = usage(&[
        "echo",
        "--target",
        "127.0.0.1:1",
        "--tls",
        "--ca",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(r.status, 2, "{}", r.stderr);
    assert!(r.stderr.contains("no-such-ca.pem"), "{}", r.stderr);
}
