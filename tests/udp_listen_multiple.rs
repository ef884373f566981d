//! Twisted's `listenMulticast(port, proto, listenMultiple=True)`: several listeners
//! on one multicast port, each getting every datagram sent to the group. In weft
//! that is joining the port group on purpose (`Application::join_port_group`, the
//! binary's `--join-port-group`); without it a second listener on the port is
//! refused. Two applications (each a server of 2 shards, as two processes would
//! be) bind the group's address and port and join the group on the loopback
//! interface; one datagram to the group reaches all four sockets. The same with two
//! `weft serve discard` processes, the second started with `--join-port-group`.

mod support;
mod support_metrics;

use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use support::{require_io_uring, IO_TIMEOUT};
use weft::application::{
    AppError, Application, ListeningService, PortConflict, RunningApplication,
};
use weft::datagram::{DatagramAddress, DatagramProtocol, DatagramTransport};
use weft::Server;

const GROUP: &str = "239.255.12.35";

/// A member of the group; reports each datagram with its application and shard.
struct Member {
    app: &'static str,
    shard: usize,
    events: mpsc::Sender<(&'static str, usize, Vec<u8>)>,
}

impl DatagramProtocol for Member {
    fn start_protocol(&mut self, t: &mut DatagramTransport) {
        t.join_group(GROUP, "127.0.0.1").unwrap();
    }

    fn datagram_received(&mut self, data: &[u8], _: &DatagramAddress, _: &mut DatagramTransport) {
        let _ = self.events.send((self.app, self.shard, data.to_vec()));
    }
}

fn start(
    app: &'static str,
    port: u16,
    join: bool,
    events: &mpsc::Sender<(&'static str, usize, Vec<u8>)>,
) -> Result<RunningApplication, AppError> {
    let events = Arc::new(Mutex::new(events.clone()));
    // Bound to the group's address: it receives what is sent to the group only.
    let endpoint = format!("udp:{port}:interface={GROUP}");
    let service = ListeningService::datagram(app, &[endpoint], move |shard| Member {
        app,
        shard,
        events: events.lock().unwrap().clone(),
    });
    let mut a = Application::new(app);
    a.join_port_group(join);
    a.add_service(Box::new(service))?;
    a.start(Server::builder().cores(2).pin(false))
}

#[test]
fn two_listeners_joining_the_port_group_each_get_every_multicast_datagram() {
    require_io_uring();
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (tx, rx) = mpsc::channel();
    let first = start("first", port, false, &tx).expect("the first listener starts");
    match start("refused", port, false, &tx) {
        Err(AppError::Port(PortConflict::InUse(_))) => {}
        Err(e) => panic!("expected the port in use, got {e}"),
        Ok(_) => panic!("a second listener without join_port_group was let in"),
    }
    let second = start("second", port, true, &tx).expect("joining the group on purpose");

    let sender = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    sender
        .set_multicast_if_v4(&"127.0.0.1".parse().unwrap())
        .unwrap();
    sender.set_multicast_loop_v4(true).unwrap();
    sender.set_multicast_ttl_v4(1).unwrap();
    let to: SocketAddr = format!("{GROUP}:{port}").parse().unwrap();
    sender.send_to(b"to everyone", &to.into()).unwrap();

    let mut got = Vec::new();
    while got.len() < 4 {
        let (app, shard, data) = rx
            .recv_timeout(IO_TIMEOUT)
            .unwrap_or_else(|_| panic!("only {got:?} got the datagram"));
        assert_eq!(data, b"to everyone");
        got.push((app, shard));
    }
    got.sort();
    assert_eq!(
        got,
        vec![("first", 0), ("first", 1), ("second", 0), ("second", 1)]
    );
    for a in [first, second] {
        a.server().stop();
        a.join().unwrap();
    }
}

/// The address of the process's metrics page, from its `metrics on` line.
fn metrics_addr(p: &mut support::WeftProcess) -> SocketAddr {
    assert!(
        p.wait_for_log("metrics on http://", IO_TIMEOUT),
        "{:?}",
        p.log
    );
    let line = p.log.iter().find(|l| l.starts_with("metrics on ")).unwrap();
    line.strip_prefix("metrics on http://")
        .and_then(|r| r.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("{line}"))
        .parse()
        .unwrap()
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

#[test]
fn two_weft_processes_share_a_multicast_port_with_join_port_group() {
    const GROUP2: &str = "239.255.12.36";
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("udp:{port}:interface={GROUP2}");
    let metrics = "tcp:0:interface=127.0.0.1";
    let mut first = support::WeftProcess::start(&[
        "serve",
        "discard",
        &endpoint,
        "--cores",
        "2",
        "--metrics",
        metrics,
    ]);
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["serve", "discard", &endpoint, "--cores", "2"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("another process"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let mut second = support::WeftProcess::start(&[
        "serve",
        "discard",
        &endpoint,
        "--cores",
        "2",
        "--metrics",
        metrics,
        "--join-port-group",
    ]);

    // The services join no group themselves: this member makes the host one on the
    // loopback interface, and Linux delivers a group datagram to every socket bound
    // to the group's address and port (IP_MULTICAST_ALL, on by default).
    let member = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    member
        .join_multicast_v4(&GROUP2.parse().unwrap(), &"127.0.0.1".parse().unwrap())
        .unwrap();
    let sender = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    sender
        .set_multicast_if_v4(&"127.0.0.1".parse().unwrap())
        .unwrap();
    sender.set_multicast_loop_v4(true).unwrap();
    sender.set_multicast_ttl_v4(1).unwrap();
    let to: SocketAddr = format!("{GROUP2}:{port}").parse().unwrap();
    sender.send_to(b"to every process", &to.into()).unwrap();

    // Each process's page counts the datagram once per shard.
    for p in [&mut first, &mut second] {
        let page = metrics_addr(p);
        support_metrics::wait_for(IO_TIMEOUT, "both shards got the datagram", || {
            let page = support_metrics::scrape(page);
            match support_metrics::sum(&page, "weft_datagrams_received_total") {
                n if n >= 2.0 => Ok(()),
                n => Err(format!("{n} datagrams")),
            }
        });
    }
    for p in [first, second] {
        let (code, log) = p.terminate();
        assert_eq!(code, 0, "{log:?}");
        assert_eq!(datagrams_per_shard(&log), vec![1, 1], "{log:?}");
    }
    drop(member);
}
