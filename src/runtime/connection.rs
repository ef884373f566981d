//! One connection's task: read, call the protocol, send, close.
//!
//! ```text
//!   poll ─► abort requested? ───────────────────────────────► close with RST
//!     │
//!     ├─► read (up to the read budget, into the shard's buffer) ─► data_received
//!     │     EOF: half-closeable → read_connection_lost, else close (ConnectionDone)
//!     ├─► send what the callbacks wrote (one send per batch)
//!     ├─► flow control: > high watermark → pause_producing; drained → resume_producing;
//!     │                 > hard cap → abort (OutputLimitExceeded, logged)
//!     └─► lose_connection pending and output drained → shutdown(RDWR), close
//! ```
//!
//! The task owns the protocol, its `Transport` and the socket; `TransportHandle`s
//! reach the same output buffer and wake the task. `connection_lost` runs exactly
//! once, after the socket is closed, whatever the path.

use std::future::poll_fn;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures_lite::io::{AsyncRead, AsyncWrite};

use crate::address::Address;
use crate::protocol::Protocol;
use crate::reason::Reason;
use crate::runtime::shard::{guarded, Shard};
use crate::runtime::ShardStats;
use crate::transport::{flags, ConnShared, Transport};

/// A byte stream the driver can run: TCP, or UNIX (whose glommio type does not
/// expose its descriptor, so it gets plain closes only).
pub(crate) trait Socket: AsyncRead + AsyncWrite + Unpin + 'static {
    /// The descriptor, for shutdown(2) and SO_LINGER.
    fn fd(&self) -> Option<RawFd>;

    /// The descriptor the driver may `recv` from directly before asking the socket
    /// to wait for readiness (see `Conn::poll_recv`); `None` (the default) when the
    /// socket does its own receiving, as the native data path does.
    fn direct_recv_fd(&self) -> Option<RawFd> {
        None
    }

    /// Output the socket accepted from the driver but the kernel has refused so far:
    /// it counts with the output buffer against the watermark and the cap, so the
    /// cap bounds everything held for a peer that does not read. 0 (the default)
    /// for sockets whose writes go straight to the kernel.
    fn unsent(&self) -> usize {
        0
    }

    /// Closes the socket as `how` says. The default acts on `fd()` (shutdown(2) or
    /// SO_LINGER 0) and drops the stream; the native data path overrides it to
    /// send what it already accepted before the shutdown.
    fn close(self, how: Close)
    where
        Self: Sized,
    {
        close_fd(self.fd(), how);
        drop(self); // closes the descriptor
    }
}

impl Socket for glommio::net::TcpStream {
    fn fd(&self) -> Option<RawFd> {
        Some(self.as_raw_fd())
    }

    fn direct_recv_fd(&self) -> Option<RawFd> {
        Some(self.as_raw_fd())
    }
}

impl Socket for glommio::net::UnixStream {
    fn fd(&self) -> Option<RawFd> {
        None
    }
}

/// How the socket is closed once the connection ends.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Close {
    /// shutdown(SHUT_RDWR) then close: a FIN (Twisted's loseConnection).
    Orderly,
    /// SO_LINGER 0 then close: a reset (Twisted's abortConnection).
    Reset,
    /// The socket already failed; just close it.
    Plain,
}

struct Conn<S, P> {
    stream: S,
    protocol: P,
    transport: Transport,
    shared: Rc<ConnShared>,
    shard: Rc<Shard>,
    read_closed: bool,
}

/// Runs one accepted connection to its end.
pub(crate) async fn run<S, P>(
    shard: Rc<Shard>,
    stream: S,
    protocol: P,
    peer: Address,
    host: Address,
) where
    S: Socket,
    P: Protocol,
{
    let shared = ConnShared::new(shard.config.limits);
    let id = shard.register(&shared);
    let transport = Transport::new(Rc::clone(&shared), shard.reactor.clone(), peer, host);
    let mut conn = Conn {
        stream,
        protocol,
        transport,
        shared,
        shard,
        read_closed: false,
    };
    let outcome = match conn.callback(|p, t| p.connection_made(t)) {
        Err(reason) => (reason, Close::Orderly),
        Ok(()) => poll_fn(|cx| conn.poll(cx)).await,
    };
    let shard = Rc::clone(&conn.shard);
    conn.finish(outcome);
    shard.unregister(id);
}

