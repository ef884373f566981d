//! The shard's reactor services a protocol can reach: timers and local tasks.
//!
//! A `Reactor` is what Twisted code gets from the global `reactor`: `call_later`,
//! `seconds` and (standing in for Deferreds) `spawn_local`. There is one per shard;
//! protocols reach it through [`Transport::reactor`](crate::Transport::reactor). In
//! tests it wraps a manual [`Clock`] and a small local task pool (see
//! [`crate::testing`]), so code that schedules timers or spawns tasks is unit-tested
//! without an executor.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::clock::{Clock, DelayedCall};

/// A boxed, shard-local future.
pub type LocalFuture = Pin<Box<dyn Future<Output = ()> + 'static>>;

/// Something that runs shard-local futures: the shard's task queue in the engine,
/// a task pool in tests.
pub(crate) type Spawner = Rc<dyn Fn(LocalFuture)>;

/// A shard's timers and task spawner. Cloning gives another handle to the same one.
#[derive(Clone)]
pub struct Reactor {
    clock: Clock,
    spawner: Spawner,
    shard: usize,
}

impl Reactor {
    pub(crate) fn new(clock: Clock, spawner: Spawner, shard: usize) -> Reactor {
        Reactor {
            clock,
            spawner,
            shard,
        }
    }

    /// Schedules `f` to run `delay` from now (Twisted's `reactor.callLater`).
    pub fn call_later<F: FnOnce() + 'static>(&self, delay: Duration, f: F) -> DelayedCall {
        self.clock.call_later(delay, f)
    }

    /// Returns the shard clock's time in seconds (Twisted's `reactor.seconds()`).
    pub fn seconds(&self) -> f64 {
        self.clock.seconds()
    }

    /// Returns the shard's clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Runs `fut` on this shard, concurrently with the connections (Twisted: the
    /// work behind a Deferred). The future may hold `Rc`s and transport handles.
    pub fn spawn_local<F: Future<Output = ()> + 'static>(&self, fut: F) {
        (self.spawner)(Box::pin(fut));
    }

    /// Returns a future that completes `delay` from now on this shard's clock
    /// (Twisted's `deferLater` without a result). Dropping it cancels the timer.
    pub fn sleep(&self, delay: Duration) -> Sleep {
        let state = Rc::new(SleepState::default());
        let s = Rc::clone(&state);
        let call = self.clock.call_later(delay, move || {
            s.fired.set(true);
            if let Some(w) = s.waker.take() {
                w.wake();
            }
        });
        Sleep { state, call }
    }

    /// Returns this shard's index.
    pub fn shard(&self) -> usize {
        self.shard
    }
}

#[derive(Default)]
struct SleepState {
    fired: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

/// The future [`Reactor::sleep`] returns.
pub struct Sleep {
    state: Rc<SleepState>,
    call: DelayedCall,
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.state.fired.get() {
            Poll::Ready(())
        } else {
            self.state.waker.set(Some(cx.waker().clone()));
            Poll::Pending
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        let _ = self.call.cancel();
    }
}
