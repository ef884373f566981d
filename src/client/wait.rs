//! Small shard-local futures the client code waits on: a signal, a one-shot cell
//! and a sleep on the reactor's clock.
//!
//! They are `Rc`-based (a client never leaves its shard) and know nothing of the
//! executor, so the same code runs on a shard and under the test task pool.

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use crate::reactor::Reactor;

/// A flag that, once raised, stays raised and wakes whoever waits on it.
#[derive(Default)]
pub(crate) struct Signal {
    raised: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl Signal {
    pub(crate) fn raise(&self) {
        self.raised.set(true);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    pub(crate) fn is_raised(&self) -> bool {
        self.raised.get()
    }

    pub(crate) fn wait(self: &Rc<Self>) -> impl Future<Output = ()> + 'static {
        let s = Rc::clone(self);
        poll_fn(move |cx| {
            if s.raised.get() {
                Poll::Ready(())
            } else {
                s.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
    }
}

/// A value handed from one side to the other once; `None` if the sender went away.
pub(crate) struct Oneshot<T> {
    value: RefCell<Option<T>>,
    done: Signal,
}

impl<T> Oneshot<T> {
    pub(crate) fn new() -> Rc<Self> {
        Rc::new(Oneshot {
            value: RefCell::new(None),
            done: Signal::default(),
        })
    }

    pub(crate) fn send(&self, v: T) {
        *self.value.borrow_mut() = Some(v);
        self.done.raise();
    }

    /// Marks the cell as finished without a value (the sender is gone).
    pub(crate) fn close(&self) {
        self.done.raise();
    }

    pub(crate) async fn recv(self: Rc<Self>) -> Option<T> {
        poll_fn(|cx| {
            if self.done.is_raised() {
                Poll::Ready(self.value.borrow_mut().take())
            } else {
                self.done.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }
}

/// Completes `d` from now on the reactor's clock (manual in tests). Dropping it
/// cancels the timer.
pub(crate) async fn sleep(reactor: &Reactor, d: Duration) {
    reactor.sleep(d).await
}
