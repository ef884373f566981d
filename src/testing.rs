//! Test doubles for protocols: no sockets, no executor, deterministic.
//!
//! * [`StringTransport`]: Twisted's `StringTransport`. It *is* a [`Transport`] (it
//!   dereferences to one), so a protocol under test runs the same code as in the
//!   engine; `value()` returns what it wrote.
//! * a manual [`Clock`] behind the transport's reactor: `t.clock().advance(..)` runs
//!   the protocol's timers (Twisted's `task.Clock`).
//! * a local task pool behind `reactor().spawn_local`: `t.run_tasks()` polls spawned
//!   futures until none can make progress.
//! * [`ConnectedPair`]: two protocols joined in memory, with `pump()` moving bytes both
//!   ways (Twisted's `iosim.connectedServerAndClient`).
//!
//! # Examples
//! ```
//! use weft::{Protocol, Transport, testing::StringTransport};
//! struct Upper;
//! impl Protocol for Upper {
//!     fn data_received(&mut self, data: &[u8], t: &mut Transport) {
//!         t.write(&data.to_ascii_uppercase());
//!     }
//! }
//! let mut t = StringTransport::new();
//! let mut p = Upper;
//! p.connection_made(&mut t);
//! p.data_received(b"abc", &mut t);
//! assert_eq!(t.value(), b"ABC");
//! ```

use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Wake, Waker};

use crate::address::Address;
use crate::clock::Clock;
use crate::protocol::Protocol;
use crate::reactor::{LocalFuture, Reactor};
use crate::reason::Reason;
use crate::transport::{ConnShared, OutputLimits, Transport};

/// Twisted's default `getPeer()` for a `StringTransport`.
pub const DEFAULT_PEER: &str = "192.168.1.1:54321";
/// Twisted's default `getHost()` for a `StringTransport`.
pub const DEFAULT_HOST: &str = "10.0.0.1:12345";

/// A pool of shard-local futures polled by hand.
#[derive(Default)]
pub struct TaskPool {
    tasks: RefCell<VecDeque<LocalFuture>>,
}

struct Flag(AtomicBool);
impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl TaskPool {
    /// Polls every task until none is ready to make progress; returns how many remain.
    pub fn run_until_stalled(&self) -> usize {
        let flag = Arc::new(Flag(AtomicBool::new(true)));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        while flag.0.swap(false, Ordering::SeqCst) {
            let n = self.tasks.borrow().len();
            for _ in 0..n {
                let task = self.tasks.borrow_mut().pop_front();
                let Some(mut task) = task else { break };
                if task.as_mut().poll(&mut cx).is_pending() {
                    self.tasks.borrow_mut().push_back(task);
                }
            }
        }
        self.tasks.borrow().len()
    }
}

/// A reactor with a manual clock and a hand-polled task pool.
pub fn test_reactor() -> (Reactor, Rc<TaskPool>) {
    let pool = Rc::new(TaskPool::default());
    let p = pool.clone();
    let reactor = Reactor::new(
        Clock::manual(),
        Rc::new(move |f| p.tasks.borrow_mut().push_back(f)),
        0,
    );
    (reactor, pool)
}

/// An in-memory transport that records writes and close requests (Twisted's
/// `StringTransport`). It dereferences to [`Transport`], so it is passed straight to
/// protocol callbacks.
///
/// As in Twisted, `lose_connection` only sets `disconnecting()`: nothing calls the
/// protocol's `connection_lost`; a test does that itself, or uses [`ConnectedPair`].
pub struct StringTransport {
    transport: Transport,
    pool: Rc<TaskPool>,
}

impl Default for StringTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl StringTransport {
    /// Creates one with Twisted's default addresses (peer 192.168.1.1:54321, host
    /// 10.0.0.1:12345) and no output cap.
    pub fn new() -> StringTransport {
        let peer: SocketAddr = DEFAULT_PEER.parse().expect("valid");
        let host: SocketAddr = DEFAULT_HOST.parse().expect("valid");
        Self::with_addresses(Address::Tcp(peer), Address::Tcp(host))
    }

    /// Creates one with the given peer and host addresses.
    pub fn with_addresses(peer: Address, host: Address) -> StringTransport {
        let (reactor, pool) = test_reactor();
        let limits = OutputLimits {
            max_buffer: usize::MAX,
            ..OutputLimits::default()
        };
        StringTransport {
            transport: Transport::new(ConnShared::new(limits), reactor, peer, host),
            pool,
        }
    }

