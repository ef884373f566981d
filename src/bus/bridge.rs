//! `Bridge`: one process's end of the bus — tags and publishes local lines,
//! queues them (bounded) while the publisher is down, and hands other processes'
//! lines to the local broadcast.
//!
//! ```text
//!  publish(line) ─┬─ publisher up, < MAX_BUS_BUFFERED unsent ─► PUBLISH room "tag line"
//!                 ├─ publisher down, queue not full ─► queue (sent on reconnect)
//!                 └─ otherwise ─► dropped (counted)
//!  message(payload) ─┬─ our tag ─► ignored (the mesh already delivered it)
//!                    ├─ malformed ─► ignored (counted)
//!                    └─ another process's ─► on_remote(line)
//! ```
//!
//! It lives on shard 0 and is shard-local; [`BusStats`] may be read from anywhere.

use std::cell::{Cell, RefCell};
use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use crate::client::Connector;
use crate::protocols::resp::encode_command;
use crate::transport::TransportHandle;

use super::url::BusUrl;
use super::MAX_BUS_BUFFERED;

/// The bus counters of one process's bridge (readable from any thread).
#[derive(Debug, Default)]
pub struct BusStats {
    published: AtomicU64,
    received: AtomicU64,
    dropped: AtomicU64,
    malformed: AtomicU64,
    connects: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl BusStats {
    /// Returns the lines handed to the publisher connection.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }
    /// Returns the lines from other processes delivered here.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
    /// Returns the local lines the other processes will not get (queue full, or the
    /// publisher stuck).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
    /// Returns the bus messages ignored as malformed (no tag).
    pub fn malformed(&self) -> u64 {
        self.malformed.load(Ordering::Relaxed)
    }
    /// Returns the successful connections to the bus (both connections count).
    pub fn connects(&self) -> u64 {
        self.connects.load(Ordering::Relaxed)
    }
}

/// What is done with another process's line.
type OnRemote = Box<dyn Fn(Bytes)>;

/// The length of a process tag: 16 hex digits.
const TAG_LEN: usize = 16;

/// One process's end of the bus.
pub struct Bridge {
    url: BusUrl,
    tag: [u8; TAG_LEN],
    queue_cap: usize,
    queue: RefCell<VecDeque<Bytes>>,
    publisher: RefCell<Option<TransportHandle>>,
    on_remote: RefCell<Option<OnRemote>>,
    stats: Arc<BusStats>,
    pub(crate) connectors: RefCell<Vec<Connector>>,
    pub(crate) stopping: Cell<bool>,
}

impl Bridge {
    /// Creates the bridge for `url`, queueing at most `queue_cap` lines while the
    /// publisher is down, counting in `stats`.
    pub fn new(url: BusUrl, queue_cap: usize, stats: Arc<BusStats>) -> Rc<Bridge> {
        Rc::new(Bridge {
            url,
            tag: new_tag(),
            queue_cap,
            queue: RefCell::new(VecDeque::new()),
            publisher: RefCell::new(None),
            on_remote: RefCell::new(None),
            stats,
            connectors: RefCell::new(Vec::new()),
            stopping: Cell::new(false),
        })
    }

    /// Sets what is done with another process's line.
    pub fn on_remote(&self, f: impl Fn(Bytes) + 'static) {
        *self.on_remote.borrow_mut() = Some(Box::new(f));
    }

    /// Returns the bus URL.
    pub fn url(&self) -> &BusUrl {
        &self.url
    }

    /// Returns the counters.
    pub fn stats(&self) -> &Arc<BusStats> {
        &self.stats
    }

    /// Returns the lines waiting for the publisher.
    pub fn queued(&self) -> usize {
        self.queue.borrow().len()
    }

    /// Sends a local line to the other processes (or queues or drops it; never
    /// waits).
    pub fn publish(&self, line: &[u8]) {
        let mut payload = Vec::with_capacity(TAG_LEN + 1 + line.len());
        payload.extend_from_slice(&self.tag);
        payload.push(b' ');
        payload.extend_from_slice(line);
        let command = Bytes::from(encode_command(&[
            b"PUBLISH",
            self.url.room.as_bytes(),
            &payload,
        ]));
        let publisher = self.publisher.borrow();
        match publisher.as_ref().filter(|h| h.connected()) {
            Some(h) if h.buffered() < MAX_BUS_BUFFERED => {
                h.write_bytes(command);
                bump(&self.stats.published);
            }
            Some(_) => bump(&self.stats.dropped),
            None => {
                let mut q = self.queue.borrow_mut();
                if q.len() < self.queue_cap {
                    q.push_back(command);
                } else {
                    bump(&self.stats.dropped);
                }
            }
        }
    }

