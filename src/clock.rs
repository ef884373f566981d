//! Timers: `call_later` and `DelayedCall`, on a real or a manual clock.
//!
//! One `Clock` per shard. The queue is a binary heap ordered by (deadline, insertion
//! order), so calls due at the same instant run first-in, first-out (Twisted's real
//! reactor does not promise that; its test `Clock` does, and weft keeps that order
//! everywhere). Moving a call later is lazy: the heap entry stays and is re-queued
//! when it surfaces; moving it earlier queues a new entry and retires the old one by
//! generation number.
//!
//! The real clock is monotonic (`Instant`), where Twisted uses wall-clock
//! `time.time()`: a clock jump does not move weft's timers.
//!
//! # Examples
//! ```
//! use std::{cell::Cell, rc::Rc, time::Duration};
//! let clock = weft::Clock::manual();
//! let fired = Rc::new(Cell::new(false));
//! let f = fired.clone();
//! let call = clock.call_later(Duration::from_secs(5), move || f.set(true));
//! clock.advance(Duration::from_secs(4));
//! assert!(call.active() && !fired.get());
//! clock.advance(Duration::from_secs(1));
//! assert!(fired.get() && !call.active());
//! ```

use std::cell::{Cell, RefCell};
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// What went wrong acting on a `DelayedCall` (Twisted's `AlreadyCalled` and
/// `AlreadyCancelled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DelayedCallError {
    /// The call has already run.
    AlreadyCalled,
    /// The call was cancelled.
    AlreadyCancelled,
}

impl fmt::Display for DelayedCallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DelayedCallError::AlreadyCalled => f.write_str("the delayed call has already run"),
            DelayedCallError::AlreadyCancelled => f.write_str("the delayed call was cancelled"),
        }
    }
}

impl std::error::Error for DelayedCallError {}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Status {
    Pending,
    Called,
    Cancelled,
}

struct CallState {
    status: Cell<Status>,
    at: Cell<Duration>,
    generation: Cell<u32>,
    f: RefCell<Option<Box<dyn FnOnce()>>>,
}

struct Entry {
    at: Duration,
    seq: u64,
    generation: u32,
    call: Rc<CallState>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    // Reversed: BinaryHeap is a max-heap and we want the earliest first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

struct ClockInner {
    epoch: Instant,
    manual: Option<Cell<Duration>>,
    heap: RefCell<BinaryHeap<Entry>>,
    seq: Cell<u64>,
    pending: Cell<usize>,
}

/// A shard's timer queue and time source (Twisted's `IReactorTime`; the manual one
/// is Twisted's `task.Clock`). Cloning gives another handle to the same clock.
#[derive(Clone)]
pub struct Clock {
    inner: Rc<ClockInner>,
}

impl Clock {
    fn with(manual: Option<Cell<Duration>>) -> Clock {
        Clock {
            inner: Rc::new(ClockInner {
                epoch: Instant::now(),
                manual,
                heap: RefCell::new(BinaryHeap::new()),
                seq: Cell::new(0),
                pending: Cell::new(0),
            }),
        }
    }

    /// Creates a clock that follows real (monotonic) time; the runtime drives it.
    pub fn real() -> Clock {
        Clock::with(None)
    }

    /// Creates a manual clock starting at 0 that moves only with [`advance`](Self::advance).
    pub fn manual() -> Clock {
        Clock::with(Some(Cell::new(Duration::ZERO)))
    }

    /// Returns the time since the clock's start.
    pub fn now(&self) -> Duration {
        match &self.inner.manual {
            Some(t) => t.get(),
            None => self.inner.epoch.elapsed(),
        }
    }

    /// Returns the time since the clock's start in seconds (Twisted's `seconds()`).
    pub fn seconds(&self) -> f64 {
        self.now().as_secs_f64()
    }

    /// Schedules `f` to run `delay` from now (Twisted's `callLater`).
    pub fn call_later<F: FnOnce() + 'static>(&self, delay: Duration, f: F) -> DelayedCall {
        let at = self.now() + delay;
        let call = Rc::new(CallState {
            status: Cell::new(Status::Pending),
            at: Cell::new(at),
            generation: Cell::new(0),
            f: RefCell::new(Some(Box::new(f))),
        });
        self.inner.pending.set(self.inner.pending.get() + 1);
        self.push(at, &call);
        DelayedCall {
            clock: self.clone(),
            call,
        }
    }

