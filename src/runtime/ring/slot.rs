//! One connection's requests on the ring: what is armed, what came back, and when
//! its descriptor may be closed. Pure bookkeeping, tested with fabricated
//! completions; `runtime/connection.rs` turns its answers into SQEs.
//!
//! ```text
//!  receive:  Idle ──arm──► Armed ──not wanted, or held ≥ MAX_HELD──► Cancelling
//!              ▲            │ final CQE (EOF, error,                   │ final CQE
//!              └────────────┴─ ENOBUFS, cancelled) ◄───────────────────┘
//!  (armed only while the connection wants to read: a paused connection has no
//!   receive, so the kernel keeps what the peer sends and the pool stays free)
//!  send:     Idle ──send──► InFlight ──CQE──► Idle
//!  life:     Open ──close──► Closing(ops in flight) ──last CQE──► released (fd closed)
//! ```
//!
//! Invariant: `ops` counts every request submitted for this slot whose final CQE
//! has not been seen. The slot (its descriptor, the output a send reads from) is
//! released only when `ops == 0`, so no request can outlive what it names and no
//! CQE can reach a reused slot.

use std::collections::VecDeque;
use std::os::fd::RawFd;

/// Received buffers a connection may hold undelivered before its receive is
/// cancelled (a paused connection's receive is cancelled at once, and what it
/// holds is copied out by the driver): no connection can take the shard's pool.
pub(crate) const MAX_HELD: usize = 4;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Recv {
    /// No receive armed.
    Idle,
    /// A multishot receive is armed.
    Armed,
    /// Its cancellation was requested; its final CQE is awaited.
    Cancelling,
}

/// How the read side ended, as far as the ring knows.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum ReadEnd {
    Open,
    /// The peer sent FIN (a zero-length receive).
    Eof,
    /// The receive failed with this errno.
    Failed(i32),
    /// The end was handed to the connection machine.
    Reported,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Life {
    Open,
    /// The connection ended; the slot waits for its requests before closing `fd`.
    Closing,
}

/// What a send's CQE meant.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Sent {
    /// The kernel took this many bytes.
    Bytes(usize),
    /// The send was cancelled (the connection ended).
    Cancelled,
    /// The send failed with this errno.
    Failed(i32),
}

/// One received buffer not yet delivered.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Held {
    pub(crate) bid: u16,
    pub(crate) len: u32,
}

#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) fd: RawFd,
    recv: Recv,
    held: VecDeque<Held>,
    read_end: ReadEnd,
    sending: bool,
    /// Bytes the send in flight asked the kernel to take.
    send_len: usize,
    /// The last send came back short: the kernel's buffer for this peer is full.
    kernel_full: bool,
    send_error: Option<i32>,
    /// The last receive ended for want of buffers: arm again when some are back.
    starved: bool,
    ops: u32,
    life: Life,
}

impl Slot {
    pub(crate) fn new(fd: RawFd) -> Slot {
        Slot {
            fd,
            recv: Recv::Idle,
            held: VecDeque::with_capacity(MAX_HELD),
            read_end: ReadEnd::Open,
            sending: false,
            send_len: 0,
            kernel_full: false,
            send_error: None,
            starved: false,
            ops: 0,
            life: Life::Open,
        }
    }

    #[cfg(test)]
    pub(crate) fn recv_state(&self) -> Recv {
        self.recv
    }

    #[cfg(test)]
    pub(crate) fn ops(&self) -> u32 {
        self.ops
    }

    pub(crate) fn sending(&self) -> bool {
        self.sending
    }

    pub(crate) fn starved(&self) -> bool {
        self.starved
    }

    /// Tells whether a receive should be armed now (`buffers_free`: the pool has
    /// buffers on the ring; `wanted`: the connection reads, and has nothing older
    /// than the kernel's bytes left to deliver).
    pub(crate) fn should_arm(&self, buffers_free: bool, wanted: bool) -> bool {
        wanted
            && self.life == Life::Open
            && self.recv == Recv::Idle
            && self.read_end == ReadEnd::Open
            && self.held.len() < MAX_HELD
            && (!self.starved || buffers_free)
    }

