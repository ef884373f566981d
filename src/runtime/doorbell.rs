//! A shard's doorbell: how other threads wake a shard that may be asleep in its
//! ring.
//!
//! ```text
//!  other thread                              the shard's loop, about to sleep
//!  ────────────                              ────────────────────────────────
//!  make work visible (channel push, flag)    sleeping = true
//!  fence(SeqCst)                             fence(SeqCst)
//!  sleeping? ── no ──► done (no syscall)     any work visible? ── yes ──► don't sleep
//!     │ yes: swap it to false                   │ no
//!     ▼                                         ▼
//!  write(eventfd, 1) ───────────────────────► the ring's read of the eventfd completes,
//!                                            io_uring_enter returns
//! ```
//!
//! Both sides fence between their store and their load (Dekker's pattern), so
//! either the ringer sees `sleeping` or the shard sees the work: a wake-up cannot
//! be lost, and a busy shard costs its ringers one fence and one load. The ring
//! always has a read of the eventfd armed, so the one mechanism that wakes a shard
//! for I/O (a completion on its ring) also wakes it for messages, tasks woken from
//! other threads, and stop requests. Timers are the wait's own timeout.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};

/// Wakes one shard from any thread; see the module doc.
#[derive(Debug)]
pub(crate) struct Doorbell {
    efd: OwnedFd,
    sleeping: AtomicBool,
    /// Rings that found the shard asleep and wrote the eventfd.
    wakeups: AtomicU64,
}

impl Doorbell {
    pub(crate) fn new() -> io::Result<Doorbell> {
        // SAFETY: eventfd(2) takes no pointer; a non-negative result is a fresh
        // descriptor that nothing else owns.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Doorbell {
            // SAFETY: `fd` was just returned by eventfd and is owned by no one else.
            efd: unsafe { OwnedFd::from_raw_fd(fd) },
            sleeping: AtomicBool::new(false),
            wakeups: AtomicU64::new(0),
        })
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.efd.as_raw_fd()
    }

    /// Wakes the shard if it may be asleep. Call after making the work visible.
    /// Returns true if it had to write the eventfd.
    pub(crate) fn ring(&self) -> bool {
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::Relaxed) && self.sleeping.swap(false, Ordering::AcqRel) {
            self.wakeups.fetch_add(1, Ordering::Relaxed);
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from `one`, alive across the call, to the
            // eventfd this doorbell owns.
            let n = unsafe { libc::write(self.fd(), (&one as *const u64).cast(), 8) };
            if n != 8 {
                // Only EAGAIN is possible (the counter is at its maximum), and then
                // the eventfd is readable anyway: the shard wakes.
                tracing::trace!("doorbell write: {}", io::Error::last_os_error());
            }
            return true;
        }
        false
    }

    /// The shard is about to sleep: after this, re-check for work and sleep only if
    /// there is none.
    pub(crate) fn prepare_to_sleep(&self) {
        self.sleeping.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// The shard is awake: rings need not write the eventfd.
    pub(crate) fn awake(&self) {
        self.sleeping.store(false, Ordering::Relaxed);
    }

    /// Returns how many rings found the shard asleep.
    pub(crate) fn wakeups(&self) -> u64 {
        self.wakeups.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(bell: &Doorbell) -> u64 {
        let mut v: u64 = 0;
        let fd = bell.fd();
        // SAFETY: non-blocking peek via poll, then an 8-byte read into `v`.
        unsafe {
            let mut p = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            if libc::poll(&mut p, 1, 0) == 1 {
                libc::read(fd, (&mut v as *mut u64).cast(), 8);
            }
        }
        v
    }

    #[test]
    fn awake_shard_costs_no_write() {
        let bell = Doorbell::new().expect("eventfd");
        assert!(!bell.ring());
        assert_eq!(pending(&bell), 0);
    }

    #[test]
    fn sleeping_shard_is_woken_once() {
        let bell = Doorbell::new().expect("eventfd");
        bell.prepare_to_sleep();
        assert!(bell.ring());
        assert!(!bell.ring(), "the first ring already woke it");
        assert_eq!(pending(&bell), 1);
        assert_eq!(bell.wakeups(), 1);
    }

    #[test]
    fn ring_from_another_thread_reaches_a_sleeper() {
        let bell = std::sync::Arc::new(Doorbell::new().expect("eventfd"));
        bell.prepare_to_sleep();
        let b = bell.clone();
        std::thread::spawn(move || b.ring()).join().expect("thread");
        assert_eq!(pending(&bell), 1);
    }
}
