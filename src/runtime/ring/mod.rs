//! A shard's io_uring ring: the only place its I/O happens, and the only place it
//! sleeps.
//!
//! ```text
//!  Ring (SINGLE_ISSUER | DEFER_TASKRUN | SUBMIT_ALL | TASKRUN_FLAG)
//!   ├─ multishot accept per listener, multishot receive per connection into the
//!   │  provided-buffer pool (bufs.rs), one send in flight per connection from its
//!   │  output buffer, readiness polls for connects
//!   ├─ per datagram port: a multishot RecvMsg into the port's own buffer pool
//!   │  (sized for its datagrams), a SendMsg per datagram written
//!   │  (../datagram.rs)
//!   ├─ the doorbell: a read of the shard's eventfd, always armed (doorbell.rs)
//!   └─ the shard's loop: `submit_and_wait` submits a turn's SQEs and sleeps until a
//!      completion or the next timer, in one io_uring_enter
//! ```
//!
//! Files: `setup.rs` (flags, kernel check), `bufs.rs` (provided buffers), `op.rs`
//! (what each request is for), `slot.rs` (one connection's requests). The ring
//! itself only submits, waits and hands out completions; the shard decides.
//!
//! Memory safety across requests in flight: every SQE that names memory or a
//! descriptor is pushed through the unsafe [`Ring::push`], whose callers keep that
//! memory and descriptor alive until the request's final CQE (connections count
//! their requests in `Slot::ops`; the doorbell's buffer lives in the ring). When the
//! ring is dropped it cancels everything and waits for the last CQE before freeing
//! the buffer pool, and leaks the pool rather than free it if that cannot be
//! established.

pub(crate) mod bufs;
pub(crate) mod op;
pub(crate) mod setup;
pub(crate) mod slot;

use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use io_uring::types::{CancelBuilder, Fd, SubmitArgs, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring};

use bufs::BufPool;
use op::Op;

/// One completion, copied out of the ring.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Completion {
    pub(crate) op: Option<Op>,
    pub(crate) result: i32,
    pub(crate) flags: u32,
}

impl Completion {
    /// More completions will follow for this (multishot) request.
    pub(crate) fn more(&self) -> bool {
        cqueue::more(self.flags)
    }

    /// The provided buffer this completion filled, if any.
    pub(crate) fn buffer(&self) -> Option<u16> {
        cqueue::buffer_select(self.flags)
    }
}

/// What the ring did, for the shard's counters.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RingCounters {
    /// SQEs submitted.
    pub(crate) submitted: u64,
    /// CQEs reaped.
    pub(crate) completed: u64,
    /// io_uring_enter calls.
    pub(crate) enters: u64,
    /// Receives that ended because the buffer pool was empty.
    pub(crate) no_buffers: u64,
}

pub(crate) struct Ring {
    uring: IoUring,
    /// Freed by `Drop` only once nothing is in flight (else leaked).
    pool: ManuallyDrop<BufPool>,
    /// One pool per datagram port of this shard, indexed as the port (its buffers
    /// are sized for the port's datagrams); freed or leaked with `pool`.
    dgram_pools: Vec<ManuallyDrop<BufPool>>,
    /// Requests pushed whose final CQE has not been reaped.
    in_flight: usize,
    /// Where the doorbell's eventfd read lands (8 bytes, stable address).
    bell_buf: Box<u64>,
    /// Sends queued since the last enter.
    sends_queued: usize,
    pub(crate) counters: RingCounters,
}

impl Ring {
    /// Builds the ring and its pool of `receive_buffers` buffers for the calling
    /// thread.
    ///
    /// # Errors
    /// As [`setup::build`], or the buffer ring cannot be registered.
    pub(crate) fn new(receive_buffers: usize) -> io::Result<Ring> {
        let uring = setup::build()?;
        let pool = BufPool::new(&uring, receive_buffers)?;
        Ok(Ring {
            uring,
            pool: ManuallyDrop::new(pool),
            dgram_pools: Vec::new(),
            in_flight: 0,
            bell_buf: Box::new(0),
            sends_queued: 0,
            counters: RingCounters::default(),
        })
    }

    /// Queues an SQE, submitting first if the queue is full.
    ///
    /// # Safety
    /// Every buffer and descriptor the SQE names must stay valid (and a buffer the
    /// kernel reads must stay unchanged) until the request's final CQE is reaped.
    pub(crate) unsafe fn push(&mut self, sqe: &squeue::Entry) {
        loop {
            // SAFETY: the caller keeps what the SQE names alive until its final CQE.
            if unsafe { self.uring.submission().push(sqe) }.is_ok() {
                self.in_flight += 1;
                return;
            }
            self.enter(0, None);
        }
    }

