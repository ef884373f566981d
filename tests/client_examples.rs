//! The client examples, run as programs against loopback servers.

mod support_client;

use std::io::Read;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support_client::{closed_port, example};
use weft::services::wire::{Echo, SimpleFactory};
use weft::Server;

#[test]
fn echo_client_prints_each_echoed_line_and_exits_0_after_bye_bye() {
    let server = Server::builder()
        .cores(2)
        .listen("tcp:0:interface=127.0.0.1", |_| SimpleFactory::new(|| Echo))
        .start()
        .expect("echo server");
    let port = server.tcp_addr().unwrap().port();
    let out = Command::new(example("echo_client"))
        .arg(format!("tcp:127.0.0.1:{port}:timeout=5"))
        .stderr(Stdio::inherit())
        .output()
        .expect("run echo_client");
    server.shutdown().expect("server stops");
    assert!(out.status.success(), "exit status {:?}", out.status);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "receive: Hello, world!\nreceive: What a fine day it is.\nreceive: Bye-bye!\n"
    );
}

#[test]
fn echo_client_exits_1_when_the_connection_is_refused() {
    let out = Command::new(example("echo_client"))
        .arg(format!("tcp:127.0.0.1:{}", closed_port()))
        .output()
        .expect("run echo_client");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused"));
}

#[test]
fn greeter_sends_two_messages_a_second_apart_and_hangs_up_after_two_seconds() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let start = Instant::now();
        let mut got = Vec::new();
        let mut arrivals = Vec::new();
        let mut buf = [0u8; 256];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    got.extend_from_slice(&buf[..n]);
                    arrivals.push(start.elapsed());
                }
            }
        }
        (got, arrivals, start.elapsed())
    });
    let status = Command::new(example("greeter"))
        .arg(format!("tcp:127.0.0.1:{port}"))
        .status()
        .expect("run greeter");
    let (got, arrivals, closed_after) = server.join().unwrap();
    assert!(status.success());
    assert_eq!(
        String::from_utf8_lossy(&got),
        "MESSAGE Hello\nMESSAGE This is sent in a second\n"
    );
    assert!(arrivals[0] < Duration::from_millis(500), "{arrivals:?}");
    assert!(
        *arrivals.last().unwrap() >= Duration::from_millis(900),
        "{arrivals:?}"
    );
    assert!(
        closed_after >= Duration::from_millis(1900) && closed_after < Duration::from_secs(5),
        "closed after {closed_after:?}"
    );
}