    /// A receive was submitted.
    pub(crate) fn armed(&mut self) {
        self.recv = Recv::Armed;
        self.starved = false;
        self.ops += 1;
    }

    /// Tells whether the armed receive must be cancelled: reading stopped
    /// (`wanted` false), or too much is held.
    pub(crate) fn should_cancel_recv(&self, wanted: bool) -> bool {
        self.recv == Recv::Armed && (!wanted || self.held.len() >= MAX_HELD)
    }

    /// A cancellation of the receive was submitted.
    pub(crate) fn cancelling_recv(&mut self) {
        self.recv = Recv::Cancelling;
        self.ops += 1;
    }

    /// A receive CQE: `res` and whether more will follow (`IORING_CQE_F_MORE`), and
    /// the buffer it filled. Returns a buffer the caller must give back at once
    /// (the slot is closing, or the CQE carried no data).
    pub(crate) fn on_recv(&mut self, res: i32, more: bool, bid: Option<u16>) -> Option<u16> {
        let mut give_back = None;
        match bid {
            Some(b) if res > 0 && self.life == Life::Open => self.held.push_back(Held {
                bid: b,
                len: res as u32,
            }),
            Some(b) => give_back = Some(b),
            None => {}
        }
        if !more {
            self.ops -= 1;
            self.recv = Recv::Idle;
            match res {
                0 => {
                    if self.read_end == ReadEnd::Open {
                        self.read_end = ReadEnd::Eof;
                    }
                }
                r if r > 0 => {} // ended with data (overflow): armed again by `should_arm`
                r if r == -libc::ENOBUFS => self.starved = true,
                r if r == -libc::ECANCELED => {}
                r => {
                    if self.read_end == ReadEnd::Open {
                        self.read_end = ReadEnd::Failed(-r);
                    }
                }
            }
        }
        give_back
    }

    /// Takes the next buffer to deliver.
    pub(crate) fn next_held(&mut self) -> Option<Held> {
        self.held.pop_front()
    }

    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.held.len()
    }

    /// Takes the end of the read side once every buffer before it was delivered.
    pub(crate) fn take_read_end(&mut self) -> Option<ReadEnd> {
        if !self.held.is_empty() {
            return None;
        }
        match self.read_end {
            ReadEnd::Eof | ReadEnd::Failed(_) => {
                Some(std::mem::replace(&mut self.read_end, ReadEnd::Reported))
            }
            ReadEnd::Open | ReadEnd::Reported => None,
        }
    }

    /// A send of `len` bytes was submitted.
    pub(crate) fn send_started(&mut self, len: usize) {
        debug_assert!(!self.sending);
        self.sending = true;
        self.send_len = len;
        self.ops += 1;
    }

    /// Tells whether the kernel refused part of the last send (its buffer for this
    /// peer is full): what is still held counts against the connection's cap.
    pub(crate) fn kernel_full(&self) -> bool {
        self.kernel_full
    }

    /// A send's CQE.
    pub(crate) fn on_send(&mut self, res: i32) -> Sent {
        self.ops -= 1;
        self.sending = false;
        match res {
            r if r >= 0 => {
                self.kernel_full = (r as usize) < self.send_len;
                Sent::Bytes(r as usize)
            }
            r if r == -libc::ECANCELED => Sent::Cancelled,
            r => {
                self.send_error.get_or_insert(-r);
                Sent::Failed(-r)
            }
        }
    }

    /// A send made straight to the socket, outside the ring, of `asked` bytes
    /// returned `res` (bytes, or `-errno`). Nothing was in flight, and nothing is.
    pub(crate) fn on_direct_send(&mut self, asked: usize, res: i32) -> Sent {
        debug_assert!(!self.sending);
        match res {
            r if r >= 0 => {
                self.kernel_full = (r as usize) < asked;
                Sent::Bytes(r as usize)
            }
            r if r == -libc::EAGAIN => {
                self.kernel_full = true;
                Sent::Bytes(0)
            }
            r => {
                self.send_error.get_or_insert(-r);
                Sent::Failed(-r)
            }
        }
    }

    /// Takes a send error for the connection machine.
    pub(crate) fn take_send_error(&mut self) -> Option<i32> {
        self.send_error.take()
    }

    /// A cancellation's own CQE.
    pub(crate) fn on_cancel(&mut self) {
        self.ops -= 1;
    }

    /// The connection ended. Returns the buffers still held (to give back) and
    /// whether its requests in flight must be cancelled (the caller submits one
    /// cancel-all for the descriptor and calls [`cancelling_all`](Self::cancelling_all)).
    pub(crate) fn close(&mut self) -> (Vec<u16>, bool) {
        self.life = Life::Closing;
        let held = self.held.drain(..).map(|h| h.bid).collect();
        (held, self.ops > 0)
    }

    /// A cancel-all for the descriptor was submitted.
    pub(crate) fn cancelling_all(&mut self) {
        self.ops += 1;
    }

    /// Tells whether the descriptor may be closed and the slot reused.
    pub(crate) fn releasable(&self) -> bool {
        self.life == Life::Closing && self.ops == 0
    }
}

