//! The systemd watchdog's heartbeats: a shard whose loop is blocked stops beating,
//! so the notifier withholds WATCHDOG=1 while it is stuck, and beats again after.

mod support;

use std::time::{Duration, Instant};

use support::{connect, require_io_uring};
use weft::application::systemd::Heartbeats;
use weft::services::wire::SimpleFactory;
use weft::{Protocol, Server, Transport};

/// Blocks its shard's thread for 3 s on the first data (a stuck loop).
struct Stuck;

impl Protocol for Stuck {
    fn data_received(&mut self, _: &[u8], _: &mut Transport) {
        std::thread::sleep(Duration::from_secs(3));
    }
}

/// Asks `beats` every 100 ms (20 ms beats: five per healthy window) until `want`
/// holds for two windows in a row; false if it never did within `limit`.
fn until(
    beats: &Heartbeats,
    last: &mut Vec<u64>,
    limit: Duration,
    want: impl Fn(&[usize]) -> bool,
) -> bool {
    let deadline = Instant::now() + limit;
    let mut in_a_row = 0;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        in_a_row = if want(&beats.stalled(last)) {
            in_a_row + 1
        } else {
            0
        };
        if in_a_row == 2 {
            return true;
        }
    }
    false
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
    beats.stalled(&mut last);
    assert!(
        until(&beats, &mut last, Duration::from_secs(5), |s| s.is_empty()),
        "both loops run"
    );

    let mut c = connect(server.tcp_addr().unwrap());
    std::io::Write::write_all(&mut c, b"x").unwrap();
    assert!(
        until(&beats, &mut last, Duration::from_millis(2500), |s| s.len()
            == 1),
        "the blocked shard stops beating"
    );
    assert!(
        until(&beats, &mut last, Duration::from_secs(10), |s| s.is_empty()),
        "beating again"
    );
    drop(c);
    server.shutdown().unwrap();
}
