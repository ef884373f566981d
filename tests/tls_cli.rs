//! `weft serve SERVICE ssl:…`: the built-in services over TLS through the binary,
//! and a clear error for a missing key file.

mod support;
mod tls_support;

use std::io::Read;
use std::process::Command;

use support::WeftProcess;
use tls_support::*;

#[test]
fn tls_cli_serves_echo_and_qotd_on_ssl_endpoints() {
    let pki = TestPki::new("cli");
    let pem = pki.issue("server.pem", &["localhost"]);
    let config = client_config(&pki.ca(), None);
    let endpoint = format!("ssl:0:interface=127.0.0.1:privateKey={}", esc(&pem));

    let echo_server = WeftProcess::start(&["serve", "echo", "--cores", "2", &endpoint]);
    let mut c = tls_connect(echo_server.tcp_addr(), &config, "localhost").unwrap();
    assert_eq!(echo(&mut c, b"echo over ssl:\r\n"), b"echo over ssl:\r\n");
    drop(c);
    echo_server.terminate();

    let qotd = WeftProcess::start(&["serve", "qotd", "--quote", "tls quote", &endpoint]);
    let mut c = tls_connect(qotd.tcp_addr(), &config, "localhost").unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got)
        .expect("the quote, then close_notify");
    assert_eq!(got, b"tls quote\r\n");
    qotd.terminate();
}

#[test]
fn tls_cli_names_a_missing_key_file() {
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args([
            "serve",
            "echo",
            "ssl:0:privateKey=/nonexistent/weft-key.pem",
        ])
        .output()
        .expect("run weft");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/weft-key.pem"), "{err}");
}

#[test]
fn tls_cli_sighup_reloads_the_certificate_for_new_handshakes_only() {
    let pki = TestPki::new("cli-hup");
    let pem = pki.issue("server.pem", &["localhost"]);
    let endpoint = format!("ssl:0:interface=127.0.0.1:privateKey={}", esc(&pem));
    let mut server = WeftProcess::start(&["serve", "echo", "--cores", "2", &endpoint]);
    // A config per connection: no session is resumed across the reload.
    let (addr, ca) = (server.tcp_addr(), pki.ca());
    let connect = || tls_connect(addr, &client_config(&ca, None), "localhost").unwrap();
    let mut old = connect();
    let old_cert = server_cert(&old);

    // A bad file is refused and the old certificate stays.
    std::fs::write(&pem, b"garbage").unwrap();
    server.signal("HUP");
    assert!(
        server.wait_for_log(
            "kept the old certificate",
            std::time::Duration::from_secs(20)
        ),
        "{:?}",
        server.log
    );
    assert_eq!(server_cert(&connect()), old_cert);

    pki.issue_to(&pem, &["localhost"]);
    server.signal("HUP");
    assert!(
        server.wait_for_log("tls: reloaded", std::time::Duration::from_secs(20)),
        "{:?}",
        server.log
    );
    assert_ne!(
        server_cert(&connect()),
        old_cert,
        "a new handshake sees the new cert"
    );
    assert_eq!(echo(&mut old, b"still up\n"), b"still up\n");
    drop(old);
    server.terminate();
}
