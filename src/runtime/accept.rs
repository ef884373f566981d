//! Accepting connections: a multishot accept per listener on the shard's ring.
//!
//! Each accepted socket is handed to the listener's [`Acceptor`] (the service's
//! factory), on this shard, or for a UNIX listener (bound by shard 0 only) to the
//! next shard in turn. Out of descriptors or memory (`EMFILE`, `ENFILE`,
//! `ENOBUFS`, `ENOMEM`): logged once, then the accept is re-armed after a back-off
//! (10 ms doubling to 1 s) instead of spinning; the connection waits in the
//! backlog meanwhile. At shutdown a listener is shut down and its accept
//! cancelled; a connection accepted after that is closed, never leaked.

use std::cell::RefCell;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::rc::{Rc, Weak};
use std::time::Instant;

use io_uring::opcode;
use io_uring::types::Fd;
use socket2::{SockRef, Socket};

use crate::address::Address;
use crate::factory::Factory;
use crate::runtime::listener::{self, AcceptFailure, Backoff, Bound};
use crate::runtime::log_limit::Verdict;
use crate::runtime::ring::op::Op;
use crate::runtime::ring::Completion;
use crate::runtime::shard::{guarded, Shard};
use crate::runtime::ShardStats;

/// Builds and starts the connection for an accepted socket: a service's factory.
pub(crate) trait Acceptor {
    fn accept(&self, shard: &Rc<Shard>, sock: OwnedFd, peer: Address, host: Address);
}

struct FactoryAcceptor<F> {
    factory: Rc<RefCell<F>>,
}

