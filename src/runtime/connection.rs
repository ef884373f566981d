//! Connections on the shard's ring: moving bytes and completions between the ring
//! and each connection's machine and protocol.
//!
//! ```text
//!  recv CQE ─► slot holds the buffer ─┐
//!  send CQE ─► output advances ───────┼─► service list ─► service_conn:
//!  a handle wrote / closed ───────────┘     deliver held buffers (data_received,
//!                                           straight from the provided buffer)
//!                                           ─► EOF / errors to the machine
//!                                           ─► flow control (pause/resume_producing)
//!                                           ─► the end? close the slot, connection_lost
//!                                           ─► one send from the output buffer
//!                                           ─► arm or cancel the receive
//! ```
//!
//! The rules (when to read, pause, close, and why) are the connection machine's
//! (`crate::connection::machine`); the ring's bookkeeping is the slot's
//! (`ring/slot.rs`). This file only moves between them, and runs the protocol's
//! callbacks, each under `catch_unwind`: a panic ends that connection only.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;
use std::time::Instant;

use io_uring::opcode;
use io_uring::types::Fd;
use socket2::SockRef;

use crate::address::Address;
use crate::connection::machine::{Close, EofAction, Flow};
use crate::protocol::Protocol;
use crate::reason::Reason;
use crate::runtime::log_limit::Verdict;
use crate::runtime::ring::bufs::BUF_SIZE;
use crate::runtime::ring::op::Op;
use crate::runtime::ring::slot::{ReadEnd, Sent, Slot};
use crate::runtime::ring::Completion;
use crate::runtime::shard::{guarded, Shard};
use crate::runtime::stash::Stash;
use crate::runtime::ShardStats;
use crate::transport::{ConnShared, Transport};

/// A protocol and its transport, with the type erased: what the shard calls.
pub(crate) trait Driven {
    fn connection_made(&mut self) -> Result<(), String>;
    fn data_received(&mut self, data: &[u8]) -> Result<(), String>;
    fn read_connection_lost(&mut self) -> Result<(), String>;
    fn flow(&mut self, f: Flow) -> Result<(), String>;
    fn server_stopping(&mut self) -> Result<(), String>;
    fn half_closeable(&self) -> bool;
    fn connection_lost(self: Box<Self>, reason: Reason) -> Result<(), String>;
    fn peer(&self) -> &Address;
}

struct Bound<P> {
    protocol: P,
    transport: Transport,
}

impl<P: Protocol> Driven for Bound<P> {
    fn connection_made(&mut self) -> Result<(), String> {
        let (p, t) = (&mut self.protocol, &mut self.transport);
        guarded(|| p.connection_made(t))
    }

    fn data_received(&mut self, data: &[u8]) -> Result<(), String> {
        let (p, t) = (&mut self.protocol, &mut self.transport);
        guarded(|| p.data_received(data, t))
    }

    fn read_connection_lost(&mut self) -> Result<(), String> {
        let (p, t) = (&mut self.protocol, &mut self.transport);
        guarded(|| p.read_connection_lost(t))
    }

    fn flow(&mut self, f: Flow) -> Result<(), String> {
        let (p, t) = (&mut self.protocol, &mut self.transport);
        guarded(|| match f {
            Flow::PauseProducing => p.pause_producing(t),
            Flow::ResumeProducing => p.resume_producing(t),
        })
    }

    fn server_stopping(&mut self) -> Result<(), String> {
        let (p, t) = (&mut self.protocol, &mut self.transport);
        guarded(|| p.server_stopping(t))
    }

    fn half_closeable(&self) -> bool {
        self.protocol.half_closeable()
    }

    fn connection_lost(self: Box<Self>, reason: Reason) -> Result<(), String> {
        let Bound { mut protocol, .. } = *self;
        guarded(move || protocol.connection_lost(reason))
    }

    fn peer(&self) -> &Address {
        self.transport.peer()
    }
}

