//! Stopping a server from any thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::runtime::doorbell::Doorbell;

struct StopInner {
    stopping: AtomicBool,
    bells: Vec<Arc<Doorbell>>,
}

/// Stops a server gracefully; usable from any thread, clonable.
#[derive(Clone)]
pub struct StopHandle {
    inner: Arc<StopInner>,
}

impl StopHandle {
    pub(crate) fn new(bells: Vec<Arc<Doorbell>>) -> StopHandle {
        StopHandle {
            inner: Arc::new(StopInner {
                stopping: AtomicBool::new(false),
                bells,
            }),
        }
    }

    /// Starts a graceful shutdown: every shard stops accepting, calls
    /// `lose_connection` on its connections, waits for them to drain (up to the
    /// drain timeout, then aborts the rest), runs `stop_factory` and ends.
    /// Idempotent.
    pub fn stop(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        for b in &self.inner.bells {
            b.ring();
        }
    }

    /// Tells whether a stop was requested.
    pub fn is_stopping(&self) -> bool {
        self.inner.stopping.load(Ordering::SeqCst)
    }
}