    /// Returns the number of SQEs queued and not yet submitted.
    pub(crate) fn queued(&self) -> usize {
        // `submission_shared` reads the queue without the `&mut` a push needs.
        // SAFETY: no other reference to the submission queue exists while `self` is
        // borrowed, and this one is dropped before returning.
        unsafe { self.uring.submission_shared().len() }
    }

    /// Submits what is queued without waiting, if anything is queued or the kernel
    /// has deferred completions to run.
    pub(crate) fn submit(&mut self) {
        let flagged = {
            // SAFETY: as in `queued`.
            let sq = unsafe { self.uring.submission_shared() };
            sq.taskrun() || sq.cq_overflow()
        };
        let queued = self.queued();
        if queued > 0 || flagged {
            self.enter_raw(queued, 0);
        }
    }

    /// Submits what is queued and sleeps until at least one completion is ready or
    /// `timeout` passes. This is where an idle shard sleeps.
    pub(crate) fn submit_and_wait(&mut self, timeout: Option<Duration>) {
        self.enter(1, timeout);
    }

    fn enter(&mut self, want: usize, timeout: Option<Duration>) {
        self.sends_queued = 0;
        self.counters.enters += 1;
        let queued = self.queued();
        self.counters.submitted += queued as u64;
        let r = match timeout {
            None => self.uring.submitter().submit_and_wait(want),
            Some(t) => {
                let ts = Timespec::new().sec(t.as_secs()).nsec(t.subsec_nanos());
                let args = SubmitArgs::new().timespec(&ts);
                self.uring.submitter().submit_with_args(want, &args)
            }
        };
        if let Err(e) = r {
            match e.raw_os_error() {
                Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY) | Some(libc::EAGAIN) => {}
                _ => tracing::error!("io_uring_enter failed: {e}"),
            }
        }
    }

    fn enter_raw(&mut self, to_submit: usize, want: usize) {
        self.sends_queued = 0;
        self.counters.enters += 1;
        self.counters.submitted += to_submit as u64;
        let flags = 1u32; // IORING_ENTER_GETEVENTS (io_uring.h)
                          // SAFETY: no extra argument is passed (`None`), so no pointer is read; the
                          // SQEs submitted satisfy `push`'s contract.
        let r = unsafe {
            self.uring.submitter().enter::<libc::sigset_t>(
                to_submit as u32,
                want as u32,
                flags,
                None,
            )
        };
        if let Err(e) = r {
            match e.raw_os_error() {
                Some(libc::EINTR) | Some(libc::EBUSY) | Some(libc::EAGAIN) => {}
                _ => tracing::error!("io_uring_enter failed: {e}"),
            }
        }
    }

    /// Takes the next completion, if one is ready.
    pub(crate) fn next(&mut self) -> Option<Completion> {
        let cqe = self.uring.completion().next()?;
        self.counters.completed += 1;
        let c = Completion {
            op: Op::decode(cqe.user_data()),
            result: cqe.result(),
            flags: cqe.flags(),
        };
        if !c.more() {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        if c.buffer().is_some() {
            match c.op {
                Some(Op::DgramRecv(i)) => self.dgram_pools[i].taken(),
                _ => self.pool.taken(),
            }
        }
        if c.result == -libc::ENOBUFS {
            self.counters.no_buffers += 1;
        }
        Some(c)
    }

    /// Notes that a send was queued (see [`sends_queued`](Self::sends_queued)).
    pub(crate) fn send_queued(&mut self) {
        self.sends_queued += 1;
    }

    /// Sends queued since the last enter: a batch forming for the next one.
    pub(crate) fn sends_queued(&self) -> usize {
        self.sends_queued
    }

    /// Tells whether completions are waiting to be taken.
    pub(crate) fn has_completions(&mut self) -> bool {
        !self.uring.completion().is_empty()
    }

    /// Returns buffer `bid` to the kernel.
    pub(crate) fn give_back(&mut self, bid: u16) {
        self.pool.give_back(bid);
    }

    /// Adds a datagram port's pool of `count` buffers of `size` bytes; returns its
    /// index (the port's), which its receives carry in `Op::DgramRecv`.
    ///
    /// # Errors
    /// The allocation or the registration failed.
    pub(crate) fn add_datagram_pool(&mut self, count: usize, size: usize) -> io::Result<usize> {
        let i = self.dgram_pools.len();
        let bgid = u16::try_from(bufs::BGID as usize + 1 + i)
            .map_err(|_| io::Error::other("too many datagram ports"))?;
        let pool = BufPool::with_shape(&self.uring, bgid, count, size)?;
        self.dgram_pools.push(ManuallyDrop::new(pool));
        Ok(i)
    }

    /// Returns datagram pool `i`'s buffer group id and buffer size.
    pub(crate) fn datagram_pool_shape(&self, i: usize) -> (u16, usize) {
        (
            self.dgram_pools[i].bgid(),
            self.dgram_pools[i].buffer_size(),
        )
    }

    /// The address of the first `len` bytes of datagram pool `i`'s buffer `bid`;
    /// valid and unchanged until the buffer is given back, as long as the ring lives.
    pub(crate) fn datagram_bytes(&self, i: usize, bid: u16, len: usize) -> (*const u8, usize) {
        let b = self.dgram_pools[i].bytes(bid, 0, len);
        (b.as_ptr(), b.len())
    }

    /// Returns buffer `bid` to datagram pool `i`.
    pub(crate) fn datagram_give_back(&mut self, i: usize, bid: u16) {
        self.dgram_pools[i].give_back(bid);
    }

    /// Tells whether the pool has buffers on the ring.
    pub(crate) fn buffers_free(&self) -> bool {
        self.pool.free > 0
    }

    /// The address of the first `len` bytes of buffer `bid`. They stay valid and
    /// unchanged until the buffer is given back, as long as the ring lives.
    pub(crate) fn buffer_bytes(&self, bid: u16, len: usize) -> (*const u8, usize) {
        let b = self.pool.bytes(bid, 0, len);
        (b.as_ptr(), b.len())
    }

    /// Arms the read of the doorbell's eventfd `efd` (which must outlive the ring's
    /// use of it: the shard closes it only after the ring is dropped).
    pub(crate) fn arm_doorbell(&mut self, efd: RawFd) {
        let buf: *mut u64 = &mut *self.bell_buf;
        let sqe = opcode::Read::new(Fd(efd), buf.cast(), 8)
            .build()
            .user_data(Op::Doorbell.encode());
        // SAFETY: `bell_buf` is owned by the ring and freed only after `Drop` has
        // reaped every request; `efd` outlives the ring (see above).
        unsafe { self.push(&sqe) };
    }

    /// Queues a cancellation of the request tagged `target`, tagged `tag`.
    pub(crate) fn cancel(&mut self, target: Op, tag: Op) {
        let sqe = opcode::AsyncCancel::new(target.encode())
            .build()
            .user_data(tag.encode());
        // SAFETY: a cancellation names no memory and no descriptor.
        unsafe { self.push(&sqe) };
    }

    /// Queues a cancellation of every request on descriptor `fd`, tagged `tag`.
    pub(crate) fn cancel_fd(&mut self, fd: RawFd, tag: Op) {
        let sqe = opcode::AsyncCancel2::new(CancelBuilder::fd(Fd(fd)).all())
            .build()
            .user_data(tag.encode());
        // SAFETY: the cancellation only matches requests by descriptor number; it
        // reads no memory. The caller keeps `fd` open until its CQE.
        unsafe { self.push(&sqe) };
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // Cancel everything and wait for the last CQE: the buffers must not be freed
        // while the kernel may still write into them.
        let sqe = opcode::AsyncCancel2::new(CancelBuilder::any())
            .build()
            .user_data(Op::CancelAll.encode());
        // SAFETY: a cancellation names no memory.
        unsafe { self.push(&sqe) };
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.in_flight > 0 && Instant::now() < deadline {
            self.enter(1, Some(Duration::from_millis(10)));
            while let Some(c) = self.next() {
                if let Some(b) = c.buffer() {
                    match c.op {
                        Some(Op::DgramRecv(i)) => self.dgram_pools[i].give_back(b),
                        _ => self.pool.give_back(b),
                    }
                }
            }
        }
        if self.in_flight == 0 {
            let _ = self.uring.submitter().unregister_buf_ring(bufs::BGID);
            // SAFETY: nothing is in flight, so the kernel no longer writes into the
            // pool; dropped exactly once.
            unsafe { ManuallyDrop::drop(&mut self.pool) };
            for p in &mut self.dgram_pools {
                let _ = self.uring.submitter().unregister_buf_ring(p.bgid());
                // SAFETY: as for `pool` just above: nothing is in flight, and each
                // datagram pool is dropped exactly once, here.
                unsafe { ManuallyDrop::drop(p) };
            }
        } else {
            tracing::error!(
                "{} io_uring requests still in flight at shard end; leaking the receive buffers",
                self.in_flight
            );
            // Leaking `bell_buf` too: the kernel may still write into it.
            std::mem::forget(std::mem::take(&mut self.bell_buf));
        }
    }
}