/// One connection on the shard: its ring slot, its shared state, its protocol.
pub(crate) struct Entry {
    slot: Slot,
    /// Owns the descriptor: closed when the entry is released, after the last CQE.
    sock: OwnedFd,
    shared: Rc<ConnShared>,
    /// `None` while a callback runs, and after `connection_lost`.
    driver: Option<Box<dyn Driven>>,
    /// `connection_lost` was delivered; the entry waits for its requests.
    lost: bool,
    /// Output counted in the shard's total for this connection.
    accounted: usize,
    /// Received bytes not yet read, copied out of the pool when reading paused;
    /// delivered before anything the slot holds.
    stash: Stash,
}

impl Shard {
    /// Starts serving `protocol` on the connected socket `sock`.
    pub(crate) fn adopt<P: Protocol>(
        self: &Rc<Self>,
        sock: OwnedFd,
        protocol: P,
        peer: Address,
        host: Address,
    ) {
        tracing::debug!(shard = self.index, %peer, "connection made");
        let id = {
            let mut conns = self.conns.borrow_mut();
            let id = conns.vacant_key();
            let shared = ConnShared::served(self.config.limits, id, Rc::clone(&self.service));
            shared
                .machine
                .borrow_mut()
                .set_backpressure(protocol.backpressure());
            let transport = Transport::new(Rc::clone(&shared), self.reactor.clone(), peer, host);
            conns.insert(Entry {
                slot: Slot::new(sock.as_raw_fd()),
                sock,
                shared,
                driver: Some(Box::new(Bound {
                    protocol,
                    transport,
                })),
                lost: false,
                accounted: 0,
                stash: Stash::default(),
            });
            id
        };
        self.live.set(self.live.get() + 1);
        ShardStats::add(&self.stats.open, 1);
        self.call(id, |d| d.connection_made());
        if self.stopping.get() {
            self.tell_stopping(id);
        }
        if let Some(e) = self.conns.borrow().get(id) {
            e.shared.wake();
        }
    }

    /// Marks connection `id` as ending with the server and tells its protocol
    /// (`server_stopping`, whose default is `lose_connection`).
    fn tell_stopping(&self, id: usize) {
        {
            let conns = self.conns.borrow();
            match conns.get(id) {
                Some(e) if !e.lost => e.shared.begin_shutdown(),
                _ => return,
            }
        }
        self.call(id, |d| d.server_stopping());
    }

    /// Runs one protocol callback of connection `id`; a panic ends the connection
    /// (its output discarded) and is logged with the peer.
    fn call(&self, id: usize, f: impl FnOnce(&mut dyn Driven) -> Result<(), String>) {
        let mut driver = {
            let mut conns = self.conns.borrow_mut();
            match conns.get_mut(id).and_then(|e| e.driver.take()) {
                Some(d) => d,
                None => return,
            }
        };
        let result = f(&mut *driver);
        let mut conns = self.conns.borrow_mut();
        let e = &mut conns[id];
        if let Err(msg) = result {
            ShardStats::add(&self.stats.panics, 1);
            tracing::error!(
                shard = self.index,
                peer = %driver.peer(),
                "protocol callback panicked: {msg}; closing this connection"
            );
            e.shared.machine.borrow_mut().handle_panic(msg);
            e.shared.out.borrow_mut().clear();
        }
        e.driver = Some(driver);
    }

    pub(crate) fn on_recv(&self, id: usize, c: Completion) {
        let mut conns = self.conns.borrow_mut();
        let Some(e) = conns.get_mut(id) else {
            if let Some(b) = c.buffer() {
                self.ring.borrow_mut().give_back(b);
            }
            return;
        };
        if let Some(b) = e.slot.on_recv(c.result, c.more(), c.buffer()) {
            self.ring.borrow_mut().give_back(b);
        }
        if c.result == -libc::ENOBUFS && !c.more() {
            if !self.starved_logged.replace(true) {
                tracing::warn!(
                    shard = self.index,
                    "the receive buffer pool ran dry (connections hold what they have not read); receives resume as buffers come back"
                );
            }
            self.starved.borrow_mut().push(id);
        }
        if e.lost {
            drop(conns);
            self.maybe_release(id);
        } else {
            e.shared.wake();
        }
    }