#[cfg(test)]
mod tests {
    //! The slot against fabricated completions.
    use super::*;

    fn armed() -> Slot {
        let mut s = Slot::new(7);
        assert!(s.should_arm(true, true));
        s.armed();
        s
    }

    #[test]
    fn idle_arm_counts_one_request() {
        let s = armed();
        assert_eq!(s.recv_state(), Recv::Armed);
        assert_eq!(s.ops(), 1);
        assert!(!s.should_arm(true, true), "one receive at a time");
    }

    #[test]
    fn armed_data_with_more_is_held_in_order() {
        let mut s = armed();
        assert_eq!(s.on_recv(10, true, Some(3)), None);
        assert_eq!(s.on_recv(20, true, Some(4)), None);
        assert_eq!(s.next_held(), Some(Held { bid: 3, len: 10 }));
        assert_eq!(s.next_held(), Some(Held { bid: 4, len: 20 }));
        assert_eq!(s.ops(), 1, "still armed");
    }

    #[test]
    fn armed_zero_is_eof_after_the_data_before_it() {
        let mut s = armed();
        s.on_recv(5, true, Some(1));
        s.on_recv(0, false, None);
        assert_eq!(s.ops(), 0);
        assert_eq!(s.take_read_end(), None, "data first");
        s.next_held();
        assert_eq!(s.take_read_end(), Some(ReadEnd::Eof));
        assert_eq!(s.take_read_end(), None, "reported once");
        assert!(!s.should_arm(true, true), "nothing more to read");
    }

    #[test]
    fn armed_error_is_reported_once() {
        let mut s = armed();
        s.on_recv(-libc::ECONNRESET, false, None);
        assert_eq!(s.take_read_end(), Some(ReadEnd::Failed(libc::ECONNRESET)));
        assert_eq!(s.take_read_end(), None);
    }

    #[test]
    fn armed_out_of_buffers_waits_for_buffers_then_rearms() {
        let mut s = armed();
        s.on_recv(-libc::ENOBUFS, false, None);
        assert_eq!(s.take_read_end(), None, "not an error of the connection");
        assert!(s.starved());
        assert!(!s.should_arm(false, true), "not while the pool is empty");
        assert!(s.should_arm(true, true));
    }

    #[test]
    fn armed_final_cqe_with_data_rearms() {
        let mut s = armed();
        s.on_recv(100, false, Some(2));
        assert_eq!(s.recv_state(), Recv::Idle);
        assert!(s.should_arm(true, true));
    }

    #[test]
    fn armed_too_much_held_cancels_then_rearms_once_read() {
        let mut s = armed();
        for bid in 0..MAX_HELD as u16 {
            s.on_recv(1, true, Some(bid));
        }
        assert!(s.should_cancel_recv(true));
        s.cancelling_recv();
        assert_eq!(s.ops(), 2);
        // Data that raced with the cancellation is still kept, in order.
        s.on_recv(1, true, Some(99));
        s.on_cancel();
        s.on_recv(-libc::ECANCELED, false, None);
        assert_eq!(s.ops(), 0);
        assert_eq!(s.held(), MAX_HELD + 1);
        assert!(!s.should_arm(true, true), "still holding too much");
        while s.next_held().is_some() {}
        assert!(s.should_arm(true, true));
        assert_eq!(s.take_read_end(), None, "a cancellation is not an end");
    }

