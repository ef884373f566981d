//! `NativeSocket`: the connection driver's view of a slot in the shard's ring.
//!
//! A read copies from the received buffers (and gives each back once read); a write
//! copies into the slot's send buffer (up to `TX_IDLE_CAP`) and queues one send (a
//! second write while one is in flight goes to the next buffer, up to `TX_CAP` held
//! in all; past that, `Pending` until a send completes). Neither makes a system call.

use std::io;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures_lite::io::{AsyncRead, AsyncWrite};

use super::{Recv, Ring, Slot, TX_CAP, TX_IDLE_CAP};
use crate::runtime::connection::{Close, Socket};

/// A TCP connection served by the shard's native ring.
pub(crate) struct NativeSocket {
    ring: Rc<Ring>,
    idx: usize,
    fd: RawFd,
    closed: bool,
}

impl NativeSocket {
    /// Takes ownership of the connected, non-blocking socket `fd`.
    pub(super) fn new(ring: Rc<Ring>, fd: RawFd) -> NativeSocket {
        let idx = ring.open(fd);
        NativeSocket {
            ring,
            idx,
            fd,
            closed: false,
        }
    }

    fn close_as(&mut self, how: Close) {
        if !self.closed {
            self.closed = true;
            self.ring.inner.borrow_mut().close(self.idx, how);
            self.ring.kick();
        }
    }
}

fn register(s: &mut Slot, cx: &Context<'_>) {
    if !s.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
        s.waker = Some(cx.waker().clone());
    }
}

impl AsyncRead for NativeSocket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let mut guard = this.ring.inner.borrow_mut();
        let inner = &mut *guard;
        let s = inner.slots[this.idx]
            .as_mut()
            .expect("an open socket's slot");
        if s.rx.is_empty() {
            if let Some(e) = s.rx_err {
                return Poll::Ready(Err(io::Error::from_raw_os_error(e)));
            }
            if s.eof {
                return Poll::Ready(Ok(0));
            }
            register(s, cx);
            return Poll::Pending;
        }
        let mut n = 0;
        while n < buf.len() {
            let Some(rx) = s.rx.front_mut() else { break };
            let data = inner.pool.bytes(rx.bid, rx.off as usize, rx.len as usize);
            let k = data.len().min(buf.len() - n);
            buf[n..n + k].copy_from_slice(&data[..k]);
            n += k;
            rx.off += k as u32;
            if rx.off == rx.len {
                let bid = rx.bid;
                s.rx.pop_front();
                inner.pool.give_back(bid);
            }
        }
        if s.rx.is_empty() && s.throttled && s.recv == Recv::Idle {
            inner.arm_recv(this.idx);
            drop(guard);
            this.ring.kick();
        }
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for NativeSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let mut inner = this.ring.inner.borrow_mut();
        let s = inner.slots[this.idx]
            .as_mut()
            .expect("an open socket's slot");
        if let Some(e) = s.tx_err {
            return Poll::Ready(Err(io::Error::from_raw_os_error(e)));
        }
        if !s.tx_busy {
            debug_assert!(s.tx.is_empty() && s.tx_next.is_empty());
            let k = buf.len().min(TX_IDLE_CAP);
            s.tx.extend_from_slice(&buf[..k]);
            s.tx_off = 0;
            inner.submit_send(this.idx);
            drop(inner);
            this.ring.kick();
            return Poll::Ready(Ok(k));
        }
        let held = s.tx.len() - s.tx_off + s.tx_next.len();
        let room = TX_CAP.saturating_sub(held);
        if room == 0 {
            s.tx_blocked = true;
            register(s, cx);
            return Poll::Pending;
        }
        let k = buf.len().min(room);
        s.tx_next.extend_from_slice(&buf[..k]);
        Poll::Ready(Ok(k))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mut inner = this.ring.inner.borrow_mut();
        let s = inner.slots[this.idx]
            .as_mut()
            .expect("an open socket's slot");
        if let Some(e) = s.tx_err {
            return Poll::Ready(Err(io::Error::from_raw_os_error(e)));
        }
        if !s.tx_busy {
            return Poll::Ready(Ok(()));
        }
        s.tx_blocked = true;
        register(s, cx);
        Poll::Pending
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

impl Socket for NativeSocket {
    fn fd(&self) -> Option<RawFd> {
        Some(self.fd)
    }

    /// What the slot holds once a send came back short (the kernel's buffer is
    /// full); 0 while the kernel takes everything it is handed.
    fn unsent(&self) -> usize {
        let inner = self.ring.inner.borrow();
        match inner.slots[self.idx].as_ref() {
            Some(s) if s.tx_refused => s.tx.len() - s.tx_off + s.tx_next.len(),
            _ => 0,
        }
    }

    /// Orderly: the ring sends what was accepted, then shutdown(2) and close;
    /// Reset: SO_LINGER 0, cancel, close; Plain: cancel, close.
    fn close(mut self, how: Close) {
        self.close_as(how);
    }
}

impl Drop for NativeSocket {
    fn drop(&mut self) {
        self.close_as(Close::Plain);
    }
}
