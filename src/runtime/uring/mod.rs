//! The native data path: a weft-owned io_uring ring per shard, beside glommio's.
//!
//! ```text
//!  accept (glommio) ─► adopt(fd) ─► slot in this shard's Ring ─► NativeSocket (a Socket)
//!
//!  Ring (SINGLE_ISSUER | DEFER_TASKRUN | TASKRUN_FLAG, eventfd registered)
//!   ├─ one multishot recv per connection, into the shard's provided-buffer ring
//!   ├─ sends: one in flight per connection, from the connection's own send buffer
//!   └─ driver task (glommio): enter only when there is something to submit or the
//!      kernel flagged deferred work ─► drain CQEs ─► wake connection tasks
//!        busy: wake itself and yield, so the connections run and queue their sends
//!        idle: park on the eventfd, read through glommio's own ring
//! ```
//!
//! The connection driver (`connection.rs`) does not know: `NativeSocket` is one more
//! `Socket`. Per message, nothing allocates and no system call is made by the
//! connection task: a read copies from a received buffer and gives it back, a write
//! copies into the connection's send buffer and queues an SQE; the driver submits
//! every queued SQE of a turn with one `io_uring_enter`.
//!
//! Memory safety across in-flight requests: every SQE that names memory or a
//! descriptor is counted in its slot's `ops`; a slot (its send buffers, its
//! descriptor) is released only when `ops` is back to zero, that is after the CQE of
//! every request it submitted. Closing cancels the slot's receive (and, for an abort,
//! its send) and closes the descriptor once they have completed.

mod bufs;
mod socket;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use io_uring::types::{CancelBuilder, Fd};
use io_uring::{cqueue, opcode, squeue, IoUring};

use bufs::BufPool;
pub(crate) use socket::NativeSocket;

use crate::runtime::connection::Close;

/// Received buffers one connection may hold before its receive is paused (cancelled
/// until it reads them): a connection that stops reading cannot take the pool.
const MAX_HELD: usize = 16;
/// Bytes a write may hand over at once when no send of the connection is in flight:
/// as much as a plain `send` into an empty socket could take (Linux's default largest
/// TCP send buffer, `tcp_wmem`'s maximum). Smaller, and a burst written in one turn
/// (a chat line fanned out to many clients, say) would stay in the connection's
/// output buffer and count against its cap although the peer is reading; the glommio
/// path, whose sends go straight to the kernel, has no such limit.
const TX_IDLE_CAP: usize = 4 * 1024 * 1024;
/// Bytes one connection may have accepted for sending but not yet sent while a send
/// is in flight.
const TX_CAP: usize = 256 * 1024;
/// A drained send buffer larger than this is freed rather than kept.
const TX_KEEP: usize = 64 * 1024;
/// How long the shard's end waits for orderly closes still sending.
const LINGER_AT_EXIT: Duration = Duration::from_secs(1);

/// The watchdog's period: the longest a wakeup the eventfd did not deliver can
/// delay a connection (such stalls were seen here before the forced enter, cause not
/// found; none since, but a stall that never ends is too high a price to bet on it).
const PARK_MAX: Duration = Duration::from_millis(10);

const OP_RECV: u64 = 1;
const OP_SEND: u64 = 2;
const OP_CANCEL: u64 = 3;