impl<S, P> Conn<S, P>
where
    S: Socket,
    P: Protocol,
{
    /// Runs a protocol callback; a panic becomes the connection's end.
    fn callback(&mut self, f: impl FnOnce(&mut P, &mut Transport)) -> Result<(), Reason> {
        let (p, t) = (&mut self.protocol, &mut self.transport);
        guarded(|| f(p, t)).map_err(|msg| {
            tracing::error!(
                shard = self.shard.index,
                peer = %self.transport.peer(),
                "protocol callback panicked: {msg}; closing this connection"
            );
            self.shared.out.borrow_mut().clear();
            Reason::ProtocolFailure(msg)
        })
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<(Reason, Close)> {
        self.register_waker(cx);
        loop {
            if self.shared.has(flags::ABORTING) {
                let reason = if self.shared.has(flags::SHUTDOWN) {
                    Reason::Shutdown { drained: false }
                } else {
                    Reason::ConnectionAborted
                };
                return Poll::Ready((reason, Close::Reset));
            }
            if let Some(end) = self.read(cx) {
                return Poll::Ready(end);
            }
            if self.shared.has(flags::ABORTING) {
                continue; // a callback aborted: nothing is sent
            }
            // Pause before sending, as Twisted does on the write that crosses the mark:
            // a send that drains everything must not hide the crossing.
            if let Err(end) = self.check_high_watermark() {
                return Poll::Ready(end);
            }
            if let Err(e) = self.flush(cx) {
                return Poll::Ready((Reason::ConnectionLost(e), Close::Plain));
            }
            match self.flow_control() {
                Err(end) => return Poll::Ready(end),
                Ok(true) => continue, // a callback wrote or closed: go round again
                Ok(false) => {}
            }
            if self.shared.has(flags::LOSING) && self.shared.out.borrow().is_empty() {
                let reason = if self.shared.has(flags::SHUTDOWN) {
                    Reason::Shutdown { drained: true }
                } else {
                    Reason::ConnectionDone
                };
                return Poll::Ready((reason, Close::Orderly));
            }
            return Poll::Pending;
        }
    }

    fn register_waker(&self, cx: &Context<'_>) {
        let w = self.shared.waker.take();
        let w = match w {
            Some(w) if w.will_wake(cx.waker()) => w,
            _ => cx.waker().clone(),
        };
        self.shared.waker.set(Some(w));
    }

    /// Reads up to the budget and delivers each chunk; returns the end, if reached.
    fn read(&mut self, cx: &mut Context<'_>) -> Option<(Reason, Close)> {
        let budget = self.shard.config.read_budget;
        let mut n_in = 0u64;
        let mut exhausted = true;
        for _ in 0..budget {
            if self.read_closed
                || self
                    .shared
                    .has(flags::LOSING | flags::ABORTING | flags::READ_PAUSED)
            {
                exhausted = false;
                break;
            }
            let shard = Rc::clone(&self.shard);
            let mut buf = shard.scratch.borrow_mut();
            match self.poll_recv(cx, &mut buf[..]) {
                Poll::Ready(Ok(0)) => {
                    drop(buf);
                    ShardStats::add(&self.shard.stats.bytes_in, n_in);
                    return self.peer_closed(cx);
                }
                Poll::Ready(Ok(n)) => {
                    n_in += n as u64;
                    let data = &buf[..n];
                    let (p, t) = (&mut self.protocol, &mut self.transport);
                    if let Err(msg) = guarded(|| p.data_received(data, t)) {
                        drop(buf);
                        tracing::error!(
                            shard = self.shard.index,
                            peer = %self.transport.peer(),
                            "data_received panicked: {msg}; closing this connection"
                        );
                        self.shared.out.borrow_mut().clear();
                        ShardStats::add(&self.shard.stats.bytes_in, n_in);
                        return Some((Reason::ProtocolFailure(msg), Close::Orderly));
                    }
                }
                Poll::Ready(Err(e)) => {
                    ShardStats::add(&self.shard.stats.bytes_in, n_in);
                    return Some((Reason::ConnectionLost(e), Close::Plain));
                }
                Poll::Pending => {
                    exhausted = false;
                    break;
                }
            }
        }
        ShardStats::add(&self.shard.stats.bytes_in, n_in);
        if exhausted {
            // Budget used up with data still coming: let the other connections run.
            cx.waker().wake_by_ref();
        }
        None
    }

    /// Reads with a plain non-blocking `recv` first and asks glommio to wait for
    /// readiness only when that would block.
    ///
    /// glommio's own `poll_read` arms an io_uring readiness poll after every short
    /// read, betting that the next read would block. Under pipelined load that path
    /// left shards asleep with data unread in their sockets (16 of 16 connections
    /// stalled for seconds with `loadgen --depth 4`), and the extra poll costs an SQE,
    /// a completion and an allocation per message. Going to glommio only after
    /// `EAGAIN` avoids both; sockets without a descriptor of ours use glommio alone.
    fn poll_recv(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        if let Some(fd) = self.stream.direct_recv_fd() {
            // SAFETY: `fd` is the connection's socket, owned by `self.stream` and open
            // for the whole call; `buf` is a valid writable buffer of `buf.len()` bytes.
            let n =
                unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
            if n >= 0 {
                return Poll::Ready(Ok(n as usize));
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::WouldBlock => {}
                io::ErrorKind::Interrupted => {}
                _ => return Poll::Ready(Err(err)),
            }
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }

    /// The peer sent FIN.
    fn peer_closed(&mut self, cx: &mut Context<'_>) -> Option<(Reason, Close)> {
        self.read_closed = true;
        if self.protocol.half_closeable() {
            if let Err(r) = self.callback(|p, t| p.read_connection_lost(t)) {
                return Some((r, Close::Orderly));
            }
            return None;
        }
        // A full close (Twisted drops unsent output here); weft first makes one
        // non-blocking attempt to send what the last callbacks wrote.
        let _ = self.flush(cx);
        Some((Reason::ConnectionDone, Close::Orderly))
    }

    /// Sends buffered output until done or the socket would block.
    fn flush(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let mut sent = 0u64;
        let result = loop {
            let mut out = self.shared.out.borrow_mut();
            if out.is_empty() {
                break Ok(());
            }
            match Pin::new(&mut self.stream).poll_write(cx, out.front()) {
                Poll::Ready(Ok(n)) => {
                    out.consume(n);
                    sent += n as u64;
                }
                Poll::Ready(Err(e)) => break Err(e),
                Poll::Pending => break Ok(()),
            }
        };
        if sent > 0 {
            ShardStats::add(&self.shard.stats.bytes_out, sent);
        }
        result
    }

    /// Output held for the peer that the kernel has not taken: the output buffer
    /// and what the socket could not place yet.
    fn buffered(&self) -> usize {
        self.shared.out.borrow().len() + self.stream.unsent()
    }

    /// Applies the watermark and the hard cap. `Ok(true)`: a callback ran and may
    /// have written, so the caller goes round again.
    fn flow_control(&mut self) -> Result<bool, (Reason, Close)> {
        let buffered = self.buffered();
        let limits = self.shared.limits;
        if buffered > limits.max_buffer {
            tracing::warn!(
                shard = self.shard.index,
                peer = %self.transport.peer(),
                "aborting connection: {buffered} bytes of output buffered, over the cap of {}",
                limits.max_buffer
            );
            return Err((
                Reason::OutputLimitExceeded {
                    buffered,
                    limit: limits.max_buffer,
                },
                Close::Reset,
            ));
        }
        let paused = self.shared.has(flags::PRODUCER_PAUSED);
        if buffered > limits.high_watermark && !paused {
            self.check_high_watermark()?;
            return Ok(false);
        }
        if buffered == 0 && paused {
            self.shared.unset(flags::PRODUCER_PAUSED);
            self.callback(|p, t| p.resume_producing(t))
                .map_err(|r| (r, Close::Orderly))?;
            return Ok(!self.shared.out.borrow().is_empty());
        }
        Ok(false)
    }

    /// Tells the protocol to pause producing if its output passed the high watermark.
    fn check_high_watermark(&mut self) -> Result<(), (Reason, Close)> {
        let buffered = self.buffered();
        if buffered > self.shared.limits.high_watermark && !self.shared.has(flags::PRODUCER_PAUSED)
        {
            self.shared.set(flags::PRODUCER_PAUSED);
            self.callback(|p, t| p.pause_producing(t))
                .map_err(|r| (r, Close::Orderly))?;
        }
        Ok(())
    }

    /// Closes the socket as `how` says and delivers `connection_lost`, exactly once.
    fn finish(self, (reason, how): (Reason, Close)) {
        self.shared.set(flags::LOST);
        self.shared.out.borrow_mut().clear();
        self.shared.waker.take();
        let Conn {
            stream,
            mut protocol,
            transport,
            shard,
            ..
        } = self;
        stream.close(how);
        match &reason {
            Reason::ConnectionDone | Reason::Shutdown { drained: true } => {
                tracing::trace!(shard = shard.index, peer = %transport.peer(), "{reason}")
            }
            _ => tracing::debug!(shard = shard.index, peer = %transport.peer(), "{reason}"),
        }
        if let Err(msg) = guarded(|| protocol.connection_lost(reason)) {
            tracing::error!(shard = shard.index, "connection_lost panicked: {msg}");
        }
    }
}

/// shutdown(2) (Orderly) or SO_LINGER 0 (Reset) on `fd`, the default close.
fn close_fd(fd: Option<RawFd>, how: Close) {
    match (how, fd) {
        (_, None) | (Close::Plain, _) => {}
        (Close::Orderly, Some(fd)) => {
            // SAFETY: `fd` belongs to the stream, which the caller drops only after
            // this returns; shutdown(2) does not release it.
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        }
        (Close::Reset, Some(fd)) => {
            let linger = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            // SAFETY: as above; `linger` is a valid SO_LINGER value that lives
            // across the call, and its size is passed exactly.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&linger as *const libc::linger).cast(),
                    std::mem::size_of::<libc::linger>() as libc::socklen_t,
                )
            };
        }
    }
}

