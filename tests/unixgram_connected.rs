//! A connected UNIX datagram port (Twisted's `connectUNIXDatagram`): a `unixgram:`
//! port that `connect_unix`s to a real `UnixDatagram` peer writes to it with
//! `write_connected`, gets its answers, is refused by the kernel to strangers, and
//! reports the peer's going away through `connection_refused`.

mod support;

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{require_io_uring, IO_TIMEOUT};
use weft::datagram::{DatagramAddress, DatagramError, DatagramProtocol, DatagramTransport};
use weft::Server;

/// Connects to `peer`, says hello; once answered, writes `ping` every 20 ms.
struct Client {
    peer: PathBuf,
    events: mpsc::Sender<String>,
}

impl DatagramProtocol for Client {
    fn start_protocol(&mut self, t: &mut DatagramTransport) {
        let udp_style = t.connect("127.0.0.1", 9);
        let _ = self.events.send(format!("ip connect: {udp_style:?}"));
        t.connect_unix(&self.peer).unwrap();
        let second = t.connect_unix(&self.peer);
        let _ = self.events.send(format!("second connect: {second:?}"));
        let _ = self.events.send(format!(
            "peer: {:?}",
            t.connected_peer()
                .and_then(|a| a.path().map(|p| p.to_path_buf()))
        ));
        t.write_connected(b"hello").unwrap();
    }

    fn datagram_received(
        &mut self,
        data: &[u8],
        from: &DatagramAddress,
        t: &mut DatagramTransport,
    ) {
        let _ = self.events.send(format!(
            "got {} from {:?}",
            String::from_utf8_lossy(data),
            from.path()
        ));
        let handle = t.handle();
        let sleep = t.reactor().clone();
        t.reactor().spawn_local(async move {
            loop {
                sleep.sleep(Duration::from_millis(20)).await;
                if handle.write_connected(b"ping").is_err() {
                    break;
                }
            }
        });
    }

    fn connection_refused(&mut self, _t: &mut DatagramTransport) {
        let _ = self.events.send("refused".into());
    }
}

fn next(rx: &mpsc::Receiver<String>, seen: &mut Vec<String>) -> String {
    let e = rx
        .recv_timeout(IO_TIMEOUT)
        .unwrap_or_else(|_| panic!("no more events; so far: {seen:?}"));
    seen.push(e.clone());
    e
}

#[test]
fn a_connected_unixgram_port_talks_to_its_peer_only_and_reports_it_gone() {
    require_io_uring();
    let dir = std::env::temp_dir().join(format!("weft-unixgram-conn-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (ours, theirs) = (dir.join("weft.sock"), dir.join("peer.sock"));
    let peer = UnixDatagram::bind(&theirs).unwrap();
    peer.set_read_timeout(Some(IO_TIMEOUT)).unwrap();

    let (tx, rx) = mpsc::channel();
    let tx = Arc::new(Mutex::new(tx));
    let to = theirs.clone();
    let server = Server::builder()
        .cores(2)
        .pin(false)
        .listen_datagram(&[format!("unixgram:{}", ours.display())], move |_| Client {
            peer: to.clone(),
            events: tx.lock().unwrap().clone(),
        })
        .start()
        .expect("server starts");

    let mut seen = Vec::new();
    assert_eq!(
        next(&rx, &mut seen),
        format!("ip connect: {:?}", Err::<(), _>(DatagramError::WrongFamily))
    );
    assert_eq!(
        next(&rx, &mut seen),
        "second connect: Err(AlreadyConnected)"
    );
    assert_eq!(next(&rx, &mut seen), format!("peer: {:?}", Some(&theirs)));

    let mut buf = [0u8; 64];
    let (n, from) = peer.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello");
    assert_eq!(
        from.as_pathname(),
        Some(ours.as_path()),
        "sent from the port's path"
    );

    // A stranger may not write to a connected UNIX datagram socket.
    let stranger = UnixDatagram::unbound().unwrap();
    let e = stranger.send_to(b"let me in", &ours).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{e}");

    peer.send_to(b"hi", &ours).unwrap();
    assert_eq!(
        next(&rx, &mut seen),
        format!("got hi from {:?}", Some(&theirs))
    );
    // The pings arrive while the peer is there ...
    let (n, _) = peer.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"ping");
    // ... and are refused once it is gone.
    drop(peer);
    while next(&rx, &mut seen) != "refused" {}
    assert!(
        seen.iter().all(|e| !e.starts_with("got let me in")),
        "{seen:?}"
    );
    server.shutdown().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
