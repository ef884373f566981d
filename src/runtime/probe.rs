//! Checking, before any shard starts, that this kernel and process can run weft's
//! ring.

use std::thread;

use crate::runtime::ring::setup;
use crate::runtime::ServerError;

/// Fails with a clear message when this kernel or process cannot run weft's ring:
/// Linux 6.1 or later with io_uring enabled, and a memlock limit that allows it.
///
/// # Errors
/// [`ServerError::Runtime`] naming the cause (kernel too old, io_uring disabled by
/// sysctl or seccomp, memlock limit).
pub fn check_io_uring() -> Result<(), ServerError> {
    // Probe on a throw-away thread: tearing a ring down queues kernel task work on
    // the thread that made it, which interrupts that thread's blocking socket calls
    // that have a timeout set (EINTR). The caller's thread is left alone.
    thread::spawn(|| setup::build().map(drop))
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the io_uring probe panicked")))
        .map_err(|e| ServerError::Runtime(e.to_string()))
}
