//! The engine side of client connections: connect a socket on the shard's ring,
//! then serve it exactly like an accepted one.
//!
//! ```text
//!  client::Connector / connect_protocol        (src/client: names, timeouts, retries)
//!     │ connect_tcp(addr, bind) / connect_unix(path)
//!     ▼
//!  socket2: socket, [bind], non-blocking connect ─► a POLLOUT poll on the ring
//!     (a task waits on it) ─► SO_ERROR ─► Dialed { sock, peer, host }
//!     │ start(dialed, protocol)
//!     ▼
//!  Shard::adopt: the same connection path as an accepted socket (same Transport
//!  semantics, drained at shutdown)
//! ```
//!
//! Timeouts and cancellation are the caller's: it races this future against the
//! shard clock and drops it, which cancels the poll and closes the half-open socket.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use io_uring::opcode;
use io_uring::types::Fd;
use socket2::{Domain, Protocol as SockProtocol, SockAddr, Socket, Type};

use crate::address::Address;
use crate::protocol::Protocol;
use crate::runtime::ring::op::Op;
use crate::runtime::shard::{current, Shard};

/// Why a connect failed, before the client names it.
#[derive(Debug)]
pub(crate) enum DialError {
    /// This thread runs no shard.
    NoRuntime,
    /// The shard is shutting down.
    ShuttingDown,
    /// The local address could not be bound.
    Bind(io::Error),
    /// The connect failed.
    Connect(io::Error),
}

/// A connected socket waiting for its protocol.
pub(crate) struct Dialed {
    sock: OwnedFd,
    peer: Address,
    host: Address,
}

impl Dialed {
    /// The server's address (what `build_protocol` is given).
    pub(crate) fn peer(&self) -> &Address {
        &self.peer
    }
}

fn shard() -> Result<Rc<Shard>, DialError> {
    let s = current().ok_or(DialError::NoRuntime)?;
    if s.is_stopping() {
        return Err(DialError::ShuttingDown);
    }
    Ok(s)
}

/// Connects a TCP socket to `addr` (from `bind`, if given) on this thread's shard.
pub(crate) async fn connect_tcp(
    addr: SocketAddr,
    bind: Option<IpAddr>,
) -> Result<Dialed, DialError> {
    let shard = shard()?;
    let sock = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.cloexec(),
        Some(SockProtocol::TCP),
    )
    .map_err(DialError::Connect)?;
    sock.set_nonblocking(true).map_err(DialError::Connect)?;
    if let Some(ip) = bind {
        sock.bind(&SockAddr::from(SocketAddr::new(ip, 0)))
            .map_err(DialError::Bind)?;
    }
    match sock.connect(&SockAddr::from(addr)) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {
            writable(&shard, sock.as_raw_fd()).await;
            if let Some(e) = sock.take_error().map_err(DialError::Connect)? {
                return Err(DialError::Connect(e));
            }
        }
        Err(e) => return Err(DialError::Connect(e)),
    }
    // The ring waits for readiness itself: its sockets are blocking.
    sock.set_nonblocking(false).map_err(DialError::Connect)?;
    if shard.config.nodelay {
        let _ = sock.set_tcp_nodelay(true);
    }
    let host = sock
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .ok_or_else(|| DialError::Connect(io::Error::other("no local address")))?;
    Ok(Dialed {
        sock: sock.into(),
        peer: Address::Tcp(addr),
        host: Address::Tcp(host),
    })
}

/// Connects a UNIX stream socket to `path` on this thread's shard.
pub(crate) async fn connect_unix(path: &Path) -> Result<Dialed, DialError> {
    shard()?;
    let sock =
        Socket::new(Domain::UNIX, Type::STREAM.cloexec(), None).map_err(DialError::Connect)?;
    let addr = SockAddr::unix(path).map_err(DialError::Connect)?;
    // A UNIX connect completes at once or fails (EAGAIN: the backlog is full).
    sock.connect(&addr).map_err(DialError::Connect)?;
    Ok(Dialed {
        sock: sock.into(),
        peer: Address::Unix(Some(path.to_path_buf())),
        host: Address::Unix(None),
    })
}

/// Runs `protocol` over a dialed socket on this thread's shard.
pub(crate) fn start<P: Protocol>(dialed: Dialed, protocol: P) -> Result<(), DialError> {
    let shard = current().ok_or(DialError::NoRuntime)?;
    let Dialed { sock, peer, host } = dialed;
    shard.adopt(sock, protocol, peer, host);
    Ok(())
}

/// One readiness poll a task waits on.
#[derive(Default)]
pub(crate) struct Waiter {
    result: Option<i32>,
    waker: Option<Waker>,
    /// The future was dropped first: the slot goes when its CQE comes.
    orphaned: bool,
}

impl Shard {
    pub(crate) fn on_poll(&self, id: usize, res: i32) {
        let mut ws = self.waiters.borrow_mut();
        let Some(w) = ws.get_mut(id) else { return };
        if w.orphaned {
            ws.remove(id);
            return;
        }
        w.result = Some(res);
        if let Some(k) = w.waker.take() {
            k.wake();
        }
    }
}

/// Waits until `fd` is writable (or failed), through the shard's ring.
fn writable(shard: &Rc<Shard>, fd: RawFd) -> PollOut {
    let id = shard.waiters.borrow_mut().insert(Waiter::default());
    let sqe = opcode::PollAdd::new(Fd(fd), libc::POLLOUT as u32)
        .build()
        .user_data(Op::Poll(id).encode());
    // SAFETY: a poll names only the descriptor; the kernel holds its own reference
    // to the file while the poll is armed, and the caller keeps `fd` open until the
    // future completes or is dropped (which cancels the poll).
    unsafe { shard.ring.borrow_mut().push(&sqe) };
    PollOut {
        shard: Rc::clone(shard),
        id,
        done: false,
    }
}

struct PollOut {
    shard: Rc<Shard>,
    id: usize,
    done: bool,
}

impl Future for PollOut {
    type Output = i32;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<i32> {
        let mut ws = self.shard.waiters.borrow_mut();
        let w = &mut ws[self.id];
        match w.result {
            Some(r) => {
                ws.remove(self.id);
                drop(ws);
                self.done = true;
                Poll::Ready(r)
            }
            None => {
                w.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Drop for PollOut {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut ws = self.shard.waiters.borrow_mut();
        let Some(w) = ws.get_mut(self.id) else { return };
        if w.result.is_some() {
            ws.remove(self.id);
        } else {
            w.orphaned = true;
            self.shard
                .ring
                .borrow_mut()
                .cancel(Op::Poll(self.id), Op::PollCancel(self.id));
        }
    }
}