    pub(crate) fn on_send(&self, id: usize, res: i32) {
        let mut conns = self.conns.borrow_mut();
        let Some(e) = conns.get_mut(id) else { return };
        match e.slot.on_send(res) {
            Sent::Bytes(n) => {
                e.shared.out.borrow_mut().end_send(n);
                ShardStats::add(&self.stats.bytes_out, n as u64);
            }
            Sent::Cancelled | Sent::Failed(_) => e.shared.out.borrow_mut().end_send(0),
        }
        if e.lost {
            drop(conns);
            self.maybe_release(id);
        } else {
            e.shared.wake();
        }
    }

    pub(crate) fn on_cancel(&self, id: usize) {
        if let Some(e) = self.conns.borrow_mut().get_mut(id) {
            e.slot.on_cancel();
        }
        self.maybe_release(id);
    }

    /// Applies everything that happened to connection `id` since it was last
    /// serviced; see the module doc.
    pub(crate) fn service_conn(&self, id: usize) {
        {
            let conns = self.conns.borrow();
            match conns.get(id) {
                Some(e) if !e.lost => e.shared.serviced(),
                _ => return,
            }
        }
        // Flow first: a send that drained the output may have released the hold
        // on reading, and the held buffers are delivered right after.
        self.flow(id);
        self.deliver(id);
        if self.read_end(id) {
            self.flow(id);
        }
        if self.send_directly(id) {
            self.flow(id);
        }
        let end = {
            let conns = self.conns.borrow();
            let e = &conns[id];
            let buffered = e.shared.out.borrow().len();
            let end = e.shared.machine.borrow_mut().poll_end(buffered);
            end
        };
        if let Some((reason, how)) = end {
            self.finish(id, reason, how);
            return;
        }
        self.submit_io(id);
    }

    /// Delivers the stash, then held buffers, while the connection wants to read;
    /// when it stops, copies what it still holds to the stash and gives the
    /// buffers back, so a paused connection never keeps the shard's pool.
    fn deliver(&self, id: usize) {
        loop {
            let next = {
                let mut conns = self.conns.borrow_mut();
                let e = &mut conns[id];
                if e.lost {
                    return;
                }
                if !e.shared.machine.borrow().wants_read() {
                    self.stash_held(e);
                    return;
                }
                if !e.stash.is_empty() {
                    None
                } else {
                    match e.slot.next_held() {
                        Some(h) => Some(h),
                        None => return,
                    }
                }
            };
            let len = match next {
                Some(held) => {
                    let (ptr, len) = self.ring.borrow().buffer_bytes(held.bid, held.len as usize);
                    // SAFETY: buffer `held.bid` was filled by the kernel and taken off
                    // the ring (its CQE was reaped); it is given back only below, after
                    // the callback returned, so the kernel does not write into it
                    // meanwhile. The pool lives as long as the ring, which lives as long
                    // as the shard that is running this call. The slice does not escape
                    // the callback.
                    let data = unsafe { std::slice::from_raw_parts(ptr, len) };
                    self.call(id, |d| d.data_received(data));
                    self.ring.borrow_mut().give_back(held.bid);
                    len
                }
                None => {
                    // Taken out while the callback runs (which borrows the entries).
                    let mut stash = std::mem::take(&mut self.conns.borrow_mut()[id].stash);
                    let data = stash.front(BUF_SIZE);
                    let len = data.len();
                    self.call(id, |d| d.data_received(data));
                    stash.consume(len);
                    self.conns.borrow_mut()[id].stash = stash;
                    len
                }
            };
            ShardStats::add(&self.stats.bytes_in, len as u64);
            // The watermark is checked after every read, so a connection whose
            // output just passed it stops reading now, not after what it holds.
            self.flow(id);
        }
    }