    #[test]
    fn idle_not_wanted_is_not_armed() {
        let s = Slot::new(7);
        assert!(
            !s.should_arm(true, false),
            "a paused connection has no receive"
        );
    }

    #[test]
    fn armed_not_wanted_cancels_at_once_and_keeps_what_raced() {
        let mut s = armed();
        assert!(!s.should_cancel_recv(true), "wanted, nothing held");
        assert!(s.should_cancel_recv(false), "reading paused: cancel now");
        s.cancelling_recv();
        s.on_recv(7, true, Some(5));
        s.on_cancel();
        s.on_recv(-libc::ECANCELED, false, None);
        assert_eq!(s.ops(), 0);
        assert_eq!(s.next_held(), Some(Held { bid: 5, len: 7 }));
        assert!(!s.should_arm(true, false), "still paused");
        assert!(s.should_arm(true, true), "armed again on resume");
    }

    #[test]
    fn idle_send_completes_with_bytes() {
        let mut s = Slot::new(1);
        s.send_started(42);
        assert!(s.sending());
        assert_eq!(s.on_send(42), Sent::Bytes(42));
        assert!(!s.sending() && !s.kernel_full());
        s.send_started(100);
        assert_eq!(s.on_send(60), Sent::Bytes(60));
        assert!(
            s.kernel_full(),
            "a short send means the kernel's buffer is full"
        );
        assert_eq!(s.ops(), 0);
    }

    #[test]
    fn idle_direct_send_short_or_refused_means_the_kernel_is_full() {
        let mut s = Slot::new(1);
        assert_eq!(s.on_direct_send(10, 10), Sent::Bytes(10));
        assert!(!s.kernel_full());
        assert_eq!(s.on_direct_send(10, 4), Sent::Bytes(4));
        assert!(s.kernel_full());
        assert_eq!(s.on_direct_send(10, -libc::EAGAIN), Sent::Bytes(0));
        assert!(s.kernel_full());
        assert_eq!(
            s.on_direct_send(10, -libc::EPIPE),
            Sent::Failed(libc::EPIPE)
        );
        assert_eq!(s.take_send_error(), Some(libc::EPIPE));
        assert_eq!(s.ops(), 0, "nothing in flight");
    }

    #[test]
    fn in_flight_send_error_is_kept_for_the_machine() {
        let mut s = Slot::new(1);
        s.send_started(42);
        assert_eq!(s.on_send(-libc::EPIPE), Sent::Failed(libc::EPIPE));
        assert_eq!(s.take_send_error(), Some(libc::EPIPE));
        assert_eq!(s.take_send_error(), None);
    }

    #[test]
    fn open_close_with_nothing_in_flight_is_releasable_at_once() {
        let mut s = Slot::new(1);
        let (held, cancel) = s.close();
        assert!(held.is_empty() && !cancel);
        assert!(s.releasable());
    }

    #[test]
    fn open_close_with_requests_in_flight_waits_for_every_cqe() {
        let mut s = armed();
        s.on_recv(3, true, Some(8));
        s.send_started(42);
        let (held, cancel) = s.close();
        assert_eq!(held, vec![8], "held buffers go back");
        assert!(cancel);
        s.cancelling_all();
        assert!(!s.releasable());
        assert_eq!(s.on_recv(4, true, Some(9)), Some(9), "late data goes back");
        s.on_recv(-libc::ECANCELED, false, None);
        assert_eq!(s.on_send(-libc::ECANCELED), Sent::Cancelled);
        assert!(!s.releasable(), "the cancel's own CQE is still out");
        s.on_cancel();
        assert!(s.releasable());
        assert!(!s.should_arm(true, true), "a closing slot is never armed");
    }
}