    /// Returns everything written since the last `clear()`.
    pub fn value(&self) -> Vec<u8> {
        self.transport.shared.out.borrow().to_vec()
    }

    /// Returns what was written as UTF-8 text (lossy), for readable assertions.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.value()).into_owned()
    }

    /// Forgets everything written so far.
    pub fn clear(&mut self) {
        self.transport.shared.out.borrow_mut().clear();
    }

    /// Returns the manual clock behind this transport's reactor.
    pub fn clock(&self) -> &Clock {
        self.transport.reactor().clock()
    }

    /// Polls the futures spawned through this transport's reactor until they stall;
    /// returns how many are still pending.
    pub fn run_tasks(&self) -> usize {
        self.pool.run_until_stalled()
    }

    /// Tells whether `abort_connection` was called.
    pub fn aborted(&self) -> bool {
        self.transport.shared.machine.borrow().aborted()
    }

    /// Marks the transport dead, as the engine does before `connection_lost`: later
    /// writes are dropped and handles report `connected() == false`.
    pub fn mark_lost(&mut self) {
        self.transport.shared.machine.borrow_mut().mark_lost();
    }

    fn take_output(&self) -> Vec<u8> {
        let mut out = self.transport.shared.out.borrow_mut();
        let v = out.to_vec();
        out.clear();
        v
    }
}

impl Deref for StringTransport {
    type Target = Transport;
    fn deref(&self) -> &Transport {
        &self.transport
    }
}

impl DerefMut for StringTransport {
    fn deref_mut(&mut self) -> &mut Transport {
        &mut self.transport
    }
}

/// Feeds `data` to `p` in chunks of `size` bytes (the last may be shorter): Twisted's
/// advice to test every chunking down to one byte.
pub fn feed_chunked<P: Protocol>(p: &mut P, t: &mut Transport, data: &[u8], size: usize) {
    for chunk in data.chunks(size.max(1)) {
        p.data_received(chunk, t);
    }
}

/// One side of a [`ConnectedPair`].
pub struct Side<P: Protocol> {
    /// The protocol.
    pub protocol: P,
    /// Its transport.
    pub transport: StringTransport,
    /// The reason it was given in `connection_lost`, once it was.
    pub lost: Option<Reason>,
}

/// Two protocols connected in memory (Twisted's `iosim`): `pump()` moves what each
/// writes to the other and carries out closes, with `connection_lost` reasons as a
/// real connection would give them.
pub struct ConnectedPair<S: Protocol, C: Protocol> {
    /// The server side.
    pub server: Side<S>,
    /// The client side.
    pub client: Side<C>,
}

impl<S: Protocol, C: Protocol> ConnectedPair<S, C> {
    /// Connects `server` and `client`: `connection_made` runs on the server, then the
    /// client.
    pub fn new(server: S, client: C) -> Self {
        let s_addr: SocketAddr = DEFAULT_HOST.parse().expect("valid");
        let c_addr: SocketAddr = DEFAULT_PEER.parse().expect("valid");
        let mut pair = ConnectedPair {
            server: Side {
                protocol: server,
                transport: StringTransport::with_addresses(
                    Address::Tcp(c_addr),
                    Address::Tcp(s_addr),
                ),
                lost: None,
            },
            client: Side {
                protocol: client,
                transport: StringTransport::with_addresses(
                    Address::Tcp(s_addr),
                    Address::Tcp(c_addr),
                ),
                lost: None,
            },
        };
        pair.server
            .protocol
            .connection_made(&mut pair.server.transport);
        pair.client
            .protocol
            .connection_made(&mut pair.client.transport);
        pair
    }

    /// Moves bytes both ways and carries out closes until nothing changes. Returns
    /// true if anything moved.
    pub fn pump(&mut self) -> bool {
        let mut any = false;
        loop {
            let mut moved = false;
            moved |= Self::deliver(&mut self.server, &mut self.client);
            moved |= Self::deliver(&mut self.client, &mut self.server);
            moved |= self.settle_closes();
            any |= moved;
            if !moved {
                return any;
            }
        }
    }

