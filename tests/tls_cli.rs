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
