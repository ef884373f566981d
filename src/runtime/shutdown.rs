//! A shard's graceful shutdown, run as one of its tasks.
//!
//! ```text
//!  stop requested ─► stop listening (shutdown(2), unlink, cancel accepts)
//!   ─► quiesce the mesh (flush barrier, bounded by the drain timeout)
//!   ─► server_stopping on every connection (by default a lose_connection: each
//!      drains, then Shutdown { drained: true })
//!   ─► wait up to the drain timeout ─► abort the rest (Shutdown { drained: false })
//!   ─► stop_factory for each factory ─► wait (≤ 1 s) for the ring to let go of the
//!      last sockets ─► the loop ends
//! ```

use std::future::{poll_fn, Future};
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use crate::runtime::shard::Shard;

/// How long the end waits for closed sockets' last requests.
const LINGER_AT_EXIT: Duration = Duration::from_secs(1);

impl Shard {
    /// Starts the shutdown sequence (once).
    pub(crate) fn begin_shutdown(self: &Rc<Self>) {
        if self.stopping.replace(true) {
            return;
        }
        self.stop_listening();
        let s = Rc::clone(self);
        self.tasks
            .spawn(Box::pin(async move { s.shutdown().await }));
    }

    async fn shutdown(self: Rc<Self>) {
        self.quiesce().await;
        tracing::debug!(shard = self.index, open = self.live.get(), "shutting down");
        self.shutdown_connections();
        let deadline = Instant::now() + self.config.drain_timeout;
        if !self.wait(|s| s.live.get() == 0, Some(deadline)).await {
            let n = self.abort_connections();
            tracing::warn!(
                shard = self.index,
                "{n} connections did not drain within {:?}; aborting them",
                self.config.drain_timeout
            );
            self.wait(|s| s.live.get() == 0, None).await;
        }
        for stop in self.stop_factories.borrow_mut().drain(..) {
            stop();
        }
        let linger = Instant::now() + LINGER_AT_EXIT;
        self.wait(|s| s.conns.borrow().is_empty(), Some(linger))
            .await;
        self.finished.set(true);
    }

    /// Waits until `done` holds (re-checked whenever a connection ends or a slot
    /// is released) or the deadline passes; returns whether it holds.
    async fn wait(&self, done: impl Fn(&Shard) -> bool, deadline: Option<Instant>) -> bool {
        let mut timer = deadline.map(|d| {
            Box::pin(
                self.reactor
                    .sleep(d.saturating_duration_since(Instant::now())),
            )
        });
        poll_fn(|cx| {
            if done(self) {
                return Poll::Ready(true);
            }
            self.drained.set(Some(cx.waker().clone()));
            if let Some(t) = timer.as_mut() {
                if t.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(done(self));
                }
            }
            Poll::Pending
        })
        .await
    }

    /// Runs every quiesce hook concurrently, each bounded by the drain timeout.
    async fn quiesce(&self) {
        let hooks: Vec<_> = self.quiesce_hooks.borrow_mut().drain(..).collect();
        if hooks.is_empty() {
            return;
        }
        let deadline = Instant::now() + self.config.drain_timeout;
        let mut futs: Vec<_> = hooks.into_iter().map(|h| Some(h(deadline))).collect();
        poll_fn(|cx| {
            for slot in futs.iter_mut() {
                if let Some(f) = slot {
                    if f.as_mut().poll(cx).is_ready() {
                        *slot = None;
                    }
                }
            }
            if futs.iter().all(Option::is_none) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }
}