impl<F: Factory> Acceptor for FactoryAcceptor<F> {
    fn accept(&self, shard: &Rc<Shard>, sock: OwnedFd, peer: Address, host: Address) {
        ShardStats::add(&shard.stats.accepted, 1);
        let built = {
            let Ok(mut f) = self.factory.try_borrow_mut() else {
                tracing::error!(
                    shard = shard.index,
                    "the factory is busy (re-entered); connection closed"
                );
                return;
            };
            guarded(|| f.build_protocol(&peer))
        };
        match built {
            Ok(Some(p)) => shard.adopt(sock, p, peer, host),
            Ok(None) => {
                ShardStats::add(&shard.stats.refused, 1);
                if let Verdict::Log { suppressed } = shard.refusals_log.check(Instant::now()) {
                    if suppressed > 0 {
                        tracing::info!(
                            shard = shard.index,
                            %peer,
                            "connection refused by the factory ({suppressed} more refusals not logged)"
                        );
                    } else {
                        tracing::info!(shard = shard.index, %peer, "connection refused by the factory");
                    }
                }
            }
            Err(msg) => {
                ShardStats::add(&shard.stats.refused, 1);
                shard.report_panic("build_protocol", &msg);
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    /// The multishot accept is armed.
    Armed,
    /// Waiting out a back-off before arming again.
    Backing,
    /// Stopped (shutdown).
    Closed,
}

/// How accepted sockets are dispatched.
enum Kind {
    /// This shard's own TCP socket: shut down at stop, so that its share of the
    /// port's SO_REUSEPORT group goes to the other processes at once.
    Tcp,
    /// A duplicate of a socket systemd passed (TCP or UNIX), accepted on by every
    /// shard: left listening at stop, since systemd keeps it for the next start.
    Inherited,
    /// A UNIX listener (shard 0 only): connections go round the shards.
    Unix { route: usize, path: PathBuf },
}

/// One listening socket of this shard.
pub(crate) struct Listener {
    sock: Socket,
    kind: Kind,
    host: Address,
    acceptor: Rc<dyn Acceptor>,
    state: State,
    backoff: Backoff,
}

impl Shard {
    /// Installs one service on this shard: starts its factory and its listeners.
    pub(crate) fn serve<F: Factory>(
        self: &Rc<Self>,
        factory: F,
        bound: Vec<Bound>,
    ) -> Result<(), String> {
        let factory = Rc::new(RefCell::new(factory));
        if let Err(msg) = guarded(|| factory.borrow_mut().start_factory()) {
            return Err(format!(
                "start_factory panicked on shard {}: {msg}",
                self.index
            ));
        }
        let f = Rc::clone(&factory);
        let index = self.index;
        self.stop_factories.borrow_mut().push(Box::new(move || {
            if let Err(msg) = guarded(|| f.borrow_mut().stop_factory()) {
                tracing::error!(shard = index, "stop_factory panicked: {msg}");
            }
        }));
        let acceptor: Rc<dyn Acceptor> = Rc::new(FactoryAcceptor { factory });
        for b in bound {
            match b {
                Bound::Tcp(sock) => {
                    let host = sock
                        .local_addr()
                        .ok()
                        .and_then(|a| a.as_socket())
                        .map(Address::Tcp)
                        .unwrap_or(Address::Unix(None));
                    self.add_listener(sock, Kind::Tcp, host, Rc::clone(&acceptor));
                }
                Bound::Inherited(sock) => {
                    let host = match sock.local_addr() {
                        Ok(a) => match a.as_socket() {
                            Some(a) => Address::Tcp(a),
                            None => Address::Unix(a.as_pathname().map(|p| p.to_path_buf())),
                        },
                        Err(_) => Address::Unix(None),
                    };
                    self.add_listener(sock, Kind::Inherited, host, Rc::clone(&acceptor));
                }
                Bound::Datagram { .. } => {
                    return Err(
                        "a datagram endpoint (udp:, udp6:, unixgram:) needs a DatagramProtocol: use listen_datagram".into(),
                    );
                }
                Bound::Unix {
                    path,
                    mode,
                    backlog,
                    route,
                } => {
                    let host = Address::Unix(Some(path.clone()));
                    self.unix_routes
                        .borrow_mut()
                        .insert(route, (Rc::clone(&acceptor), host.clone()));
                    if self.index == 0 {
                        let sock = listener::unix_listener(&path, mode, backlog).map_err(|e| {
                            format!("cannot listen on unix:{}: {e}", path.display())
                        })?;
                        self.add_listener(
                            sock,
                            Kind::Unix { route, path },
                            host,
                            Rc::clone(&acceptor),
                        );
                    }
                }
            }
        }
        Ok(())
    }

    fn add_listener(&self, sock: Socket, kind: Kind, host: Address, acceptor: Rc<dyn Acceptor>) {
        let i = {
            let mut ls = self.listeners.borrow_mut();
            ls.push(Listener {
                sock,
                kind,
                host,
                acceptor,
                state: State::Closed,
                backoff: Backoff::new(),
            });
            ls.len() - 1
        };
        self.arm_accept(i);
    }

    fn arm_accept(&self, i: usize) {
        let mut ls = self.listeners.borrow_mut();
        let l = &mut ls[i];
        if self.stopping.get() {
            return;
        }
        let sqe = opcode::AcceptMulti::new(Fd(l.sock.as_raw_fd()))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(Op::Accept(i).encode());
        // SAFETY: the accept names only the listening descriptor, owned by the
        // shard's listener list, which outlives the ring (the ring is dropped first
        // and reaps every request).
        unsafe { self.ring.borrow_mut().push(&sqe) };
        l.state = State::Armed;
    }

    pub(crate) fn on_accept(self: &Rc<Self>, i: usize, c: Completion) {
        if c.result >= 0 {
            // SAFETY: a non-negative accept result is a new descriptor owned by no one.
            let sock = unsafe { OwnedFd::from_raw_fd(c.result) };
            self.accepted(i, sock);
        } else {
            self.accept_failed(i, -c.result, c.more());
            return;
        }
        if !c.more() {
            let armed = self.listeners.borrow()[i].state == State::Armed;
            if armed {
                self.arm_accept(i);
            }
        }
    }

    fn accepted(self: &Rc<Self>, i: usize, sock: OwnedFd) {
        if self.stopping.get() {
            return; // closed: the shutdown came first
        }
        let (acceptor, host, route) = {
            let mut ls = self.listeners.borrow_mut();
            let l = &mut ls[i];
            l.backoff.reset();
            let route = match &l.kind {
                Kind::Tcp | Kind::Inherited => None,
                Kind::Unix { route, .. } => Some(*route),
            };
            (Rc::clone(&l.acceptor), l.host.clone(), route)
        };
        match route {
            None => {
                let s = SockRef::from(&sock);
                let Ok(peer) = s.peer_addr() else {
                    return; // already gone
                };
                let peer = match peer.as_socket() {
                    Some(peer) => {
                        if self.config.nodelay {
                            let _ = s.set_tcp_nodelay(true);
                        }
                        Address::Tcp(peer)
                    }
                    // An inherited UNIX socket's peer (unnamed, as for `unix:`).
                    None => Address::Unix(None),
                };
                acceptor.accept(self, sock, peer, host);
            }
            Some(route) => {
                let target = self.next_unix_shard.get();
                self.next_unix_shard.set((target + 1) % self.shards);
                if target == self.index {
                    acceptor.accept(self, sock, Address::Unix(None), host);
                } else if let Err(back) = self.handoff.send(target, route, sock) {
                    // That shard's channel is full: serve it here rather than drop it.
                    acceptor.accept(self, back, Address::Unix(None), host);
                }
            }
        }
    }

    fn accept_failed(self: &Rc<Self>, i: usize, errno: i32, more: bool) {
        let e = std::io::Error::from_raw_os_error(errno);
        if self.stopping.get() || errno == libc::ECANCELED {
            if !more {
                self.listeners.borrow_mut()[i].state = State::Closed;
            }
            return;
        }
        let pause = match listener::classify(&e) {
            AcceptFailure::Exhausted => {
                let (pause, first) = self.listeners.borrow_mut()[i].backoff.step();
                if first {
                    tracing::warn!(
                        shard = self.index,
                        "could not accept a connection: {e}; backing off (up to {:?} between tries)",
                        Backoff::MAX
                    );
                }
                Some(pause)
            }
            AcceptFailure::Skip => {
                tracing::debug!(shard = self.index, "accept: {e}");
                None
            }
            AcceptFailure::Other => {
                tracing::error!(shard = self.index, "accept failed: {e}");
                Some(Backoff::FIRST)
            }
        };
        if more {
            return; // the multishot accept goes on
        }
        match pause {
            None => self.arm_accept(i),
            Some(d) => {
                self.listeners.borrow_mut()[i].state = State::Backing;
                let weak: Weak<Shard> = Rc::downgrade(self);
                self.reactor.call_later(d, move || {
                    if let Some(s) = weak.upgrade() {
                        if s.listeners.borrow()[i].state == State::Backing {
                            s.arm_accept(i);
                        }
                    }
                });
            }
        }
    }

    /// Stops accepting at once: a TCP listener is shut down (out of LISTEN, so its
    /// SO_REUSEPORT share goes to the other processes at once), a UNIX socket file
    /// unlinked, an inherited socket left as systemd gave it, and every accept in
    /// flight cancelled.
    pub(crate) fn stop_listening(&self) {
        let mut ls = self.listeners.borrow_mut();
        let mut ring = self.ring.borrow_mut();
        for (i, l) in ls.iter_mut().enumerate() {
            match &l.kind {
                Kind::Tcp => {
                    let _ = l.sock.shutdown(std::net::Shutdown::Both);
                }
                Kind::Inherited => {}
                Kind::Unix { path, .. } => {
                    let _ = std::fs::remove_file(path);
                }
            }
            if l.state == State::Armed {
                ring.cancel(Op::Accept(i), Op::AcceptCancel(i));
            }
            l.state = State::Closed;
        }
    }
}
