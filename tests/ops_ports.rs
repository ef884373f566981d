//! No silent port sharing: a port another process listens on is refused, and so is
//! the same endpoint twice, unless joining the port group is asked for.

mod support;

use std::process::Command;

use support::{connect, round_trip, WeftProcess};

fn weft(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_second_weft_on_a_port_in_use_is_refused_with_exit_2() {
    let first = WeftProcess::start(&["serve", "echo", "tcp:0:interface=127.0.0.1", "--cores", "1"]);
    let port = first.tcp_addr().port();
    let ep = format!("tcp:{port}:interface=127.0.0.1");
    let (code, err) = weft(&["serve", "echo", &ep, "--cores", "1"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("another process listens on this port"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    // The first one is untouched and takes every connection.
    let mut c = connect(first.tcp_addr());
    assert_eq!(round_trip(&mut c, b"still mine"), b"still mine");
}

#[test]
fn joining_the_port_group_is_an_explicit_choice() {
    let first = WeftProcess::start(&["serve", "echo", "tcp:0:interface=127.0.0.1", "--cores", "1"]);
    let ep = format!("tcp:{}:interface=127.0.0.1", first.tcp_addr().port());
    let second = WeftProcess::start(&["serve", "echo", &ep, "--cores", "1", "--join-port-group"]);
    assert_eq!(second.tcp_addr(), first.tcp_addr());
    let (code, _) = second.terminate();
    assert_eq!(code, 0);
}

#[test]
fn the_same_endpoint_twice_is_refused() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let ep = format!("tcp:{port}:interface=127.0.0.1");
    let (code, err) = weft(&["serve", "echo", &ep, &ep]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("is given twice"), "{err}");
    let (code, err) = weft(&[
        "serve",
        "echo",
        "unix:/tmp/weft-twice.sock",
        "unix:/tmp/weft-twice.sock",
    ]);
    assert_eq!(code, Some(2), "{err}");
}