    /// Copies the buffers a connection holds to its stash and gives them back.
    fn stash_held(&self, e: &mut Entry) {
        let mut ring = self.ring.borrow_mut();
        while let Some(held) = e.slot.next_held() {
            let (ptr, len) = ring.buffer_bytes(held.bid, held.len as usize);
            // SAFETY: as in `deliver`: the buffer is held (off the ring) until the
            // `give_back` right after the copy, and the slice does not outlive it.
            e.stash
                .push(unsafe { std::slice::from_raw_parts(ptr, len) });
            ring.give_back(held.bid);
            ShardStats::add(&self.stats.stashed_bytes, len as u64);
        }
    }

    /// Hands the end of the read side, and send errors, to the machine. Returns
    /// whether there was any (the per-message path returns at once).
    fn read_end(&self, id: usize) -> bool {
        let (end, send_error, half_closeable) = {
            let mut conns = self.conns.borrow_mut();
            let e = &mut conns[id];
            // The end comes after every byte before it, stashed ones too.
            let end = if e.stash.is_empty() {
                e.slot.take_read_end()
            } else {
                None
            };
            let send_error = e.slot.take_send_error();
            if end.is_none() && send_error.is_none() {
                return false;
            }
            let hc = e.driver.as_ref().is_some_and(|d| d.half_closeable());
            (end, send_error, hc)
        };
        let conns = self.conns.borrow();
        let shared = Rc::clone(&conns[id].shared);
        drop(conns);
        match end {
            Some(ReadEnd::Eof) => {
                let action = shared.machine.borrow_mut().handle_eof(half_closeable);
                if action == EofAction::ReadConnectionLost {
                    self.call(id, |d| d.read_connection_lost());
                }
            }
            Some(ReadEnd::Failed(errno)) => shared
                .machine
                .borrow_mut()
                .handle_error(io::Error::from_raw_os_error(errno)),
            Some(ReadEnd::Open | ReadEnd::Reported) | None => {}
        }
        if let Some(errno) = send_error {
            shared
                .machine
                .borrow_mut()
                .handle_error(io::Error::from_raw_os_error(errno));
            shared.out.borrow_mut().clear();
        }
        true
    }

    /// Runs the watermark and the cap, calling pause/resume_producing as told.
    fn flow(&self, id: usize) {
        loop {
            let event = {
                let conns = self.conns.borrow();
                let e = &conns[id];
                let buffered = e.shared.out.borrow().len();
                let full = e.slot.kernel_full();
                let ev = e.shared.machine.borrow_mut().poll_flow(buffered, full);
                ev
            };
            match event {
                Some(f) => {
                    if f == Flow::PauseProducing {
                        ShardStats::add(&self.stats.pauses, 1);
                    }
                    self.call(id, |d| d.flow(f));
                }
                None => return,
            }
        }
    }

    /// Sends a lone connection's output straight to its socket, without the ring,
    /// when it is the last of its turn and no send is queued for the ring: the
    /// turn's one `io_uring_enter` then only sleeps, instead of submitting a send
    /// whose completion would end the sleep at once and cost a second enter and a
    /// turn per round trip (one connection in ping-pong). Batches (several
    /// connections sending in a turn) still go to the ring in one submission.
    /// Returns whether bytes went out (flow control may have a change to report).
    fn send_directly(&self, id: usize) -> bool {
        if self.pass_left.get() != 0 || self.ring.borrow().sends_queued() != 0 {
            return false;
        }
        let mut conns = self.conns.borrow_mut();
        let e = &mut conns[id];
        if e.slot.sending() || e.slot.kernel_full() {
            return false;
        }
        let mut out = e.shared.out.borrow_mut();
        let front = out.front();
        if front.is_empty() {
            return false;
        }
        let asked = front.len();
        let res = match SockRef::from(&e.sock)
            .send_with_flags(front, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT)
        {
            Ok(n) => n as i32,
            Err(err) => -err.raw_os_error().unwrap_or(libc::EIO),
        };
        match e.slot.on_direct_send(asked, res) {
            Sent::Bytes(n) => {
                out.consume(n);
                ShardStats::add(&self.stats.bytes_out, n as u64);
                ShardStats::add(&self.stats.direct_sends, 1);
                n > 0
            }
            Sent::Cancelled | Sent::Failed(_) => {
                drop(out);
                // The error reaches the machine on the service this wake asks for.
                e.shared.wake();
                false
            }
        }
    }