fn user_data(slot: usize, op: u64) -> u64 {
    ((slot as u64) << 8) | op
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Recv {
    /// No receive armed.
    Idle,
    /// A multishot receive is armed.
    Armed,
    /// Its cancellation was requested; its final CQE is awaited.
    Cancelling,
}

/// One received buffer a connection has not fully read yet.
struct Rx {
    bid: u16,
    len: u32,
    off: u32,
}

/// One connection's state, kept by the ring while any request of it is in flight.
struct Slot {
    fd: RawFd,
    /// The socket handle still exists (the connection has not closed it).
    open: bool,
    /// Requests submitted (or queued) whose CQE has not been seen yet.
    ops: u32,
    recv: Recv,
    /// The receive was cancelled because the connection held too many buffers.
    throttled: bool,
    rx: VecDeque<Rx>,
    eof: bool,
    rx_err: Option<i32>,
    /// The buffer of the send in flight (from `tx_off`); untouched while `tx_busy`.
    tx: Vec<u8>,
    tx_off: usize,
    tx_busy: bool,
    /// Bytes accepted while a send was in flight; sent when it completes.
    tx_next: Vec<u8>,
    tx_err: Option<i32>,
    /// A writer is waiting for room.
    tx_blocked: bool,
    /// The last send came back short: the kernel's buffer is full, so what the slot
    /// still holds is output the kernel has not taken and counts against the cap
    /// (`NativeSocket::unsent`), as it would in the output buffer on glommio's path.
    tx_refused: bool,
    /// Orderly close requested: shutdown(2) once the send buffers are drained.
    shutdown_after_tx: bool,
    waker: Option<Waker>,
}

impl Slot {
    fn new(fd: RawFd) -> Slot {
        Slot {
            fd,
            open: true,
            ops: 0,
            recv: Recv::Idle,
            throttled: false,
            rx: VecDeque::new(),
            eof: false,
            rx_err: None,
            tx: Vec::new(),
            tx_off: 0,
            tx_busy: false,
            tx_next: Vec::new(),
            tx_err: None,
            tx_blocked: false,
            tx_refused: false,
            shutdown_after_tx: false,
            waker: None,
        }
    }

    fn wake(&self) {
        if let Some(w) = &self.waker {
            w.wake_by_ref();
        }
    }
}

struct Inner {
    ring: IoUring,
    /// Freed by `Drop` only once nothing is in flight (else leaked).
    pool: ManuallyDrop<BufPool>,
    slots: Vec<Option<Slot>>,
    free_slots: Vec<usize>,
    /// A completion dispatched since the last `turn` woke a connection task.
    woke: bool,
    /// Slots whose multishot receive ended without a final status: armed again at
    /// the end of the driver's turn (when buffers are available).
    rearm: Vec<usize>,
    /// Occupied slots.
    live: usize,
}

/// A shard's native ring; shared by the driver task and the sockets (`Rc`).
pub(crate) struct Ring {
    inner: RefCell<Inner>,
    /// The driver's waker: woken when a connection queued an SQE.
    driver: Cell<Option<Waker>>,
    /// SQEs were queued since the last submit.
    dirty: Cell<bool>,
    efd: RawFd,
    driver_task: RefCell<Option<glommio::Task<()>>>,
    /// Rings the eventfd every `PARK_MAX`; stopped when the ring is dropped.
    watchdog: Option<Watchdog>,
    /// The driver's current poll came after a watchdog tick (statistics only).
    woken_by_watchdog: Cell<bool>,
}

/// A thread that writes to (a duplicate of) the ring's eventfd every `PARK_MAX`, so a
/// parked driver turns at least that often even if the kernel's signal was missed.
///
/// A thread rather than a glommio timer: any armed glommio timer makes every round of
/// glommio's scheduler allocate (its timer map is split on each round), and the busy
/// driver goes round often; the thread costs one `write` per tick and nothing per
/// message.
///
/// It also watches the driver: a driver polls at least once per tick (on a tick's
/// eventfd write if nothing else), so a tick that finds the previous one still
/// untaken means the driver did not run for a whole period. `STALL_TICKS` such ticks
/// in a row and the thread interrupts the shard thread with `KICK_SIGNAL`, which
/// ends whatever sleep glommio is in. Under CPU contention glommio 0.9 was seen to
/// sleep for good in `link_rings_and_sleep` with the driver runnable or its eventfd
/// read armed and the eventfd written (the eventfd count rising, no read in the
/// kernel's poll list, see the notes of 2026-11-23); attaching a tracer, which
/// interrupts the sleep, set it going again.
struct Watchdog {
    stop: Arc<AtomicBool>,
    /// Set by the thread at each tick; taken by each driver poll, one swap per
    /// batch of completions, not per message.
    ticked: Arc<AtomicBool>,
    /// Times the thread interrupted the shard thread's sleep.
    kicks: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Ticks in a row without a driver poll after which the shard thread is interrupted
/// (100 ms: long enough that a loaded machine's scheduling rarely trips it, short
/// enough that a lost wake-up costs a blip, not a hung connection).
const STALL_TICKS: u32 = 10;

/// The signal that interrupts a stalled shard thread's sleep: SIGURG, ignored by
/// default and otherwise only raised for out-of-band TCP data to a process that asked
/// for it (F_SETOWN). Its handler does nothing; the point is the EINTR.
const KICK_SIGNAL: libc::c_int = libc::SIGURG;

extern "C" fn on_kick(_: libc::c_int) {}

/// Installs the do-nothing handler for `KICK_SIGNAL` once per process, unless the
/// program already handles that signal; returns whether the watchdog may send it.
fn kick_handler_installed() -> bool {
    static INSTALLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *INSTALLED.get_or_init(|| {
        // SAFETY: `old` and `new` are plain sigaction structs, zeroed then filled;
        // the first call only reads the current disposition, the second installs a
        // handler that touches nothing (async-signal-safe), without SA_RESTART so
        // that a sleeping system call returns EINTR.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(KICK_SIGNAL, std::ptr::null(), &mut old) != 0
                || old.sa_sigaction != libc::SIG_DFL
            {
                tracing::debug!("SIGURG is handled by the program: no stall interrupts");
                return false;
            }
            let mut new: libc::sigaction = std::mem::zeroed();
            new.sa_sigaction = on_kick as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut new.sa_mask);
            libc::sigaction(KICK_SIGNAL, &new, std::ptr::null_mut()) == 0
        }
    })
}

