//! `ReconnectingClientFactory`: reconnect with exponential back-off and jitter,
//! with Twisted 26.10's defaults and order of steps.
//!
//! Each failed or lost connection calls `retry`:
//!
//! ```text
//! retries += 1; past max_retries → give up
//! delay = normal(delay, delay × jitter)        1. jitter (a random walk: the jittered
//! call_later(max(delay, 0), connector.connect)  2. schedule   value feeds the next step)
//! delay = min(delay × factor, max_delay)        3. grow
//! ```
//!
//! So the first retry comes after about `initial_delay` (1 s), the next after about
//! `e` s, then `e²` s, … up to an hour. This is the order of Twisted 26.10 (PR
//! #12479); Twisted 25.5 and earlier grew first, so their first retry came after
//! about 2.7 s. As in Twisted, the scheduled delay may exceed `max_delay` by the
//! jitter (#4734), and `reset_delay` must be called by the user after a successful
//! connection, typically in `build_protocol` (#1994).
//!
//! The state lives in a [`Reconnect`] handle (an `Rc`), so the wrapped factory, its
//! protocols and the program can all hold one and call `reset_delay` or
//! `stop_trying`. The delay is scheduled on the shard's [`Reactor`] clock, so tests
//! drive it with a manual clock.
//!
//! # Twisted
//! A negative draw of the normal distribution (possible only with a large
//! `jitter`) would trip `callLater`'s `assert delay >= 0` in Twisted (#8714, open).
//! weft schedules such a retry after 0 s and continues the walk from the delay
//! before the draw, so the back-off can never collapse to zero or go negative.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use crate::address::Address;
use crate::client::connector::WeakConnector;
use crate::client::{ClientFactory, ConnectError, Connector};
use crate::clock::DelayedCall;
use crate::reason::Reason;

/// Seconds before the first retry (Twisted's `initialDelay`).
pub const DEFAULT_INITIAL_DELAY: f64 = 1.0;
/// How much the delay grows after each retry: e (Twisted's `factor`).
pub const DEFAULT_FACTOR: f64 = std::f64::consts::E;
/// The standard deviation of each delay, relative to it (Twisted's `jitter`).
pub const DEFAULT_JITTER: f64 = 0.11962656472;
/// The cap on the delay before jitter, in seconds: one hour (Twisted's `maxDelay`).
pub const DEFAULT_MAX_DELAY: f64 = 3600.0;

/// A deterministic normal-distribution source: SplitMix64 and Box–Muller.
///
/// # Examples
/// ```
/// use weft::client::SeededNormal;
/// let (mut a, mut b) = (SeededNormal::new(7), SeededNormal::new(7));
/// assert_eq!(a.sample(1.0, 0.1), b.sample(1.0, 0.1));
/// ```
#[derive(Debug, Clone)]
pub struct SeededNormal {
    state: u64,
}

impl SeededNormal {
    /// Returns a source that always yields the same sequence for `seed`.
    pub fn new(seed: u64) -> Self {
        SeededNormal { state: seed }
    }

    /// Returns a source seeded from the process's hasher keys and the time.
    pub fn from_entropy() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        SeededNormal::new(h.finish())
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform draw in (0, 1].
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// Draws from the normal distribution with this mean and standard deviation
    /// (Python's `random.normalvariate`).
    pub fn sample(&mut self, mean: f64, std_dev: f64) -> f64 {
        let (u1, u2) = (self.unit(), self.unit());
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        mean + std_dev * z
    }
}

type NormalFn = dyn FnMut(f64, f64) -> f64;

struct State {
    initial_delay: f64,
    max_delay: f64,
    factor: f64,
    jitter: f64,
    max_retries: Option<u32>,
    delay: f64,
    retries: u32,
    continue_trying: bool,
    call: Option<DelayedCall>,
    connector: Option<WeakConnector>,
    normal: Box<NormalFn>,
}

/// The retry state and policy of a [`ReconnectingClientFactory`]; a cheap,
/// clonable, shard-local handle. Builder methods set the policy; the defaults are
/// Twisted's.
///
/// # Examples
/// ```
/// use weft::client::Reconnect;
/// let r = Reconnect::new().initial_delay(0.5).factor(2.0).jitter(0.0).max_retries(Some(3));
/// assert_eq!(r.delay(), 0.5);
/// assert_eq!(r.retries(), 0);
/// ```
#[derive(Clone)]
pub struct Reconnect {
    state: Rc<RefCell<State>>,
}

impl Default for Reconnect {
    fn default() -> Self {
        Reconnect::new()
    }
}

impl fmt::Debug for Reconnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.borrow();
        f.debug_struct("Reconnect")
            .field("delay", &s.delay)
            .field("retries", &s.retries)
            .field("continue_trying", &s.continue_trying)
            .finish()
    }
}

