//! A scripted protocol that records how each connection ended, and helpers to wait
//! for and check those endings: shared by the life-cycle suites of both data paths.

use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use weft::{Address, Factory, Protocol, Reason, Transport};

#[derive(Default)]
pub struct Record {
    pub lost: Vec<(u32, String)>,
}

pub type Shared = Arc<Mutex<Record>>;

/// Echoes, and obeys: `lose`, `abort`, `panic`, `flood N`, `pause` (stop reading for
/// 300 ms, then echo everything that came meanwhile).
pub struct Scripted {
    id: u32,
    record: Shared,
}

impl Protocol for Scripted {
    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        let text = String::from_utf8_lossy(data);
        let cmd = text.trim();
        if cmd == "lose" {
            t.write(b"first ");
            t.lose_connection();
            t.write(b"after-lose");
        } else if cmd == "abort" {
            t.write(b"never seen");
            t.abort_connection();
        } else if cmd == "panic" {
            t.write(b"never seen");
            panic!("scripted panic on connection {}", self.id);
        } else if let Some(n) = cmd.strip_prefix("flood ") {
            let n: usize = n.parse().unwrap();
            t.write(&vec![b'x'; n]);
        } else if cmd == "pause" {
            t.write(b"paused;");
            t.pause_reading();
            let h = t.handle();
            t.reactor()
                .call_later(Duration::from_millis(300), move || h.resume_reading());
        } else {
            t.write(data);
        }
    }

    fn connection_lost(&mut self, reason: Reason) {
        let kind = match reason {
            Reason::ConnectionDone => "done".to_string(),
            Reason::ConnectionLost(_) => "lost".to_string(),
            Reason::ConnectionAborted => "aborted".to_string(),
            Reason::OutputLimitExceeded { .. } => "output-limit".to_string(),
            Reason::Shutdown { drained } => format!("shutdown drained={drained}"),
            Reason::ProtocolFailure(msg) => format!("failure: {msg}"),
            _ => "other".to_string(),
        };
        self.record.lock().unwrap().lost.push((self.id, kind));
    }
}

pub struct ScriptedFactory {
    next: u32,
    shard: u32,
    record: Shared,
}

impl ScriptedFactory {
    /// A factory for `shard` recording into `record`.
    pub fn new(shard: usize, record: &Shared) -> Self {
        ScriptedFactory {
            next: 0,
            shard: shard as u32,
            record: Arc::clone(record),
        }
    }
}

impl Factory for ScriptedFactory {
    type Protocol = Scripted;
    fn build_protocol(&mut self, _peer: &Address) -> Option<Scripted> {
        self.next += 1;
        Some(Scripted {
            id: self.shard * 1_000_000 + self.next,
            record: Arc::clone(&self.record),
        })
    }
}

/// Waits until `n` connections were reported lost; returns their reasons.
pub fn wait_lost(record: &Shared, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        {
            let r = record.lock().unwrap();
            if r.lost.len() >= n {
                return r.lost.iter().map(|(_, k)| k.clone()).collect();
            }
        }
        assert!(
            Instant::now() < deadline,
            "connection_lost not called in time"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// Fails if any connection was reported lost twice.
pub fn assert_each_once(record: &Shared) {
    let r = record.lock().unwrap();
    let mut ids: Vec<u32> = r.lost.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    let before = ids.len();
    ids.dedup();
    assert_eq!(
        ids.len(),
        before,
        "a connection was reported lost twice: {:?}",
        r.lost
    );
}

/// Closes with a reset (SO_LINGER 0).
pub fn reset_close(s: TcpStream) {
    let s2 = socket2::Socket::from(s);
    s2.set_linger(Some(Duration::ZERO)).unwrap();
    drop(s2);
}
