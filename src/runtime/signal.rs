//! SIGINT and SIGTERM as a graceful stop.
//!
//! The signals are blocked in the starting thread before any shard starts, so every
//! thread inherits the mask and none is interrupted; one thread waits for them with
//! `sigwait` and calls [`StopHandle::stop`]. A second signal after the first is
//! ignored while the drain runs (the drain has its own deadline).

use crate::runtime::{spawn_named, StopHandle};

fn stop_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before use and
    // sigaddset only sets bits in the set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        set
    }
}

/// Blocks SIGINT and SIGTERM in the calling thread (and so in every thread it starts
/// afterwards), so that they can be taken by the signal thread.
pub fn block_stop_signals() {
    let set = stop_set();
    // SAFETY: `set` is an initialised sigset_t; a null old-set pointer is allowed.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

pub(crate) fn spawn_signal_thread(stop: StopHandle) {
    spawn_named("weft-signals", move || loop {
        let set = stop_set();
        let mut sig: libc::c_int = 0;
        // SAFETY: `set` is initialised and `sig` is a valid place for the result.
        let rc = unsafe { libc::sigwait(&set, &mut sig) };
        if rc != 0 {
            continue;
        }
        let name = if sig == libc::SIGINT {
            "SIGINT"
        } else {
            "SIGTERM"
        };
        if !stop.is_stopping() {
            tracing::info!("Received {name}, shutting down.");
            stop.stop();
        }
    });
}