impl Reconnect {
    /// Returns a policy with Twisted's defaults: 1 s initial delay, factor e,
    /// jitter 0.1196, at most 3600 s, unlimited retries, jitter drawn from an
    /// entropy-seeded source.
    pub fn new() -> Self {
        let mut source = SeededNormal::from_entropy();
        Reconnect {
            state: Rc::new(RefCell::new(State {
                initial_delay: DEFAULT_INITIAL_DELAY,
                max_delay: DEFAULT_MAX_DELAY,
                factor: DEFAULT_FACTOR,
                jitter: DEFAULT_JITTER,
                max_retries: None,
                delay: DEFAULT_INITIAL_DELAY,
                retries: 0,
                continue_trying: true,
                call: None,
                connector: None,
                normal: Box::new(move |m, s| source.sample(m, s)),
            })),
        }
    }

    fn set(self, f: impl FnOnce(&mut State)) -> Self {
        f(&mut self.state.borrow_mut());
        self
    }

    /// Sets the first delay, in seconds (and the current delay with it).
    pub fn initial_delay(self, seconds: f64) -> Self {
        self.set(|s| {
            s.initial_delay = seconds;
            s.delay = seconds;
        })
    }

    /// Sets the cap on the delay, in seconds.
    pub fn max_delay(self, seconds: f64) -> Self {
        self.set(|s| s.max_delay = seconds)
    }

    /// Sets the growth factor.
    pub fn factor(self, factor: f64) -> Self {
        self.set(|s| s.factor = factor)
    }

    /// Sets the relative standard deviation of each delay; 0 disables jitter.
    pub fn jitter(self, jitter: f64) -> Self {
        self.set(|s| s.jitter = jitter)
    }

    /// Sets the number of retries after which it gives up (`None`: never).
    pub fn max_retries(self, max: Option<u32>) -> Self {
        self.set(|s| s.max_retries = max)
    }

    /// Draws the jitter from a [`SeededNormal`] with this seed: deterministic.
    pub fn seed(self, seed: u64) -> Self {
        let mut source = SeededNormal::new(seed);
        self.normal_source(move |m, s| source.sample(m, s))
    }

    /// Draws the jitter from `f(mean, std_dev)` (Twisted: `random.normalvariate`).
    pub fn normal_source(self, f: impl FnMut(f64, f64) -> f64 + 'static) -> Self {
        self.set(|s| s.normal = Box::new(f))
    }

    /// Returns the delay, in seconds, the next retry will start from (before jitter).
    pub fn delay(&self) -> f64 {
        self.state.borrow().delay
    }

    /// Returns the retries since the last `reset_delay`.
    pub fn retries(&self) -> u32 {
        self.state.borrow().retries
    }

    /// Tells whether it will retry (false after `stop_trying`).
    pub fn continue_trying(&self) -> bool {
        self.state.borrow().continue_trying
    }

    /// Returns the clock time at which the pending retry will run, if one is pending.
    pub fn pending_retry(&self) -> Option<Duration> {
        self.state
            .borrow()
            .call
            .as_ref()
            .filter(|c| c.active())
            .map(DelayedCall::time)
    }

    /// Restores the initial delay and the retry count, and allows retries again
    /// (Twisted's `resetDelay`). Call it once a connection succeeded. As in
    /// Twisted, a retry already scheduled is forgotten, not cancelled.
    pub fn reset_delay(&self) {
        let mut s = self.state.borrow_mut();
        s.delay = s.initial_delay;
        s.retries = 0;
        s.call = None;
        s.continue_trying = true;
    }

    /// Stops retrying: cancels the pending retry and abandons an attempt under way
    /// (Twisted's `stopTrying`). A connection that is up stays up.
    pub fn stop_trying(&self) {
        let (call, connector) = {
            let mut s = self.state.borrow_mut();
            s.continue_trying = false;
            (s.call.take(), s.connector.clone())
        };
        if let Some(call) = call {
            let _ = call.cancel();
        }
        if let Some(c) = connector.and_then(|w| w.upgrade()) {
            let _ = c.stop_connecting();
        }
    }

    /// Schedules the next attempt on `connector` if still trying (Twisted's
    /// `retry`); returns the delay it chose, in seconds.
    pub fn retry(&self, connector: &Connector) -> Option<f64> {
        let mut s = self.state.borrow_mut();
        s.connector = Some(connector.downgrade());
        if !s.continue_trying {
            tracing::info!("abandoning {connector} on explicit request");
            return None;
        }
        s.retries += 1;
        if s.max_retries.is_some_and(|max| s.retries > max) {
            tracing::info!("abandoning {connector} after {} retries", s.retries - 1);
            return None;
        }
        let before = s.delay;
        if s.jitter != 0.0 {
            let (mean, sd) = (s.delay, s.delay * s.jitter);
            s.delay = (s.normal)(mean, sd);
        }
        if s.delay.is_nan() || s.delay < 0.0 {
            // Twisted #8714: clamp, and keep walking from the undrawn delay.
            s.delay = before;
            tracing::debug!("negative jittered delay clamped to 0");
            return Some(self.schedule(&mut s, connector, 0.0));
        }
        let wait = s.delay;
        Some(self.schedule(&mut s, connector, wait))
    }