    /// Queues the connection's send and arms or cancels its receive.
    fn submit_io(&self, id: usize) {
        let mut conns = self.conns.borrow_mut();
        let e = &mut conns[id];
        let mut ring = self.ring.borrow_mut();
        {
            let mut out = e.shared.out.borrow_mut();
            if !e.slot.sending() && !out.is_empty() {
                let (ptr, len) = out.begin_send();
                let len = len.min(u32::MAX as usize) as u32;
                let sqe = opcode::Send::new(Fd(e.slot.fd), ptr, len)
                    .flags(libc::MSG_NOSIGNAL)
                    .build()
                    .user_data(Op::Send(id).encode());
                // SAFETY: `ptr..ptr+len` is the frozen front of the connection's
                // output buffer: `OutBuf` neither moves nor frees it until
                // `end_send`, which runs on this send's CQE. The buffer lives in
                // `e.shared`, which the entry keeps until it is released, and the
                // entry is released only once its slot counts no request in
                // flight (`Slot::releasable`). The descriptor is owned by the entry
                // for as long.
                unsafe { ring.push(&sqe) };
                ring.send_queued();
                e.slot.send_started(len as usize);
            }
            let buffered = out.len();
            // The shard's total includes this connection's last count (`accounted`).
            self.buffered_total
                .set(self.buffered_total.get() - e.accounted + buffered);
            e.accounted = buffered;
        }
        let free = ring.buffers_free();
        let wanted = e.stash.is_empty() && e.shared.machine.borrow().wants_read();
        if e.slot.should_arm(free, wanted) {
            let sqe = opcode::RecvMulti::new(Fd(e.slot.fd), crate::runtime::ring::bufs::BGID)
                .build()
                .user_data(Op::Recv(id).encode());
            // SAFETY: the receive names only the descriptor (owned by the entry
            // until its release, after this request's final CQE) and the provided
            // buffer pool (freed only after the ring has nothing in flight).
            unsafe { ring.push(&sqe) };
            e.slot.armed();
        } else if e.slot.should_cancel_recv(wanted) {
            ring.cancel(Op::Recv(id), Op::Cancel(id));
            e.slot.cancelling_recv();
        } else if wanted && e.slot.starved() && !free {
            self.starved.borrow_mut().push(id);
        }
    }