    fn deliver<A: Protocol, B: Protocol>(from: &mut Side<A>, to: &mut Side<B>) -> bool {
        from.transport.run_tasks();
        let data = from.transport.take_output();
        if data.is_empty() || to.lost.is_some() {
            return false;
        }
        if !to.transport.disconnecting() {
            to.protocol.data_received(&data, &mut to.transport);
        }
        true
    }

    fn settle_closes(&mut self) -> bool {
        if self.server.lost.is_some() && self.client.lost.is_some() {
            return false;
        }
        let (s, c) = (&self.server.transport, &self.client.transport);
        let (s_reason, c_reason) = if s.aborted() || c.aborted() {
            let reset = || std::io::Error::from(std::io::ErrorKind::ConnectionReset);
            if s.aborted() {
                (Reason::ConnectionAborted, Reason::ConnectionLost(reset()))
            } else {
                (Reason::ConnectionLost(reset()), Reason::ConnectionAborted)
            }
        } else if s.disconnecting() || c.disconnecting() {
            (Reason::ConnectionDone, Reason::ConnectionDone)
        } else {
            return false;
        };
        if self.server.lost.is_none() {
            self.server.transport.mark_lost();
            self.server.protocol.connection_lost(s_reason);
            self.server.lost = Some(Reason::ConnectionDone);
        }
        if self.client.lost.is_none() {
            self.client.transport.mark_lost();
            self.client.protocol.connection_lost(c_reason);
            self.client.lost = Some(Reason::ConnectionDone);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::time::Duration;

    struct Echo;
    impl Protocol for Echo {
        fn data_received(&mut self, data: &[u8], t: &mut Transport) {
            t.write(data);
        }
    }

    struct Greeter {
        got: Rc<RefCell<Vec<u8>>>,
        lost: Rc<Cell<bool>>,
    }
    impl Protocol for Greeter {
        fn connection_made(&mut self, t: &mut Transport) {
            t.write(b"hi");
        }
        fn data_received(&mut self, data: &[u8], t: &mut Transport) {
            self.got.borrow_mut().extend_from_slice(data);
            t.lose_connection();
        }
        fn connection_lost(&mut self, reason: Reason) {
            assert!(reason.is_clean());
            self.lost.set(true);
        }
    }

    #[test]
    fn lose_connection_only_sets_disconnecting() {
        let mut t = StringTransport::new();
        t.write(b"a");
        t.lose_connection();
        t.write(b"b");
        assert!(t.disconnecting());
        assert!(t.connected());
        assert_eq!(t.value(), b"ab");
    }

    #[test]
    fn abort_discards_and_drops_later_writes() {
        let mut t = StringTransport::new();
        t.write(b"a");
        t.abort_connection();
        t.write(b"b");
        assert!(t.aborted());
        assert_eq!(t.value(), b"");
    }

    #[test]
    fn handle_is_a_no_op_after_connection_lost() {
        let mut t = StringTransport::new();
        let h = t.handle();
        t.mark_lost();
        h.write(b"x");
        assert!(!h.connected());
        assert_eq!(t.value(), b"");
    }

    #[test]
    fn timers_run_on_the_manual_clock() {
        let t = StringTransport::new();
        let h = t.handle();
        t.reactor()
            .call_later(Duration::from_secs(2), move || h.write(b"tick"));
        t.clock().advance(Duration::from_secs(1));
        assert_eq!(t.value(), b"");
        t.clock().advance(Duration::from_secs(1));
        assert_eq!(t.value(), b"tick");
    }

    #[test]
    fn spawned_tasks_run_when_polled() {
        let t = StringTransport::new();
        let h = t.handle();
        t.reactor().spawn_local(async move { h.write(b"done") });
        assert_eq!(t.value(), b"");
        assert_eq!(t.run_tasks(), 0);
        assert_eq!(t.value(), b"done");
    }

    #[test]
    fn connected_pair_pumps_both_ways_and_closes_cleanly() {
        let got = Rc::new(RefCell::new(Vec::new()));
        let lost = Rc::new(Cell::new(false));
        let client = Greeter {
            got: got.clone(),
            lost: lost.clone(),
        };
        let mut pair = ConnectedPair::new(Echo, client);
        assert!(pair.pump());
        assert_eq!(*got.borrow(), b"hi");
        assert!(lost.get());
        assert!(pair.server.lost.is_some());
    }
}