    fn schedule(&self, s: &mut State, connector: &Connector, wait: f64) -> f64 {
        tracing::info!("{connector} will retry in {wait:.3} seconds");
        let c = connector.clone();
        let call = connector
            .reactor()
            .call_later(Duration::from_secs_f64(wait), move || {
                if let Err(e) = c.connect() {
                    tracing::debug!("{c}: scheduled retry skipped: {e}");
                }
            });
        s.call = Some(call);
        s.delay = (s.delay * s.factor).min(s.max_delay);
        wait
    }

    /// What a factory calls from `client_connection_failed`: retry if still trying.
    pub fn client_connection_failed(&self, connector: &Connector) {
        if self.continue_trying() {
            self.retry(connector);
        } else {
            self.state.borrow_mut().connector = Some(connector.downgrade());
        }
    }

    /// What a factory calls from `client_connection_lost`: retry if still trying.
    pub fn client_connection_lost(&self, connector: &Connector) {
        self.client_connection_failed(connector);
    }
}

/// A [`ClientFactory`] that reconnects with back-off: Twisted's
/// `ReconnectingClientFactory`, wrapping the factory that builds the protocols.
///
/// The wrapped factory's callbacks run first, so it may call
/// [`Reconnect::stop_trying`] from its own `client_connection_lost` to prevent
/// the retry.
///
/// # Examples
/// ```no_run
/// # use weft::{Address, Protocol, Reactor, Transport};
/// use weft::client::{connect, ClientFactory, Reconnect, ReconnectingClientFactory};
/// # struct Bot;
/// # impl Protocol for Bot { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
/// struct BotFactory {
///     retry: Reconnect,
/// }
/// impl ClientFactory for BotFactory {
///     type Protocol = Bot;
///     fn build_protocol(&mut self, _server: &Address) -> Option<Bot> {
///         self.retry.reset_delay(); // connected: start the back-off afresh
///         Some(Bot)
///     }
/// }
/// # fn demo(reactor: &Reactor) {
/// let retry = Reconnect::new();
/// let factory = ReconnectingClientFactory::with_policy(
///     retry.clone(),
///     BotFactory { retry: retry.clone() },
/// );
/// connect(reactor, "tcp:127.0.0.1:6667".parse().unwrap(), factory);
/// // later, from anywhere on this shard: retry.stop_trying();
/// # }
/// ```
pub struct ReconnectingClientFactory<F> {
    reconnect: Reconnect,
    inner: F,
}

impl<F: ClientFactory> ReconnectingClientFactory<F> {
    /// Wraps `inner` with Twisted's default policy.
    pub fn new(inner: F) -> Self {
        Self::with_policy(Reconnect::new(), inner)
    }

    /// Wraps `inner` with the given policy (a handle the caller may keep).
    pub fn with_policy(reconnect: Reconnect, inner: F) -> Self {
        ReconnectingClientFactory { reconnect, inner }
    }

    /// Returns the retry handle.
    pub fn reconnect(&self) -> &Reconnect {
        &self.reconnect
    }

    /// Returns the wrapped factory.
    pub fn inner(&mut self) -> &mut F {
        &mut self.inner
    }
}

impl<F: ClientFactory> ClientFactory for ReconnectingClientFactory<F> {
    type Protocol = F::Protocol;

    fn build_protocol(&mut self, addr: &Address) -> Option<F::Protocol> {
        self.inner.build_protocol(addr)
    }

    fn started_connecting(&mut self, connector: &Connector) {
        self.inner.started_connecting(connector);
    }

    fn client_connection_failed(&mut self, connector: &Connector, reason: &ConnectError) {
        self.inner.client_connection_failed(connector, reason);
        self.reconnect.client_connection_failed(connector);
    }

    fn client_connection_lost(&mut self, connector: &Connector, reason: &Reason) {
        self.inner.client_connection_lost(connector, reason);
        self.reconnect.client_connection_lost(connector);
    }

    fn start_factory(&mut self) {
        self.inner.start_factory();
    }

    fn stop_factory(&mut self) {
        self.inner.stop_factory();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_normal_has_about_the_right_mean_and_spread() {
        let mut n = SeededNormal::new(1);
        let xs: Vec<f64> = (0..20_000).map(|_| n.sample(10.0, 2.0)).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!((mean - 10.0).abs() < 0.1, "mean {mean}");
        assert!((var.sqrt() - 2.0).abs() < 0.1, "sd {}", var.sqrt());
    }
}