impl Watchdog {
    /// Ends the thread's ticks (and interrupts): the driver is about to go.
    fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = &self.thread {
            t.thread().unpark();
        }
    }

    fn start(efd: RawFd) -> io::Result<Watchdog> {
        // SAFETY: `efd` is a valid eventfd owned by the caller; the duplicate made
        // here is owned by the thread, which closes it when it ends.
        let fd = unsafe { libc::fcntl(efd, libc::F_DUPFD_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let stop = Arc::new(AtomicBool::new(false));
        let ticked = Arc::new(AtomicBool::new(false));
        let kicks = Arc::new(AtomicU64::new(0));
        let (st, tk, ks) = (Arc::clone(&stop), Arc::clone(&ticked), Arc::clone(&kicks));
        let kick = kick_handler_installed();
        // SAFETY: pthread_self has no preconditions; this runs on the shard thread.
        let shard_thread = unsafe { libc::pthread_self() };
        let spawned = std::thread::Builder::new()
            .name("weft-ring-watchdog".into())
            .spawn(move || {
                let one = 1u64.to_ne_bytes();
                let mut stalled = 0u32;
                while !st.load(Ordering::Acquire) {
                    std::thread::park_timeout(PARK_MAX);
                    if st.load(Ordering::Acquire) {
                        break;
                    }
                    if tk.swap(true, Ordering::Relaxed) {
                        stalled += 1;
                    } else {
                        stalled = 0;
                    }
                    if kick && stalled == STALL_TICKS {
                        stalled = 0;
                        ks.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(
                            "native ring: its driver has not run for {} ms; interrupting the shard thread",
                            u128::from(STALL_TICKS) * PARK_MAX.as_millis()
                        );
                        // SAFETY: the shard thread outlives this thread (the ring,
                        // dropped on it, joins this thread first), so the pthread_t
                        // names a live thread; the signal's handler does nothing.
                        unsafe { libc::pthread_kill(shard_thread, KICK_SIGNAL) };
                    }
                    // SAFETY: `fd` is this thread's own open eventfd; `one` is 8
                    // readable bytes, the size an eventfd write takes.
                    unsafe { libc::write(fd, one.as_ptr().cast(), one.len()) };
                }
                // SAFETY: `fd` was duplicated for this thread alone; closed once.
                unsafe { libc::close(fd) };
            });
        match spawned {
            Ok(t) => Ok(Watchdog {
                stop,
                ticked,
                kicks,
                thread: Some(t),
            }),
            Err(e) => {
                // SAFETY: the thread never started, so `fd` is still ours alone.
                unsafe { libc::close(fd) };
                Err(e)
            }
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

thread_local! {
    /// Watchdog ticks that found work the eventfd had not announced (statistics).
    static TIMED_OUT: Cell<u64> = const { Cell::new(0) };
    /// Turns where only the forced enter before parking found work (statistics).
    static MISSED: Cell<u64> = const { Cell::new(0) };
    /// This shard's ring: created at the first native connection, ended by `shutdown`.
    static RING: RefCell<Option<Rc<Ring>>> = const { RefCell::new(None) };
    /// The ring could not be set up on this thread (logged once): use glommio's path.
    static UNAVAILABLE: Cell<bool> = const { Cell::new(false) };
}

/// Takes over an accepted glommio stream: its connection runs on this shard's native
/// ring. `Err` gives the stream back when the ring cannot be set up here (the reason
/// is logged once per shard), so the caller serves it on glommio's path.
pub(crate) fn adopt(
    stream: glommio::net::TcpStream,
) -> Result<NativeSocket, glommio::net::TcpStream> {
    let Some(ring) = current() else {
        return Err(stream);
    };
    // glommio's stream has no into_raw_fd: keep a duplicate and let the stream close
    // its own descriptor (two system calls per accept, none per message).
    // SAFETY: the descriptor belongs to `stream`, alive across the call.
    let fd = unsafe { libc::fcntl(stream.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
    if fd < 0 {
        return Err(stream);
    }
    drop(stream);
    Ok(NativeSocket::new(ring, fd))
}

/// This thread's ring, set up (with its driver task) on first use.
fn current() -> Option<Rc<Ring>> {
    if UNAVAILABLE.with(Cell::get) {
        return None;
    }
    if let Some(r) = RING.with(|r| r.borrow().clone()) {
        return Some(r);
    }
    match Ring::new() {
        Ok(ring) => {
            let ring = Rc::new(ring);
            let task = glommio::spawn_local(drive(Rc::clone(&ring)));
            *ring.driver_task.borrow_mut() = Some(task);
            RING.with(|r| *r.borrow_mut() = Some(Rc::clone(&ring)));
            Some(ring)
        }
        Err(e) => {
            UNAVAILABLE.with(|u| u.set(true));
            tracing::warn!("native io_uring data path unavailable ({e}); using glommio's streams");
            None
        }
    }
}

/// Ends this shard's ring, after its connections: waits (briefly) for orderly closes
/// still sending, stops the driver, and tears the ring down.
pub(crate) async fn shutdown() {
    let Some(ring) = RING.with(|r| r.borrow_mut().take()) else {
        return;
    };
    let deadline = Instant::now() + LINGER_AT_EXIT;
    while ring.inner.borrow().live > 0 && Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
    tracing::debug!(
        "native ring: {} turns found completions only by a forced enter, {} of them on a watchdog tick; {} stalls interrupted",
        MISSED.with(Cell::get),
        TIMED_OUT.with(Cell::get),
        ring.watchdog
            .as_ref()
            .map_or(0, |w| w.kicks.load(Ordering::Relaxed))
    );
    if let Some(w) = &ring.watchdog {
        w.stop();
    }
    let task = ring.driver_task.borrow_mut().take();
    if let Some(t) = task {
        t.cancel().await;
    }
    // The last `Rc`: `Inner`'s drop cancels whatever is still in flight and waits for it.
}

impl Ring {
    fn new() -> io::Result<Ring> {
        let ring = build_ring()?;
        let pool = BufPool::new(&ring)?;
        // A blocking eventfd: glommio's read of it waits (io_uring polls it) instead
        // of failing with EAGAIN.
        // SAFETY: plain system call, no pointers.
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if efd < 0 {
            return Err(io::Error::last_os_error());
        }
        let watchdog = ring
            .submitter()
            .register_eventfd(efd)
            .and_then(|()| Watchdog::start(efd));
        let watchdog = match watchdog {
            Ok(w) => w,
            Err(e) => {
                // SAFETY: `efd` was just created here and is owned by no one else
                // (the watchdog, had it started, holds its own duplicate).
                unsafe { libc::close(efd) };
                return Err(e);
            }
        };
        Ok(Ring {
            inner: RefCell::new(Inner {
                ring,
                pool: ManuallyDrop::new(pool),
                slots: Vec::new(),
                free_slots: Vec::new(),
                rearm: Vec::new(),
                live: 0,
                woke: false,
            }),
            driver: Cell::new(None),
            dirty: Cell::new(false),
            efd,
            driver_task: RefCell::new(None),
            watchdog: Some(watchdog),
            woken_by_watchdog: Cell::new(false),
        })
    }

    /// Registers a socket descriptor and arms its receive; returns its slot.
    fn open(&self, fd: RawFd) -> usize {
        let mut inner = self.inner.borrow_mut();
        let idx = match inner.free_slots.pop() {
            Some(i) => i,
            None => {
                inner.slots.push(None);
                inner.slots.len() - 1
            }
        };
        inner.slots[idx] = Some(Slot::new(fd));
        inner.live += 1;
        inner.arm_recv(idx);
        drop(inner);
        self.kick();
        idx
    }

    /// Tells the driver SQEs are queued.
    fn kick(&self) {
        if !self.dirty.replace(true) {
            if let Some(w) = self.driver.take() {
                w.wake_by_ref();
                self.driver.set(Some(w));
            }
        }
    }

    /// One turn: submit what is queued, run deferred completions, dispatch CQEs.
    ///
    /// Without `force` it enters only when SQEs are queued or the kernel set
    /// IORING_SQ_TASKRUN. That flag alone is not enough to park on: measured here
    /// (6.18), deferred work was left behind without it, and with it unset nothing
    /// signals the eventfd again (it is signalled only when the deferred list goes
    /// from empty to non-empty), so a connection stalled for good. Hence the driver
    /// parks only after an enter with GETEVENTS that found nothing to wake: a forced
    /// one, or one this turn made anyway to submit (see `Turn::settled`).
    fn turn(&self, force: bool) -> Turn {
        self.dirty.set(false);
        let mut inner = self.inner.borrow_mut();
        let entered = inner.enter(force);
        inner.woke = false;
        let reaped = inner.reap();
        if force && reaped {
            MISSED.with(|m| m.set(m.get() + 1));
            if self.woken_by_watchdog.get() {
                TIMED_OUT.with(|t| t.set(t.get() + 1));
            }
        }
        inner.rearm_starved();
        let resubmitted = !inner.ring.submission().is_empty();
        if resubmitted {
            inner.enter(false);
        }
        Turn {
            woke: inner.woke,
            reaped,
            settled: entered && !inner.woke && !resubmitted,
        }
    }
}

/// What one `Ring::turn` did.
struct Turn {
    /// A completion woke a connection task: let it run, then turn again.
    woke: bool,
    /// Completions were dispatched.
    reaped: bool,
    /// The turn entered the ring with GETEVENTS (which runs the deferred work, as a
    /// forced enter would), woke nobody and left nothing submitted after its reap:
    /// the driver may park without a forced enter.
    settled: bool,
}

/// The kernel's (major, minor) version, from uname(2); `None` if it cannot be read.
fn kernel_version() -> Option<(u32, u32)> {
    // SAFETY: `utsname` is plain old data; uname fills it and NUL-terminates `release`.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable `utsname`.
    if unsafe { libc::uname(&mut u) } != 0 {
        return None;
    }
    // SAFETY: `release` was NUL-terminated by the kernel within its bounds.
    let release = unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) }
        .to_str()
        .ok()?;
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn build_ring() -> io::Result<IoUring> {
    // Multishot receive (IORING_RECV_MULTISHOT) arrived in 6.0 and cannot be probed
    // for: on an older kernel every receive would fail, so refuse here and let the
    // shard serve its connections on glommio's streams.
    if kernel_version().is_some_and(|v| v < (6, 0)) {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "multishot receive needs Linux 6.0 or later",
        ));
    }
    let mut b = IoUring::builder();
    b.setup_cqsize(8192)
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_taskrun_flag()
        .setup_submit_all();
    match b.build(1024) {
        Ok(r) => Ok(r),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            // Older kernels (< 6.1): no DEFER_TASKRUN. COOP_TASKRUN keeps completions
            // from interrupting the shard; the eventfd still wakes the driver.
            let mut b = IoUring::builder();
            b.setup_cqsize(8192)
                .setup_coop_taskrun()
                .setup_taskrun_flag();
            b.build(1024)
        }
        Err(e) => Err(e),
    }
}

impl Inner {
    /// Queues an SQE, submitting first if the queue is full.
    fn push(&mut self, sqe: &squeue::Entry) {
        loop {
            // SAFETY: every SQE pushed here names either no memory, or memory owned
            // by a slot whose `ops` counts this request: the slot (and the buffer)
            // is kept until the request's CQE is reaped (see `maybe_free`).
            let pushed = unsafe { self.ring.submission().push(sqe) };
            if pushed.is_ok() {
                return;
            }
            if let Err(e) = self.ring.submit() {
                if e.raw_os_error() != Some(libc::EBUSY) && e.raw_os_error() != Some(libc::EINTR) {
                    tracing::error!("io_uring submit failed: {e}");
                }
            }
        }
    }

    /// Enters the ring (GETEVENTS, never blocking) if there is something to submit
    /// or the kernel flagged deferred work, or always with `force`. Returns true if
    /// it entered.
    fn enter(&mut self, force: bool) -> bool {
        let (queued, flagged) = {
            let sq = self.ring.submission();
            (sq.len(), sq.taskrun() || sq.cq_overflow())
        };
        if queued == 0 && !flagged && !force {
            return false;
        }
        let flags = 1u32; // IORING_ENTER_GETEVENTS (io_uring.h)
                          // SAFETY: no extra argument is passed (`None`), so no pointer is read;
                          // the SQEs submitted satisfy `push`'s invariant.
        let r = unsafe {
            self.ring
                .submitter()
                .enter::<libc::sigset_t>(queued as u32, 0, flags, None)
        };
        if let Err(e) = r {
            match e.raw_os_error() {
                Some(libc::EINTR) | Some(libc::EBUSY) | Some(libc::EAGAIN) => {}
                _ => tracing::error!("io_uring_enter failed: {e}"),
            }
        }
        true
    }

    /// Dispatches every completion; returns true if there was any.
    fn reap(&mut self) -> bool {
        let mut any = false;
        loop {
            let cqe = {
                let mut cq = self.ring.completion();
                match cq.next() {
                    Some(c) => c,
                    None => break,
                }
            };
            any = true;
            let ud = cqe.user_data();
            let idx = (ud >> 8) as usize;
            match ud & 0xff {
                OP_RECV => self.on_recv(idx, cqe.result(), cqe.flags()),
                OP_SEND => self.on_send(idx, cqe.result()),
                _ => {
                    if let Some(s) = self.slots.get_mut(idx).and_then(Option::as_mut) {
                        s.ops -= 1;
                    }
                }
            }
            self.maybe_free(idx);
        }
        any
    }

    fn on_recv(&mut self, idx: usize, res: i32, flags: u32) {
        let bid = cqueue::buffer_select(flags);
        if bid.is_some() {
            self.pool.taken();
        }
        let Some(s) = self.slots.get_mut(idx).and_then(Option::as_mut) else {
            if let Some(b) = bid {
                self.pool.give_back(b);
            }
            return;
        };
        match bid {
            Some(b) if res > 0 && s.open => s.rx.push_back(Rx {
                bid: b,
                len: res as u32,
                off: 0,
            }),
            Some(b) => self.pool.give_back(b),
            None => {}
        }
        let ended = !cqueue::more(flags);
        if ended {
            s.ops -= 1;
            let was = s.recv;
            s.recv = Recv::Idle;
            match res {
                0 => s.eof = true,
                r if r > 0 => {
                    if s.open && was == Recv::Armed {
                        self.rearm.push(idx);
                    }
                }
                r if r == -libc::ENOBUFS => {
                    if s.open {
                        self.rearm.push(idx);
                    }
                }
                r if r == -libc::ECANCELED => {
                    // Throttled, and the connection read everything meanwhile.
                    if s.open && s.throttled && s.rx.is_empty() {
                        self.rearm.push(idx);
                    }
                }
                r => s.rx_err = Some(-r),
            }
        } else if s.open && s.recv == Recv::Armed && s.rx.len() >= MAX_HELD {
            // The connection is not reading (paused, or slow): stop receiving until
            // it has read what it holds.
            s.recv = Recv::Cancelling;
            s.throttled = true;
            s.ops += 1;
            let sqe = opcode::AsyncCancel::new(user_data(idx, OP_RECV))
                .build()
                .user_data(user_data(idx, OP_CANCEL));
            self.push(&sqe);
        }
        if let Some(s) = self.slots[idx].as_ref() {
            s.wake();
            self.woke = true;
        }
    }

    fn on_send(&mut self, idx: usize, res: i32) {
        let Some(s) = self.slots.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        s.ops -= 1;
        s.tx_busy = false;
        if res < 0 {
            if res != -libc::ECANCELED && s.open {
                s.tx_err = Some(-res);
            }
            s.tx.clear();
            s.tx_next.clear();
            s.tx_off = 0;
            s.wake();
            self.woke = true;
            return;
        }
        s.tx_off += res as usize;
        let refused = s.tx_off < s.tx.len();
        if refused != s.tx_refused {
            // What counts against the connection's cap changed: let it look.
            s.tx_refused = refused;
            s.wake();
            self.woke = true;
        }
        if s.tx_off >= s.tx.len() {
            s.tx.clear();
            s.tx_off = 0;
            if s.tx.capacity() > TX_KEEP {
                s.tx = Vec::new();
            }
            std::mem::swap(&mut s.tx, &mut s.tx_next);
        }
        if !s.tx.is_empty() && (s.open || s.shutdown_after_tx) {
            self.submit_send(idx);
        } else if s.tx.is_empty() && s.shutdown_after_tx {
            s.shutdown_after_tx = false;
            // SAFETY: the slot still owns `fd` (it is closed only in `maybe_free`).
            unsafe { libc::shutdown(s.fd, libc::SHUT_RDWR) };
        }
        let s = self.slots[idx].as_mut().expect("slot checked above");
        if s.tx_blocked {
            s.tx_blocked = false;
            s.wake();
            self.woke = true;
        }
    }

    /// Queues a send of the slot's `tx` from `tx_off`.
    fn submit_send(&mut self, idx: usize) {
        let s = self.slots[idx].as_mut().expect("an occupied slot");
        debug_assert!(!s.tx_busy && s.tx_off < s.tx.len());
        let rest = &s.tx[s.tx_off..];
        let sqe = opcode::Send::new(Fd(s.fd), rest.as_ptr(), rest.len() as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(user_data(idx, OP_SEND));
        s.tx_busy = true;
        s.ops += 1;
        // The SQE points into `s.tx`: it is neither touched nor dropped while
        // `tx_busy` (new bytes go to `tx_next`), and the slot outlives the request.
        self.push(&sqe);
    }

    fn arm_recv(&mut self, idx: usize) {
        let s = self.slots[idx].as_mut().expect("an occupied slot");
        if s.recv != Recv::Idle || s.eof || s.rx_err.is_some() || !s.open {
            return;
        }
        s.recv = Recv::Armed;
        s.throttled = false;
        s.ops += 1;
        let sqe = opcode::RecvMulti::new(Fd(s.fd), bufs::BGID)
            .build()
            .user_data(user_data(idx, OP_RECV));
        self.push(&sqe);
    }

    fn rearm_starved(&mut self) {
        if self.rearm.is_empty() || self.pool.free == 0 {
            return;
        }
        let list = std::mem::take(&mut self.rearm);
        for idx in &list {
            if self.slots.get(*idx).is_some_and(Option::is_some) {
                self.arm_recv(*idx);
            }
        }
        self.rearm = list;
        self.rearm.clear();
    }

    /// The socket handle is gone: cancel its requests and close as `how` says.
    fn close(&mut self, idx: usize, how: Close) {
        let Some(s) = self.slots.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        s.open = false;
        s.waker = None;
        for rx in std::mem::take(&mut s.rx) {
            self.pool.give_back(rx.bid);
        }
        let s = self.slots[idx].as_mut().expect("checked above");
        let drain =
            how == Close::Orderly && s.tx_err.is_none() && (s.tx_busy || !s.tx_next.is_empty());
        match how {
            Close::Reset => {
                let linger = libc::linger {
                    l_onoff: 1,
                    l_linger: 0,
                };
                // SAFETY: the slot owns `fd` until `maybe_free`; `linger` is a valid
                // SO_LINGER value that lives across the call, its size passed exactly.
                unsafe {
                    libc::setsockopt(
                        s.fd,
                        libc::SOL_SOCKET,
                        libc::SO_LINGER,
                        (&linger as *const libc::linger).cast(),
                        std::mem::size_of::<libc::linger>() as libc::socklen_t,
                    )
                };
            }
            Close::Orderly if !drain => {
                // SAFETY: the slot owns `fd` until `maybe_free`.
                unsafe { libc::shutdown(s.fd, libc::SHUT_RDWR) };
            }
            _ => {}
        }
        if drain {
            // Flush, then shutdown(2): the sends go on without the connection.
            s.shutdown_after_tx = true;
            if s.recv == Recv::Armed {
                s.recv = Recv::Cancelling;
                s.ops += 1;
                let sqe = opcode::AsyncCancel::new(user_data(idx, OP_RECV))
                    .build()
                    .user_data(user_data(idx, OP_CANCEL));
                self.push(&sqe);
            }
        } else {
            s.tx_next = Vec::new();
            if s.ops > 0 {
                // Cancel everything on the descriptor: the receive and any send.
                s.ops += 1;
                let sqe = opcode::AsyncCancel2::new(CancelBuilder::fd(Fd(s.fd)).all())
                    .build()
                    .user_data(user_data(idx, OP_CANCEL));
                self.push(&sqe);
            }
        }
        self.maybe_free(idx);
    }

    /// Releases a closed slot once nothing of it is in flight: closes its descriptor.
    fn maybe_free(&mut self, idx: usize) {
        let Some(s) = self.slots.get(idx).and_then(Option::as_ref) else {
            return;
        };
        if s.open || s.ops > 0 || s.shutdown_after_tx {
            return;
        }
        let s = self.slots[idx].take().expect("checked above");
        for rx in s.rx {
            self.pool.give_back(rx.bid);
        }
        // SAFETY: the slot owned `fd` and no request of it is in flight or queued
        // (`ops == 0`), so nothing refers to the descriptor any more.
        unsafe { libc::close(s.fd) };
        self.free_slots.push(idx);
        self.live -= 1;
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Close what is left, cancel every request, and wait for their CQEs: the
        // buffers must not be freed while the kernel may still use them.
        for idx in 0..self.slots.len() {
            if let Some(s) = self.slots[idx].as_mut() {
                s.open = false;
                s.shutdown_after_tx = false;
            }
            if self.slots[idx].is_some() {
                self.close(idx, Close::Plain);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.live > 0 && Instant::now() < deadline {
            let ts = io_uring::types::Timespec::new().nsec(10_000_000);
            let args = io_uring::types::SubmitArgs::new().timespec(&ts);
            let _ = self.ring.submitter().submit_with_args(1, &args);
            self.reap();
        }
        if self.live == 0 {
            let _ = self.ring.submitter().unregister_buf_ring(bufs::BGID);
            // SAFETY: no request is in flight (every slot was freed after its last
            // CQE), so the kernel no longer writes into the pool; dropped once.
            unsafe { ManuallyDrop::drop(&mut self.pool) };
        } else {
            tracing::error!(
                "{} native connections still had requests in flight at shutdown; leaking their buffers",
                self.live
            );
            // Leaking is the only sound choice: the kernel may still use them.
            std::mem::forget(std::mem::take(&mut self.slots));
        }
    }
}

/// The shard's driver task: see the module doc.
async fn drive(ring: Rc<Ring>) {
    // SAFETY: `ring.efd` is a valid eventfd this ring owns; the call creates a
    // duplicate, owned by `EventFd` below.
    let dup = unsafe { libc::fcntl(ring.efd, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        tracing::error!(
            "native ring: cannot duplicate its eventfd: {}",
            io::Error::last_os_error()
        );
        return;
    }
    let efd = Rc::new(EventFd {
        // SAFETY: `dup` is a fresh descriptor nothing else owns; `EventFd` keeps
        // glommio from closing it (its asynchronous close may never run once the
        // executor ends) and closes it itself.
        file: ManuallyDrop::new(unsafe { glommio::io::BufferedFile::from_raw_fd(dup) }),
        fd: dup,
    });
    let mut park: Option<Pin<Box<dyn Future<Output = ()>>>> = None;
    poll_fn(|cx: &mut Context<'_>| loop {
        match ring.driver.take() {
            Some(w) if w.will_wake(cx.waker()) => ring.driver.set(Some(w)),
            _ => ring.driver.set(Some(cx.waker().clone())),
        }
        // The cheap turn while busy; a forced one before parking unless the cheap
        // one already entered and settled (see `turn`).
        let ticked = ring
            .watchdog
            .as_ref()
            .is_some_and(|w| w.ticked.swap(false, Ordering::Relaxed));
        ring.woken_by_watchdog.set(ticked);
        let t = ring.turn(false);
        let busy = t.woke
            || (!t.settled && {
                let f = ring.turn(true);
                f.woke || f.reaped
            });
        if busy {
            // Let the connections just woken run (and queue their sends), then
            // come back: this is the busy loop, with no park and no syscall of
            // glommio's in between.
            cx.waker().wake_by_ref();
            return Poll::<()>::Pending;
        }
        let p = park.get_or_insert_with(|| {
            let f = Rc::clone(&efd);
            Box::pin(async move {
                if let Err(e) = f.file.read_at(0, 8).await {
                    tracing::debug!("native ring: eventfd read failed: {e}");
                    glommio::timer::sleep(Duration::from_millis(1)).await;
                }
            })
        });
        match p.as_mut().poll(cx) {
            Poll::Ready(()) => park = None,
            Poll::Pending => return Poll::Pending,
        }
    })
    .await;
}

/// The driver's copy of the eventfd, read through glommio.
struct EventFd {
    file: ManuallyDrop<glommio::io::BufferedFile>,
    fd: RawFd,
}

impl Drop for EventFd {
    fn drop(&mut self) {
        // The last read (if any) was dropped with the driver: glommio cancels it
        // and its in-flight request holds its own reference to the file.
        // SAFETY: `fd` is the descriptor `file` wraps, never closed by glommio
        // (`file` is never dropped), so it is closed exactly once, here.
        unsafe { libc::close(self.fd) };
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // The watchdog thread first: it stops before the eventfd goes.
        drop(self.watchdog.take());
        // SAFETY: the eventfd is owned by this ring (the driver's copy is a dup).
        unsafe { libc::close(self.efd) };
    }
}
