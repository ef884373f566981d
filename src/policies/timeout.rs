//! An idle timeout per connection: Twisted's `TimeoutMixin`.
//!
//! Resetting is the common operation (every chunk of data), so it only records the
//! time; the one timer checks at its deadline whether the connection was active
//! since, and re-arms itself for the rest of the period if so. There is therefore
//! at most one pending timer per connection and no timer work per message.
//!
//! ```text
//! set_timeout(Some(p)) ──► armed ──(deadline, idle < p)──► armed again for p - idle
//!                            │
//!                            ├──(deadline, idle >= p)──► on_timeout: lose or abort
//!                            └──set_timeout(None) / cancel_timeout / drop ──► idle
//! ```
//!
//! # Twisted
//! `timeoutConnection` is a method the protocol overrides; here the timer cannot
//! call back into the protocol (the engine owns it), so the action is chosen up front
//! with [`OnTimeout`] and the protocol sees the usual `connection_lost`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use crate::clock::{Clock, DelayedCall};
use crate::transport::{Transport, TransportHandle};

/// What the timeout does to the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnTimeout {
    /// `lose_connection`: flush what is buffered, then close (Twisted's default).
    #[default]
    Lose,
    /// `abort_connection`: close at once (for servers facing hostile peers).
    Abort,
}

struct State {
    period: Cell<Option<f64>>,
    last: Cell<f64>,
    call: RefCell<Option<DelayedCall>>,
    clock: Clock,
    handle: TransportHandle,
    on_timeout: OnTimeout,
    fired: Box<dyn Fn()>,
}

/// A connection's idle timer (Twisted's `TimeoutMixin`): nothing starts by itself;
/// call [`set_timeout`](Self::set_timeout), then [`reset_timeout`](Self::reset_timeout)
/// on activity. Dropping it cancels the timer, so a protocol that owns one needs no
/// `setTimeout(None)` in `connection_lost`.
pub struct IdleTimeout {
    state: Rc<State>,
}

impl IdleTimeout {
    /// A timer for the connection of `t`, doing `on_timeout` when it fires; `fired`
    /// runs first (to count or log the timeout).
    pub fn new(t: &Transport, on_timeout: OnTimeout, fired: impl Fn() + 'static) -> Self {
        let clock = t.reactor().clock().clone();
        IdleTimeout {
            state: Rc::new(State {
                period: Cell::new(None),
                last: Cell::new(clock.seconds()),
                call: RefCell::new(None),
                clock,
                handle: t.handle(),
                on_timeout,
                fired: Box::new(fired),
            }),
        }
    }

    /// Sets the period (`None` cancels) and restarts it from now; returns the
    /// previous period (Twisted's `setTimeout`).
    pub fn set_timeout(&mut self, period: Option<Duration>) -> Option<Duration> {
        let previous = self.state.period.replace(period.map(|p| p.as_secs_f64()));
        self.cancel_call();
        if let Some(p) = period {
            self.state.last.set(self.state.clock.seconds());
            arm(&self.state, p);
        }
        previous.map(Duration::from_secs_f64)
    }

    /// Records activity: the period starts again from now (Twisted's `resetTimeout`).
    /// Does nothing if no timeout is set.
    pub fn reset_timeout(&mut self) {
        if self.state.period.get().is_some() {
            self.state.last.set(self.state.clock.seconds());
        }
    }

    /// Cancels the timeout (Twisted's `cancelTimeout`).
    pub fn cancel_timeout(&mut self) {
        self.set_timeout(None);
    }

    fn cancel_call(&self) {
        if let Some(call) = self.state.call.borrow_mut().take() {
            let _ = call.cancel();
        }
    }
}

impl Drop for IdleTimeout {
    fn drop(&mut self) {
        self.cancel_call();
    }
}

fn arm(state: &Rc<State>, delay: Duration) {
    let weak = Rc::downgrade(state);
    let call = state.clock.call_later(delay, move || {
        let Some(state) = weak.upgrade() else { return };
        let Some(period) = state.period.get() else {
            return;
        };
        let idle = state.clock.seconds() - state.last.get();
        if idle + 1e-6 < period {
            arm(&state, Duration::from_secs_f64(period - idle));
            return;
        }
        state.period.set(None);
        (state.fired)();
        match state.on_timeout {
            OnTimeout::Lose => state.handle.lose_connection(),
            OnTimeout::Abort => state.handle.abort_connection(),
        }
    });
    *state.call.borrow_mut() = Some(call);
}
