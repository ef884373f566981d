//! A thin, safe wrapper over one epoll instance: the event loop of one loadgen thread.
//!
//! Level-triggered on purpose: a connection that still has bytes after one bounded read is
//! reported again on the next wait, which keeps reading fair across connections without an
//! extra `recv` that would only return `EAGAIN`. Writability is asked for only while a
//! connection has unsent output.
//!
//! Waits use `epoll_pwait2` (nanosecond timeout, Linux 5.11+) so that an open-loop schedule
//! is honoured to the microsecond rather than rounded up to the next millisecond; on older
//! kernels it falls back to `epoll_wait` with the timeout rounded up.
//!
//! Why not mio (issue 13 asked; measured in docs/benchmarks.md, "loadgen on standard
//! crates"): mio 1.x waits with `epoll_wait` and a timeout rounded up to whole
//! milliseconds, which is this file's fallback path, and it only offers edge-triggered
//! readiness, so each wake-up would need a `recv` until `EAGAIN` (two per ping-pong
//! request instead of one) or a list of connections with bytes left to read. The sockets
//! themselves go through socket2 (`socket.rs`).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Interest or readiness in reading.
pub const READABLE: u32 = libc::EPOLLIN as u32;
/// Interest or readiness in writing.
pub const WRITABLE: u32 = libc::EPOLLOUT as u32;
/// The peer hung up or the socket has an error.
pub const HANGUP: u32 = (libc::EPOLLHUP | libc::EPOLLERR | libc::EPOLLRDHUP) as u32;

/// One epoll instance and its event buffer.
pub struct Poller {
    epfd: OwnedFd,
    events: Vec<libc::epoll_event>,
    use_pwait2: bool,
}

/// A ready event: the token given at registration and the readiness bits.
#[derive(Debug, Clone, Copy)]
pub struct Event {
    /// The token registered with the file descriptor.
    pub token: u64,
    /// Readiness bits ([`READABLE`], [`WRITABLE`], [`HANGUP`]).
    pub flags: u32,
}

impl Poller {
    /// Creates an epoll instance able to report `capacity` events per wait.
    ///
    /// # Errors
    /// The `epoll_create1` error.
    pub fn new(capacity: usize) -> io::Result<Self> {
        // SAFETY: epoll_create1 takes no pointers; the result is checked before use.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a freshly created descriptor that nothing else owns.
        let epfd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Poller {
            epfd,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; capacity.max(1)],
            use_pwait2: true,
        })
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, interest: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: interest | libc::EPOLLRDHUP as u32,
            u64: token,
        };
        // SAFETY: `ev` is a valid epoll_event that outlives the call; the kernel copies it.
        let rc = unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), op, fd, &mut ev) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Registers `fd` with the given interest and token.
    ///
    /// # Errors
    /// The `epoll_ctl` error.
    pub fn add(&self, fd: RawFd, interest: u32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, interest, token)
    }

    /// Changes the interest of a registered `fd`.
    ///
    /// # Errors
    /// The `epoll_ctl` error.
    pub fn modify(&self, fd: RawFd, interest: u32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, interest, token)
    }

    /// Removes `fd` (closing it also does; this is for descriptors kept open).
    ///
    /// # Errors
    /// The `epoll_ctl` error.
    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0)
    }

    /// Waits up to `timeout_ns` nanoseconds and returns how many events are ready; read
    /// them with [`Poller::event`].
    ///
    /// An interrupted wait returns zero events.
    ///
    /// # Errors
    /// Any `epoll_pwait2`/`epoll_wait` error other than `EINTR`.
    pub fn wait(&mut self, timeout_ns: u64) -> io::Result<usize> {
        let cap = self.events.len() as libc::c_int;
        let mut n = -1;
        if self.use_pwait2 {
            let ts = libc::timespec {
                tv_sec: (timeout_ns / 1_000_000_000) as libc::time_t,
                tv_nsec: (timeout_ns % 1_000_000_000) as libc::c_long,
            };
            // SAFETY: the events buffer holds `cap` initialised entries and lives across the
            // call; `ts` is a valid timespec; a null sigmask means "do not change it".
            n = unsafe {
                libc::epoll_pwait2(
                    self.epfd.as_raw_fd(),
                    self.events.as_mut_ptr(),
                    cap,
                    &ts,
                    std::ptr::null(),
                )
            };
            if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
                self.use_pwait2 = false;
            }
        }
        if !self.use_pwait2 {
            let ms = timeout_ns.div_ceil(1_000_000).min(i32::MAX as u64) as libc::c_int;
            // SAFETY: as above, the buffer holds `cap` entries and outlives the call.
            n = unsafe {
                libc::epoll_wait(self.epfd.as_raw_fd(), self.events.as_mut_ptr(), cap, ms)
            };
        }
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                return Ok(0);
            }
            return Err(err);
        }
        Ok(n as usize)
    }

    /// Returns the `i`-th event of the last wait.
    #[inline]
    pub fn event(&self, i: usize) -> Event {
        let raw = self.events[i];
        Event {
            token: raw.u64,
            flags: raw.events,
        }
    }
}