    fn push(&self, at: Duration, call: &Rc<CallState>) {
        let seq = self.inner.seq.get();
        self.inner.seq.set(seq + 1);
        let mut heap = self.inner.heap.borrow_mut();
        heap.push(Entry {
            at,
            seq,
            generation: call.generation.get(),
            call: Rc::clone(call),
        });
    }

    /// Returns the number of pending (neither called nor cancelled) calls.
    pub fn pending_calls(&self) -> usize {
        self.inner.pending.get()
    }

    /// Returns the deadline of the earliest pending call, if any.
    pub fn next_deadline(&self) -> Option<Duration> {
        let mut heap = self.inner.heap.borrow_mut();
        while let Some(top) = heap.peek() {
            let c = &top.call;
            if c.status.get() != Status::Pending || c.generation.get() != top.generation {
                heap.pop();
                continue;
            }
            // A call moved later surfaces at its old time and is re-queued then.
            return Some(top.at);
        }
        None
    }

    /// Runs every call due at `now`, in (deadline, insertion) order, including calls
    /// scheduled by those that ran if they are due too. Returns how many ran.
    pub fn run_due(&self) -> usize {
        self.run_due_with(&mut |f| f())
    }

    /// As [`run_due`](Self::run_due), but a call that panics is reported to
    /// `on_panic` and the calls after it still run (the engine's use: Twisted logs
    /// an exception raised by a DelayedCall and the reactor goes on).
    pub(crate) fn run_due_guarded(&self, on_panic: &mut dyn FnMut(String)) -> usize {
        self.run_due_with(&mut |f| {
            if let Err(msg) = crate::runtime::guarded(f) {
                on_panic(msg);
            }
        })
    }

    fn run_due_with(&self, run: &mut dyn FnMut(Box<dyn FnOnce()>)) -> usize {
        let now = self.now();
        let mut ran = 0;
        loop {
            let entry = {
                let mut heap = self.inner.heap.borrow_mut();
                match heap.peek() {
                    Some(top) if top.at <= now => heap.pop().expect("peeked"),
                    _ => break,
                }
            };
            let c = &entry.call;
            if c.status.get() != Status::Pending || c.generation.get() != entry.generation {
                continue;
            }
            if c.at.get() > entry.at {
                // Moved later since it was queued: queue it again at its new time.
                let at = c.at.get();
                self.push(at, c);
                continue;
            }
            c.status.set(Status::Called);
            self.inner.pending.set(self.inner.pending.get() - 1);
            let f = c.f.borrow_mut().take();
            if let Some(f) = f {
                run(f);
            }
            ran += 1;
        }
        ran
    }

    /// Moves a manual clock forward by `by` and runs what became due (Twisted's
    /// `Clock.advance`).
    ///
    /// # Panics
    /// Panics on a real clock.
    pub fn advance(&self, by: Duration) {
        let t = self
            .inner
            .manual
            .as_ref()
            .expect("advance() needs a manual clock");
        t.set(t.get() + by);
        self.run_due();
    }

    /// Advances a manual clock in steps (Twisted's `Clock.pump`).
    pub fn pump(&self, steps: &[Duration]) {
        for s in steps {
            self.advance(*s);
        }
    }
}

/// A scheduled call (Twisted's `IDelayedCall`).
pub struct DelayedCall {
    clock: Clock,
    call: Rc<CallState>,
}

impl DelayedCall {
    fn check(&self) -> Result<(), DelayedCallError> {
        match self.call.status.get() {
            Status::Pending => Ok(()),
            Status::Called => Err(DelayedCallError::AlreadyCalled),
            Status::Cancelled => Err(DelayedCallError::AlreadyCancelled),
        }
    }

    /// Cancels the call.
    ///
    /// # Errors
    /// [`DelayedCallError`] if it already ran or was already cancelled.
    pub fn cancel(&self) -> Result<(), DelayedCallError> {
        self.check()?;
        self.call.status.set(Status::Cancelled);
        self.call.f.borrow_mut().take();
        let inner = &self.clock.inner;
        inner.pending.set(inner.pending.get() - 1);
        Ok(())
    }

    /// Reschedules the call to run `from_now` after the present moment.
    ///
    /// # Errors
    /// [`DelayedCallError`] if it already ran or was cancelled.
    pub fn reset(&self, from_now: Duration) -> Result<(), DelayedCallError> {
        self.check()?;
        self.move_to(self.clock.now() + from_now);
        Ok(())
    }