#[cfg(test)]
mod tests {
    //! The driver against an in-memory socket that is always ready, so the executor
    //! never parks: what is counted is weft's own per-message work.
    use super::*;
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;
    use std::sync::Arc;

    use crate::clock::Clock;
    use crate::runtime::listener::Handoff;
    use crate::runtime::Config;
    use crate::services::wire::Echo;
    use crate::transport::OutputLimits;

    struct Counting;
    thread_local!(static COUNT: Cell<Option<u64>> = const { Cell::new(None) });

    fn count_one() {
        // try_with: the allocator also runs while thread-locals are torn down.
        let _ = COUNT.try_with(|c| {
            if let Some(n) = c.get() {
                c.set(Some(n + 1));
            }
        });
    }

    // SAFETY: every call is forwarded unchanged to the system allocator; counting
    // has no effect on the memory handed out.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            count_one();
            // SAFETY: forwarded with the caller's layout.
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: `ptr` came from `System.alloc` with this layout.
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, size: usize) -> *mut u8 {
            count_one();
            // SAFETY: `ptr` came from `System.alloc` with this layout.
            unsafe { System.realloc(ptr, layout, size) }
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;

    /// Hands out `messages` reads of 64 bytes, then EOF; counts the bytes written
    /// back and starts counting allocations after `warmup` reads.
    struct MemSocket {
        reads_left: u64,
        warmup: u64,
        written: Rc<Cell<u64>>,
    }

    impl AsyncRead for MemSocket {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            if self.reads_left == 0 {
                return Poll::Ready(Ok(0));
            }
            self.reads_left -= 1;
            if self.reads_left == self.warmup {
                COUNT.with(|c| c.set(Some(0)));
            }
            buf[..64].fill(7);
            Poll::Ready(Ok(64))
        }
    }

    impl AsyncWrite for MemSocket {
        fn poll_write(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.written.set(self.written.get() + buf.len() as u64);
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    impl Socket for MemSocket {
        fn fd(&self) -> Option<RawFd> {
            None
        }
    }

    #[test]
    fn the_echo_path_allocates_nothing_per_message_in_steady_state() {
        const MESSAGES: u64 = 20_000;
        let ex = glommio::LocalExecutorBuilder::default()
            .io_memory(64 * 1024)
            .make()
            .expect("an executor (io_uring is required)");
        let written = Rc::new(Cell::new(0));
        let w = Rc::clone(&written);
        let allocs = ex.run(async move {
            let config = Arc::new(Config {
                limits: OutputLimits::default(),
                drain_timeout: std::time::Duration::from_secs(1),
                read_budget: 16,
                nodelay: true,
                native_io: false,
            });
            let shard = Shard::new(0, 1, config, Arc::default(), Clock::real(), Handoff::new(1));
            let sock = MemSocket {
                reads_left: MESSAGES + 1000,
                warmup: MESSAGES,
                written: w,
            };
            let peer = Address::Unix(None);
            run(shard, sock, Echo, peer.clone(), peer).await;
            COUNT.with(|c| c.take())
        });
        assert_eq!(written.get(), (MESSAGES + 1000) * 64, "every byte echoed");
        let allocs = allocs.expect("counting started");
        eprintln!("{allocs} allocations while echoing {MESSAGES} messages");
        // The end of the connection (deregistration, logging) may allocate a little;
        // the 20 000 messages before it must not.
        assert!(allocs < 10, "{allocs} allocations for {MESSAGES} messages");
    }
}
