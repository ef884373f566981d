//! `weft serve KIND udp:…` and `unixgram:…`: the RFC simple services over
//! datagrams, on two shards, against real clients (`nc -u`, `socat`, Python).

mod support;

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use support::WeftProcess;

const UDP: &str = "udp:0:interface=127.0.0.1";

/// Runs a Python 3 script with `args`; returns its stdout (fails on a non-zero
/// exit, with its stderr).
fn python(script: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 must be installed");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Sends `input` with `nc -u` (one datagram per read of stdin) and returns what
/// came back before nc gave up after a second of quiet.
fn nc_udp(addr: SocketAddr, input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("nc")
        .args(["-u", "-w", "1"])
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("nc (Debian package netcat-openbsd) must be installed");
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap().stdout
}

/// Sends `input` as one datagram with `socat` and returns the reply.
fn socat(target: &str, input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("socat")
        .args(["-T", "5", "-", target])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("socat must be installed (see .ci/test)");
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap().stdout
}

/// Per shard, the datagrams its summary line reports (0 when it has none).
fn datagrams_per_shard(log: &[String]) -> Vec<u64> {
    log.iter()
        .filter(|l| l.starts_with("shard "))
        .map(|l| {
            l.split(", ")
                .find_map(|f| f.strip_suffix(" datagrams in"))
                .map_or(0, |n| n.parse().unwrap())
        })
        .collect()
}

/// 64 flows, each a fresh socket sending 3 datagrams and checking every reply.
const FLOWS: &str = r#"
import socket, sys
port = int(sys.argv[1])
for i in range(64):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(20)
    for r in range(3):
        msg = b"flow %d round %d" % (i, r)
        s.sendto(msg, ("127.0.0.1", port))
        data, addr = s.recvfrom(65536)
        assert data == msg, (data, msg)
        assert addr == ("127.0.0.1", port), addr
print("ok")
"#;

#[test]
fn udp_echo_serves_python_flows_on_both_shards() {
    let p = WeftProcess::start(&["serve", "echo", UDP, "--cores", "2"]);
    assert!(
        p.log[0].starts_with("listening on udp:127.0.0.1:"),
        "{:?}",
        p.log
    );
    assert!(p.log[0].ends_with("(2 shards)"), "{:?}", p.log);
    let port = p.udp_addr().port().to_string();
    assert_eq!(python(FLOWS, &[&port]), b"ok\n");
    let (code, log) = p.terminate();
    assert_eq!(code, 0);
    let per_shard = datagrams_per_shard(&log);
    assert_eq!(per_shard.len(), 2, "{log:?}");
    assert_eq!(per_shard.iter().sum::<u64>(), 192, "{log:?}");
    assert!(
        per_shard.iter().all(|n| *n > 0),
        "both shards serve: {log:?}"
    );
}

#[test]
fn udp_echo_answers_nc_and_socat_and_empty_datagrams() {
    let p = WeftProcess::start(&["serve", "echo", UDP, "--cores", "2"]);
    let addr = p.udp_addr();
    assert_eq!(nc_udp(addr, b"hello over udp\n"), b"hello over udp\n");
    let target = format!("UDP:{addr}");
    assert_eq!(
        socat(&target, b"\x00\xff garbage \x01"),
        b"\x00\xff garbage \x01"
    );
    let empty = python(
        r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(20)
s.sendto(b"", ("127.0.0.1", int(sys.argv[1])))
print(len(s.recvfrom(100)[0]))
"#,
        &[&addr.port().to_string()],
    );
    assert_eq!(empty, b"0\n");
}

#[test]
fn udp_echo_and_tcp_echo_share_one_service() {
    let mut p = WeftProcess::start(&[
        "serve",
        "echo",
        "tcp:0:interface=127.0.0.1",
        UDP,
        "--cores",
        "2",
    ]);
    // `start` returns after the first listening line; the second follows.
    assert!(p.wait_for_log("listening on udp:", std::time::Duration::from_secs(20)));
    let udp: SocketAddr = p
        .log
        .iter()
        .find_map(|l| l.strip_prefix("listening on udp:"))
        .and_then(|l| l.split(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(nc_udp(udp, b"by datagram\n"), b"by datagram\n");
    let mut c = support::connect(p.tcp_addr());
    assert_eq!(support::round_trip(&mut c, b"by stream"), b"by stream");
}

#[test]
fn udp_discard_replies_nothing_but_counts_what_it_got() {
    let p = WeftProcess::start(&["serve", "discard", UDP, "--cores", "2"]);
    let got = python(
        r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(10):
    s.sendto(b"into the void %d" % i, ("127.0.0.1", int(sys.argv[1])))
s.settimeout(0.5)
try:
    s.recvfrom(100)
    print("a reply")
except socket.timeout:
    print("silence")
"#,
        &[&p.udp_addr().port().to_string()],
    );
    assert_eq!(got, b"silence\n");
    let (code, log) = p.terminate();
    assert_eq!(code, 0);
    assert_eq!(datagrams_per_shard(&log).iter().sum::<u64>(), 10, "{log:?}");
}

#[test]
fn udp_daytime_answers_socat_with_an_asctime_line() {
    let p = WeftProcess::start(&["serve", "daytime", UDP, "--cores", "2"]);
    let reply = socat(&format!("UDP:{}", p.udp_addr()), b"what time is it?");
    let text = String::from_utf8(reply).unwrap();
    assert!(text.ends_with("\r\n"), "{text:?}");
    // "Wed Dec  2 13:20:00 2026": weekday, month, day, time, year.
    let fields: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(fields.len(), 5, "{text:?}");
    assert!(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].contains(&fields[0]));
    assert_eq!(fields[3].len(), 8, "{text:?}");
    assert!(fields[4].parse::<u32>().unwrap() >= 2024, "{text:?}");
}

#[test]
fn udp_qotd_answers_every_datagram_with_the_quote() {
    let p = WeftProcess::start(&[
        "serve",
        "qotd",
        UDP,
        "--cores",
        "2",
        "--quote",
        "Less is more.",
    ]);
    let got = python(
        r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(20)
for msg in (b"", b"a quote please", b"\xff" * 1000):
    s.sendto(msg, ("127.0.0.1", int(sys.argv[1])))
    sys.stdout.write(s.recvfrom(1000)[0].decode())
"#,
        &[&p.udp_addr().port().to_string()],
    );
    assert_eq!(got, b"Less is more.\r\nLess is more.\r\nLess is more.\r\n");
}

#[test]
fn udp_chargen_answers_nc_with_rotating_lines_within_512_bytes() {
    let p = WeftProcess::start(&["serve", "chargen", UDP, "--cores", "2"]);
    let reply = nc_udp(p.udp_addr(), b"x");
    assert!(!reply.is_empty() && reply.len() <= 512, "{}", reply.len());
    let lines: Vec<&[u8]> = reply
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    assert!(lines.len() >= 2);
    for w in lines.windows(2) {
        assert_eq!(w[0].len(), 73, "72 characters and CR");
        assert_eq!(
            w[0][1], w[1][0],
            "each line starts one character further on"
        );
    }
}

#[test]
fn unixgram_echo_answers_a_bound_python_client_and_socat() {
    let dir = std::env::temp_dir().join(format!("weft-unixgram-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let server = dir.join("echo.sock");
    let endpoint = format!("unixgram:{}", server.display());
    let p = WeftProcess::start(&["serve", "echo", &endpoint, "--cores", "2"]);
    assert_eq!(p.addrs, vec![endpoint.clone()]);
    let client = dir.join("client.sock");
    let got = python(
        r#"
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.settimeout(20)
s.bind(sys.argv[2])
for msg in (b"over a unix datagram socket", b"", bytes(range(256))):
    s.sendto(msg, sys.argv[1])
    data, addr = s.recvfrom(1000)
    assert data == msg, (data, msg)
    assert addr == sys.argv[1], addr
print("ok")
"#,
        &[&server.display().to_string(), &client.display().to_string()],
    );
    assert_eq!(got, b"ok\n");
    let bound = dir.join("socat.sock");
    let reply = socat(
        &format!("UNIX-SENDTO:{},bind={}", server.display(), bound.display()),
        b"from socat",
    );
    assert_eq!(reply, b"from socat");
    let (code, _) = p.terminate();
    assert_eq!(code, 0);
    assert!(!server.exists(), "the socket file is removed at stop");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_second_weft_on_the_same_udp_port_is_refused() {
    let p = WeftProcess::start(&["serve", "echo", UDP, "--cores", "2"]);
    let taken = format!("udp:{}:interface=127.0.0.1", p.udp_addr().port());
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["serve", "discard", &taken])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another process"), "{err}");
    // The first one still answers.
    assert_eq!(nc_udp(p.udp_addr(), b"still mine\n"), b"still mine\n");
}