    /// Pushes the call later by `by`, relative to its current deadline.
    ///
    /// # Errors
    /// [`DelayedCallError`] if it already ran or was cancelled.
    pub fn delay(&self, by: Duration) -> Result<(), DelayedCallError> {
        self.check()?;
        self.move_to(self.call.at.get() + by);
        Ok(())
    }

    fn move_to(&self, at: Duration) {
        let old = self.call.at.get();
        self.call.at.set(at);
        if at < old {
            // Earlier: retire the queued entry and queue a new one.
            self.call
                .generation
                .set(self.call.generation.get().wrapping_add(1));
            self.clock.push(at, &self.call);
        }
    }

    /// Tells whether the call is still pending (neither run nor cancelled).
    pub fn active(&self) -> bool {
        self.call.status.get() == Status::Pending
    }

    /// Returns the clock time at which the call will run.
    pub fn time(&self) -> Duration {
        self.call.at.get()
    }
}

impl fmt::Debug for DelayedCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DelayedCall")
            .field("at", &self.call.at.get())
            .field("status", &self.call.status.get())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Log = Rc<RefCell<Vec<u32>>>;

    fn recorder() -> (Log, impl Fn(u32) -> Box<dyn FnOnce()>) {
        let log = Rc::new(RefCell::new(Vec::new()));
        let l = log.clone();
        (log, move |n| {
            let l = l.clone();
            Box::new(move || l.borrow_mut().push(n))
        })
    }

    #[test]
    fn calls_due_at_the_same_time_run_in_insertion_order() {
        let c = Clock::manual();
        let (log, mk) = recorder();
        for n in 0..5 {
            let f = mk(n);
            c.call_later(Duration::from_secs(1), f);
        }
        c.advance(Duration::from_secs(1));
        assert_eq!(*log.borrow(), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn cancel_twice_is_already_cancelled_and_cancel_after_run_is_already_called() {
        let c = Clock::manual();
        let d = c.call_later(Duration::from_secs(1), || {});
        d.cancel().unwrap();
        assert_eq!(d.cancel(), Err(DelayedCallError::AlreadyCancelled));
        assert_eq!(
            d.reset(Duration::ZERO),
            Err(DelayedCallError::AlreadyCancelled)
        );
        let e = c.call_later(Duration::from_secs(1), || {});
        c.advance(Duration::from_secs(1));
        assert_eq!(e.cancel(), Err(DelayedCallError::AlreadyCalled));
        assert_eq!(
            e.delay(Duration::ZERO),
            Err(DelayedCallError::AlreadyCalled)
        );
        assert_eq!(c.pending_calls(), 0);
    }

    #[test]
    fn reset_earlier_and_later_and_delay_move_the_deadline() {
        let c = Clock::manual();
        let (log, mk) = recorder();
        let a = c.call_later(Duration::from_secs(10), mk(1));
        let b = c.call_later(Duration::from_secs(2), mk(2));
        a.reset(Duration::from_secs(1)).unwrap(); // earlier: now at 1
        b.delay(Duration::from_secs(3)).unwrap(); // later: now at 5
        assert_eq!(a.time(), Duration::from_secs(1));
        assert_eq!(b.time(), Duration::from_secs(5));
        c.advance(Duration::from_secs(1));
        assert_eq!(*log.borrow(), vec![1]);
        c.advance(Duration::from_secs(3));
        assert_eq!(*log.borrow(), vec![1]);
        c.advance(Duration::from_secs(1));
        assert_eq!(*log.borrow(), vec![1, 2]);
        // The stale entry of `a` at 10 s must not run it again.
        c.advance(Duration::from_secs(10));
        assert_eq!(*log.borrow(), vec![1, 2]);
    }

    #[test]
    fn a_call_scheduled_by_a_running_call_runs_in_the_same_advance_if_due() {
        let c = Clock::manual();
        let log = Rc::new(RefCell::new(Vec::new()));
        let (c2, l2) = (c.clone(), log.clone());
        c.call_later(Duration::from_secs(1), move || {
            l2.borrow_mut().push("outer");
            let l3 = l2.clone();
            c2.call_later(Duration::ZERO, move || l3.borrow_mut().push("inner"));
        });
        c.advance(Duration::from_secs(2));
        assert_eq!(*log.borrow(), vec!["outer", "inner"]);
    }

    #[test]
    fn next_deadline_skips_cancelled_calls() {
        let c = Clock::manual();
        let a = c.call_later(Duration::from_secs(1), || {});
        c.call_later(Duration::from_secs(3), || {});
        a.cancel().unwrap();
        assert_eq!(c.next_deadline(), Some(Duration::from_secs(3)));
    }
}