    /// Closes connection `id` as `how` says and delivers `connection_lost`.
    fn finish(&self, id: usize, reason: Reason, how: Close) {
        let driver = {
            let mut conns = self.conns.borrow_mut();
            let e = &mut conns[id];
            e.lost = true;
            e.shared.machine.borrow_mut().mark_lost();
            e.shared.out.borrow_mut().clear();
            e.stash = Stash::default();
            let (held, cancel) = e.slot.close();
            let mut ring = self.ring.borrow_mut();
            for b in held {
                ring.give_back(b);
            }
            let sock = SockRef::from(&e.sock);
            match how {
                Close::Orderly => {
                    let _ = sock.shutdown(std::net::Shutdown::Both);
                }
                Close::Reset => {
                    let _ = sock.set_linger(Some(std::time::Duration::ZERO));
                }
                Close::Plain => {}
            }
            if cancel {
                ring.cancel_fd(e.slot.fd, Op::Cancel(id));
                e.slot.cancelling_all();
            }
            self.buffered_total
                .set(self.buffered_total.get().saturating_sub(e.accounted));
            e.accounted = 0;
            e.driver.take()
        };
        self.live.set(self.live.get() - 1);
        ShardStats::sub(&self.stats.open, 1);
        self.stats.closed(&reason);
        if let Some(d) = driver {
            match &reason {
                Reason::ConnectionDone | Reason::Shutdown { .. } | Reason::ConnectionLost(_) => {
                    tracing::debug!(shard = self.index, peer = %d.peer(), "connection lost: {reason}")
                }
                Reason::ConnectionAborted
                | Reason::OutputLimitExceeded { .. }
                | Reason::ProtocolFailure(_) => {
                    // One line per abort, thinned under a flood (the counters keep all).
                    if let Verdict::Log { suppressed } = self.aborts_log.check(Instant::now()) {
                        let more = if suppressed > 0 {
                            format!(" ({suppressed} more ended connections not logged)")
                        } else {
                            String::new()
                        };
                        let peer = d.peer();
                        if matches!(reason, Reason::ConnectionAborted) {
                            tracing::info!(shard = self.index, %peer, "connection ended: {reason}{more}");
                        } else {
                            tracing::warn!(shard = self.index, %peer, "connection ended: {reason}{more}");
                        }
                    }
                }
            }
            if let Err(msg) = d.connection_lost(reason) {
                self.report_panic("connection_lost", &msg);
            }
        }
        self.maybe_release(id);
        if self.live.get() == 0 {
            self.wake_drained();
        }
    }

    /// Releases a lost connection's entry (closing its descriptor) once nothing of
    /// it is in flight.
    fn maybe_release(&self, id: usize) {
        let mut conns = self.conns.borrow_mut();
        let releasable = conns.get(id).is_some_and(|e| e.lost && e.slot.releasable());
        if releasable {
            drop(conns.remove(id)); // closes the descriptor
            if conns.is_empty() {
                drop(conns);
                self.wake_drained();
            }
        }
    }

    /// Aborts the connections holding the most output while the shard's total is
    /// over its budget.
    pub(crate) fn enforce_budget(&self) {
        let budget = self.config.shard_output_budget;
        while self.buffered_total.get() > budget {
            let victim = {
                let conns = self.conns.borrow();
                conns
                    .iter()
                    .filter(|(_, e)| !e.lost)
                    .max_by_key(|(_, e)| e.shared.out.borrow().len())
                    .map(|(id, e)| (id, e.shared.out.borrow().len()))
            };
            let Some((id, buffered)) = victim else { return };
            if buffered == 0 {
                return;
            }
            ShardStats::add(&self.stats.budget_aborts, 1);
            if let Verdict::Log { .. } = self.aborts_log.check(Instant::now()) {
                tracing::warn!(
                    shard = self.index,
                    "the shard's output budget ({budget} bytes) is spent: aborting the connection holding the most ({buffered} bytes)"
                );
            }
            {
                let conns = self.conns.borrow();
                let e = &conns[id];
                e.shared.machine.borrow_mut().over_budget(buffered, budget);
                e.shared.out.borrow_mut().clear();
            }
            self.service_conn(id);
        }
    }

    /// Starts a graceful close of every connection (server shutdown).
    pub(crate) fn shutdown_connections(&self) {
        let ids: Vec<usize> = self
            .conns
            .borrow()
            .iter()
            .filter(|(_, e)| !e.lost)
            .map(|(id, _)| id)
            .collect();
        for id in ids {
            self.tell_stopping(id);
        }
    }

    /// Aborts every connection still open (the drain deadline passed).
    pub(crate) fn abort_connections(&self) -> usize {
        let mut n = 0;
        for (_, e) in self.conns.borrow().iter() {
            if !e.lost {
                e.shared.force_shutdown();
                n += 1;
            }
        }
        n
    }
}
