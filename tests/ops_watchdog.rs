//! The systemd watchdog's heartbeats: a shard whose loop is blocked stops beating,
//! so the notifier withholds WATCHDOG=1 while it is stuck, and beats again after.

mod support;

use std::time::Duration;

use support::{connect, require_io_uring};
use weft::application::systemd::Heartbeats;
use weft::services::wire::SimpleFactory;
use weft::{Protocol, Server, Transport};

/// Blocks its shard's thread for 1.5 s on the first data (a stuck loop).
struct Stuck;

impl Protocol for Stuck {
    fn data_received(&mut self, _: &[u8], _: &mut Transport) {
        std::thread::sleep(Duration::from_millis(1500));
    }
}

#[test]
fn a_blocked_shard_is_reported_stalled_until_its_loop_runs_again() {
    require_io_uring();
    let beats = Heartbeats::new(2, Duration::from_millis(20));
    let server = beats
        .install(Server::builder().cores(2))
        .listen("tcp:0:interface=127.0.0.1", |_| {
            SimpleFactory::new(|| Stuck)
        })
        .start()
        .unwrap();
    let mut last = Vec::new();
    std::thread::sleep(Duration::from_millis(100));
    beats.stalled(&mut last);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        beats.stalled(&mut last),
        Vec::<usize>::new(),
        "both loops run"
    );

    let mut c = connect(server.tcp_addr().unwrap());
    std::io::Write::write_all(&mut c, b"x").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    beats.stalled(&mut last);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        beats.stalled(&mut last).len(),
        1,
        "the blocked shard stops beating"
    );

    std::thread::sleep(Duration::from_millis(1500));
    beats.stalled(&mut last);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        beats.stalled(&mut last),
        Vec::<usize>::new(),
        "beating again"
    );
    drop(c);
    server.shutdown().unwrap();
}
