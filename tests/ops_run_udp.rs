//! `weft run FILE.toml` with UDP services in the file: a UDP echo and a UDP qotd
//! beside a TCP echo, on 2 shards, answering real sockets; SIGHUP re-reads the
//! file and the UDP ports keep serving.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use support::{connect, round_trip, WeftProcess, IO_TIMEOUT};

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("weft-run-udp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Waits until the process printed `n` lines starting with `prefix`; returns them.
fn wait_lines(p: &mut WeftProcess, prefix: &str, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        p.drain_log();
        let found: Vec<String> = p
            .log
            .iter()
            .filter(|l| l.starts_with(prefix))
            .cloned()
            .collect();
        if found.len() >= n {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "no {n} × {prefix:?} in {:?}",
            p.log
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The address of a `listening on udp:ADDR (N shards)` line.
fn udp_addr(line: &str) -> SocketAddr {
    line.strip_prefix("listening on udp:")
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("{line}"))
        .parse()
        .unwrap()
}

/// Sends `msg` from a fresh socket (a new flow) and returns the reply.
fn ask(to: SocketAddr, msg: &[u8]) -> Vec<u8> {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.send_to(msg, to).unwrap();
    let mut buf = [0u8; 2048];
    let (n, from) = s.recv_from(&mut buf).unwrap();
    assert_eq!(from, to, "the reply comes from the port asked");
    buf[..n].to_vec()
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

const QUOTE: &str = "Less is more.";

fn write_config(path: &PathBuf, max_connections: usize) {
    std::fs::write(
        path,
        format!(
            "cores = 2\nmax_connections = {max_connections}\n\n\
             [[service]]\nkind = \"echo\"\nlisten = [\"udp:0:interface=127.0.0.1\"]\n\n\
             [[service]]\nkind = \"qotd\"\nlisten = [\"udp:0:interface=127.0.0.1:maxPacketSize=512\"]\n\
             quote = \"{QUOTE}\"\n\n\
             [[service]]\nkind = \"echo\"\nlisten = [\"tcp:0:interface=127.0.0.1\"]\n"
        ),
    )
    .unwrap();
}

#[test]
fn udp_services_from_a_config_file_answer_on_both_shards_and_survive_a_reload() {
    let dir = temp_dir("two");
    let config = dir.join("weft.toml");
    write_config(&config, 10);
    let mut p = WeftProcess::start(&["run", config.to_str().unwrap()]);
    let lines = wait_lines(&mut p, "listening on udp:", 2);
    assert!(lines.iter().all(|l| l.ends_with("(2 shards)")), "{lines:?}");
    let udp: Vec<SocketAddr> = lines.iter().map(|l| udp_addr(l)).collect();
    wait_lines(&mut p, "listening on tcp:", 1);
    let tcp = p
        .log
        .iter()
        .find_map(|l| l.strip_prefix("listening on tcp:"))
        .and_then(|r| r.split(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    // Which port is which: the qotd answers with the quote whatever it is sent.
    let (echo, qotd) = if ask(udp[0], b"which") == b"which" {
        (udp[0], udp[1])
    } else {
        (udp[1], udp[0])
    };
    for i in 0..64 {
        let msg = format!("flow {i}");
        assert_eq!(ask(echo, msg.as_bytes()), msg.as_bytes());
    }
    for msg in [&b""[..], b"a quote please", &[0xff; 1000]] {
        assert_eq!(ask(qotd, msg), format!("{QUOTE}\r\n").as_bytes());
    }
    let mut c = connect(tcp);
    assert_eq!(round_trip(&mut c, b"tcp too"), b"tcp too");

    write_config(&config, 20);
    p.signal("HUP");
    assert!(
        p.wait_for_log("reloaded", Duration::from_secs(20)),
        "{:?}",
        p.log
    );
    assert_eq!(ask(echo, b"after the reload"), b"after the reload");
    assert_eq!(ask(qotd, b"again"), format!("{QUOTE}\r\n").as_bytes());
    assert_eq!(round_trip(&mut c, b"still here"), b"still here");
    drop(c);

    let (code, log) = p.terminate();
    assert_eq!(code, 0, "{log:?}");
    let per_shard = datagrams_per_shard(&log);
    assert_eq!(per_shard.len(), 2, "{log:?}");
    // The probe, 64 echo flows, 3 to the qotd, and one to each after the reload.
    assert_eq!(per_shard.iter().sum::<u64>(), 1 + 64 + 3 + 1 + 1, "{log:?}");
    assert!(
        per_shard.iter().all(|n| *n > 0),
        "both shards serve: {log:?}"
    );
}
