//! Drives a shard's [`Clock`] with glommio timers.
//!
//! One task per shard sleeps until the earliest deadline; the clock wakes it when a
//! call is scheduled earlier than that. Due calls run in (deadline, insertion) order.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::Poll;

use glommio::timer::Timer;

use crate::clock::Clock;

/// Runs the clock's due calls forever (the task is dropped at shard shutdown).
pub(crate) async fn drive(clock: Clock) {
    let mut timer: Option<Timer> = None;
    poll_fn(|cx| loop {
        clock.set_waker(cx.waker());
        clock.run_due();
        let Some(at) = clock.next_deadline() else {
            timer = None;
            return Poll::<()>::Pending;
        };
        let now = clock.now();
        if at <= now {
            continue;
        }
        let t = timer.insert(Timer::new(at - now));
        if Pin::new(t).poll(cx).is_pending() {
            return Poll::Pending;
        }
    })
    .await
}
