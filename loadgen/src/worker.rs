//! What every event-loop thread shares: its slice of the run, the start barrier, the
//! timeline, and the once-a-second report to the coordinator.
//!
//! ```text
//!   spawn ─► pin ─► connect its connections ─► ready barrier ─► (coordinator fixes t=0)
//!         ─► go barrier ─► warm-up ─► measured phase ─► drain ─► ThreadResult
//! ```
//!
//! Each thread always reaches both barriers, even when none of its connections could be
//! opened (it then counts the errors and idles until the end), so a run never hangs.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicUsize};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Barrier, OnceLock};
use std::time::Instant;

use crate::clock::{Clock, Nanos};
use crate::config::RunConfig;
use crate::cpu::thread_cpu_ns;
use crate::stats::{IntervalReport, Recorder, ThreadResult};

/// One second, the live-output and interval-log period.
pub const INTERVAL_NS: Nanos = 1_000_000_000;

/// When each phase of the run ends, in nanoseconds since the start.
#[derive(Debug, Clone, Copy)]
pub struct Timeline {
    /// End of the warm-up: requests intended from here on are measured.
    pub warmup_end: Nanos,
    /// End of the measured phase: no request is issued from here on.
    pub measure_end: Nanos,
    /// Last moment to wait for outstanding responses.
    pub drain_end: Nanos,
}

impl Timeline {
    /// Returns the timeline of `cfg`.
    pub fn of(cfg: &RunConfig) -> Self {
        let warmup_end = cfg.warmup.as_nanos() as Nanos;
        let measure_end = warmup_end + cfg.measure_limit().as_nanos() as Nanos;
        Timeline {
            warmup_end,
            measure_end,
            drain_end: measure_end + cfg.drain.as_nanos() as Nanos,
        }
    }
}

/// State the threads of one run share (used by the chat workload to drain together).
#[derive(Debug, Default)]
pub struct Shared {
    /// Deliveries expected and not yet seen, all threads together.
    pub outstanding: AtomicI64,
    /// Threads still issuing requests.
    pub issuing: AtomicUsize,
}

/// One thread's share of a run and its links to the coordinator.
pub struct ThreadCtx {
    /// Thread number, from 0.
    pub index: usize,
    /// The whole run's configuration.
    pub cfg: Arc<RunConfig>,
    /// The resolved target (the first one, when several were given).
    pub addr: SocketAddr,
    /// Every resolved target, in the order given (chat spreads its clients over them).
    pub addrs: Arc<[SocketAddr]>,
    /// Connections this thread drives.
    pub connections: usize,
    /// Global id of this thread's first connection (chat names).
    pub first_connection: usize,
    /// This thread's open-loop rate, if any.
    pub rate: Option<f64>,
    /// Offset of this thread's first open-loop tick, so threads do not fire in lockstep.
    pub phase: Nanos,
    /// Measured requests this thread issues at most (`--requests`).
    pub quota: Option<u64>,
    /// The core to pin to.
    pub cpu: Option<usize>,
    /// Where interval reports go.
    pub reports: Sender<IntervalReport>,
    /// Reached once connected.
    pub ready: Arc<Barrier>,
    /// Reached to start, after the coordinator set `start`.
    pub go: Arc<Barrier>,
    /// The common time origin, set between the two barriers.
    pub start: Arc<OnceLock<Instant>>,
    /// What the threads share.
    pub shared: Arc<Shared>,
}

impl ThreadCtx {
    /// Prepares the calling thread: a 1 ns timer slack (the default 50 us would make every
    /// open-loop wake-up late by up to that much, and show as the generator's own lag), and
    /// pinning to its core, if one was given.
    ///
    /// Returns an error message when the core does not exist or pinning failed.
    pub fn pin(&self) -> Result<(), String> {
        // SAFETY: PR_SET_TIMERSLACK takes one integer argument and no pointers.
        unsafe {
            libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
        }
        let Some(cpu) = self.cpu else { return Ok(()) };
        let ids = core_affinity::get_core_ids().unwrap_or_default();
        let id = ids
            .into_iter()
            .find(|c| c.id == cpu)
            .ok_or_else(|| format!("--cpus: core {cpu} is not available to this process"))?;
        if core_affinity::set_for_current(id) {
            Ok(())
        } else {
            Err(format!("could not pin thread {} to core {cpu}", self.index))
        }
    }

    /// A thread that cannot start: records `error`, still meets the others at both
    /// barriers (so the run is not held up), and returns what it counted: the error.
    pub fn give_up(&self, mut rec: Recorder, error: &str) -> ThreadResult {
        rec.error(error);
        self.start_together();
        ThreadResult {
            metrics: rec.total,
            counts: rec.counts,
            cpu_ns: 0,
            end: 0,
        }
    }

    /// Waits at both barriers and returns the run's clock.
    pub fn start_together(&self) -> Clock {
        self.ready.wait();
        self.go.wait();
        // The coordinator sets the start before it reaches the go barrier.
        Clock::new(*self.start.get().unwrap_or(&Instant::now()))
    }
}

/// Sends the thread's interval reports on schedule and measures its CPU time.
pub struct Ticker {
    next_report: Nanos,
    index: u64,
    cpu_start: u64,
}

impl Ticker {
    /// Starts ticking at time zero.
    pub fn new() -> Self {
        Ticker {
            next_report: INTERVAL_NS,
            index: 0,
            cpu_start: thread_cpu_ns(),
        }
    }

    /// Returns the time of the next report.
    #[inline]
    pub fn next(&self) -> Nanos {
        self.next_report
    }

    /// Sends every report due at `now`.
    #[inline]
    pub fn tick(&mut self, now: Nanos, rec: &mut Recorder, ctx: &ThreadCtx) {
        while now >= self.next_report {
            self.send(self.next_report, rec, ctx);
        }
    }

    fn send(&mut self, end: Nanos, rec: &mut Recorder, ctx: &ThreadCtx) {
        let (metrics, counts) = rec.take_interval();
        // A closed channel means the coordinator is gone; the thread still finishes.
        let _ = ctx.reports.send(IntervalReport {
            index: self.index,
            start: self.index * INTERVAL_NS,
            end,
            metrics,
            counts,
            open_connections: rec.open_connections,
        });
        self.index += 1;
        self.next_report = (self.index + 1) * INTERVAL_NS;
    }

    /// Sends the last, partial interval and returns the thread's CPU time since the start.
    pub fn finish(mut self, now: Nanos, rec: &mut Recorder, ctx: &ThreadCtx) -> u64 {
        self.tick(now, rec, ctx);
        self.send(now.max(self.index * INTERVAL_NS + 1), rec, ctx);
        thread_cpu_ns().saturating_sub(self.cpu_start)
    }
}

impl Default for Ticker {
    fn default() -> Self {
        Ticker::new()
    }
}