    /// The publisher connected: sends what waited.
    pub(crate) fn publisher_up(&self, handle: TransportHandle) {
        bump(&self.stats.connects);
        let queued: Vec<Bytes> = self.queue.borrow_mut().drain(..).collect();
        if !queued.is_empty() {
            tracing::info!(
                "bus: sending {} lines queued while disconnected",
                queued.len()
            );
        }
        for c in queued {
            handle.write_bytes(c);
            bump(&self.stats.published);
        }
        *self.publisher.borrow_mut() = Some(handle);
    }

    /// The publisher's connection is gone: lines queue from now on.
    pub(crate) fn publisher_down(&self) {
        *self.publisher.borrow_mut() = None;
    }

    /// The subscriber connected (and subscribed).
    pub(crate) fn subscriber_up(&self) {
        bump(&self.stats.connects);
    }

    /// A message from the bus: another process's line, or our own coming back.
    pub(crate) fn message(&self, payload: &[u8]) {
        if payload.len() <= TAG_LEN || payload[TAG_LEN] != b' ' {
            bump(&self.stats.malformed);
            return;
        }
        if payload[..TAG_LEN] == self.tag {
            return;
        }
        bump(&self.stats.received);
        if let Some(f) = self.on_remote.borrow().as_ref() {
            f(Bytes::copy_from_slice(&payload[TAG_LEN + 1..]));
        }
    }

    /// Stops reconnecting and closes both connections (the graceful stop does the
    /// same by itself).
    pub fn stop(&self) {
        self.stopping.set(true);
        for c in self.connectors.borrow_mut().drain(..) {
            c.disconnect();
        }
    }
}

/// A tag unlikely to be any other process's: the process id, the time and the
/// standard library's per-process random hash keys.
fn new_tag() -> [u8; TAG_LEN] {
    let mut h = RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    h.write_u128(now);
    let text = format!("{:016x}", h.finish());
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(text.as_bytes());
    tag
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::resp::{RespDecoder, RespValue};
    use crate::testing::StringTransport;

    fn bridge(cap: usize) -> Rc<Bridge> {
        Bridge::new("redis://h/room".parse().unwrap(), cap, Arc::default())
    }

    /// The payloads of the PUBLISH commands written to `t`.
    fn published(t: &StringTransport) -> Vec<Vec<u8>> {
        let mut d = RespDecoder::new();
        d.feed(&t.value());
        let mut out = Vec::new();
        while let Some(RespValue::Array(a)) = d.next_event().unwrap() {
            assert_eq!(a[0].as_bytes().unwrap(), b"PUBLISH");
            assert_eq!(a[1].as_bytes().unwrap(), b"room");
            out.push(a[2].as_bytes().unwrap()[TAG_LEN + 1..].to_vec());
        }
        out
    }

    #[test]
    fn a_connected_publisher_sends_each_line_tagged() {
        let b = bridge(4);
        let t = StringTransport::new();
        b.publisher_up(t.handle());
        b.publish(b"a says hi\r\n");
        assert_eq!(published(&t), vec![b"a says hi\r\n".to_vec()]);
        assert_eq!(b.stats().published(), 1);
    }

    #[test]
    fn lines_queue_while_down_up_to_the_bound_and_the_rest_are_dropped() {
        let b = bridge(2);
        for l in [&b"1\r\n"[..], b"2\r\n", b"3\r\n"] {
            b.publish(l);
        }
        assert_eq!((b.queued(), b.stats().dropped()), (2, 1));
        let t = StringTransport::new();
        b.publisher_up(t.handle());
        assert_eq!(published(&t), vec![b"1\r\n".to_vec(), b"2\r\n".to_vec()]);
        assert_eq!(b.queued(), 0);
        b.publisher_down();
        b.publish(b"4\r\n");
        assert_eq!(b.queued(), 1);
    }

    #[test]
    fn our_own_lines_coming_back_are_ignored_and_others_are_delivered_once() {
        let b = bridge(2);
        let got = Rc::new(RefCell::new(Vec::new()));
        let g = Rc::clone(&got);
        b.on_remote(move |line| g.borrow_mut().push(line));
        let t = StringTransport::new();
        b.publisher_up(t.handle());
        b.publish(b"mine\r\n");
        // What Redis would send back to our subscriber: our own payload.
        let mut d = RespDecoder::new();
        d.feed(&t.value());
        let Some(RespValue::Array(a)) = d.next_event().unwrap() else {
            panic!()
        };
        b.message(a[2].as_bytes().unwrap());
        assert!(got.borrow().is_empty());
        b.message(b"0123456789abcdef theirs\r\n");
        assert_eq!(*got.borrow(), vec![Bytes::from_static(b"theirs\r\n")]);
        b.message(b"short");
        assert_eq!((b.stats().received(), b.stats().malformed()), (1, 1));
    }

    #[test]
    fn two_bridges_have_different_tags() {
        assert_ne!(bridge(1).tag, bridge(1).tag);
    }
}
