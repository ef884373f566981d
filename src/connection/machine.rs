//! The connection machine: a connection's rules — flow control, how it ends and
//! why — with no socket, no clock and no executor.
//!
//! The engine feeds it what happened (`lose`, `abort`, `handle_eof`, the output
//! it holds …) and asks it what to do next (`poll_flow`, `poll_end`, `wants_read`).
//! The protocol's requests reach it through the [`Transport`](crate::Transport).
//!
//! ```text
//!              lose / shutdown            output drained
//!   Open ─────────────────────────► Draining(why) ──────────► Ended ──► Lost
//!    │  peer FIN, half-closeable        ▲   │                   ▲  connection_lost
//!    ▼                                  │   │ abort, error,     │  delivered
//!   ReadClosed ── lose / shutdown ──────┘   │ panic, cap        │
//!    │                                      └───────────────────┤
//!    └── abort, error, panic, cap, output drained after lose ───┘
//!   Open ── peer FIN, not half-closeable ──► Draining(PeerClosed)
//! ```
//!
//! Flow control, beside the phase: past the high watermark the protocol is told
//! `pause_producing` and — unless it chose [`Backpressure::KeepReading`] — the
//! connection stops being read (Twisted's idiom of a transport registered as its
//! own streaming producer), so a peer that does not read costs one watermark, not
//! the cap. Reading resumes once the output is back to the low watermark;
//! `resume_producing` comes when it is empty (Twisted resumes at empty too). Past
//! the hard cap the connection ends with `OutputLimitExceeded`.
//!
//! A write-rate policy can also hold the producer (`throttle_producer`): the protocol
//! is paused as above, but the empty output does not resume it until the policy
//! releases it (`release_producer`), after which it resumes at empty as usual.
//!
//! ```text
//!   Flowing ── over the high watermark ──► Paused ── output empty ──► Flowing
//!      │                                     │          (ResumeProducing)
//!      └──────── throttle_producer ─────► Throttled ◄── throttle_producer
//!                                            │ release_producer
//!                                            ▼
//!                                          Paused
//! ```

use crate::reason::Reason;
use crate::transport::OutputLimits;

/// How a connection's socket is closed once its end is decided.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Close {
    /// shutdown(SHUT_RDWR) then close: a FIN (Twisted's loseConnection).
    Orderly,
    /// SO_LINGER 0 then close: a reset (Twisted's abortConnection).
    Reset,
    /// The socket already failed: just close it.
    Plain,
}

/// What a connection does with its input while its output is above the high
/// watermark (see [`Protocol::backpressure`](crate::Protocol::backpressure)).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Backpressure {
    /// Stop reading until the output is back to the low watermark (the default:
    /// Twisted's idiom of registering the transport as its own streaming producer).
    #[default]
    PauseReading,
    /// Keep reading: the protocol bounds its own output (it honours
    /// `pause_producing`, or writes only in reply to something bounded).
    KeepReading,
}

/// Whether the server is stopping, which makes a graceful close a shutdown's.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Server {
    Running,
    /// The graceful stop has begun: the protocol was (or is about to be) told
    /// `server_stopping`, and its `lose_connection` ends with `Shutdown`.
    Stopping,
}

/// Why a connection is draining its output before it closes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Drain {
    /// The protocol called `lose_connection`.
    Lose,
    /// The server is shutting down.
    Shutdown,
    /// The peer sent FIN and the protocol is not half-closeable.
    PeerClosed,
}

/// Where a connection is in its life.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Phase {
    /// Reading and writing.
    Open,
    /// The peer sent FIN to a half-closeable protocol: writing only.
    ReadClosed,
    /// No more reading; the end comes when the output has drained.
    Draining(Drain),
    /// The end is decided; the socket is being closed.
    Ended,
    /// `connection_lost` has been delivered: the transport is dead.
    Lost,
}

/// Whether the protocol was told to pause producing, and what resumes it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Producer {
    Flowing,
    /// Paused by the watermark: resumed once the output is empty.
    Paused,
    /// Paused by a rate policy: not resumed until the policy releases it.
    Throttled,
}

/// A flow-control event for the protocol.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Flow {
    PauseProducing,
    ResumeProducing,
}

/// What the engine does after the peer's FIN.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum EofAction {
    /// Tell the half-closeable protocol (`read_connection_lost`).
    ReadConnectionLost,
    /// Nothing to call: the connection drains and ends (or already was ending).
    Nothing,
}

/// One connection's rules; see the module doc.
#[derive(Debug)]
pub(crate) struct Machine {
    phase: Phase,
    /// The decided end, until the engine takes it.
    end: Option<(Reason, Close)>,
    producer: Producer,
    /// The protocol paused reading (`pause_reading`).
    paused_by_protocol: bool,
    /// The engine stopped reading because the output is above the high watermark.
    held_by_output: bool,
    backpressure: Backpressure,
    limits: OutputLimits,
    server: Server,
}

impl Machine {
    pub(crate) fn new(limits: OutputLimits) -> Machine {
        Machine {
            phase: Phase::Open,
            end: None,
            producer: Producer::Flowing,
            paused_by_protocol: false,
            held_by_output: false,
            backpressure: Backpressure::default(),
            limits,
            server: Server::Running,
        }
    }

    pub(crate) fn set_backpressure(&mut self, b: Backpressure) {
        self.backpressure = b;
    }

    #[cfg(test)]
    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    pub(crate) fn limits(&self) -> OutputLimits {
        self.limits
    }

    fn decide(&mut self, reason: Reason, how: Close) {
        if matches!(self.phase, Phase::Ended | Phase::Lost) {
            return;
        }
        self.phase = Phase::Ended;
        self.end = Some((reason, how));
    }

    // ----- the protocol's requests (through the Transport) -----

    /// `lose_connection`: stop reading, drain, then close cleanly.
    pub(crate) fn lose(&mut self) {
        let why = match self.server {
            Server::Running => Drain::Lose,
            Server::Stopping => Drain::Shutdown,
        };
        match self.phase {
            Phase::Open | Phase::ReadClosed | Phase::Draining(Drain::PeerClosed) => {
                self.phase = Phase::Draining(why)
            }
            Phase::Draining(_) | Phase::Ended | Phase::Lost => {}
        }
    }

    /// `abort_connection`: end now, with a reset; a shutdown's abort says so.
    pub(crate) fn abort(&mut self) {
        let reason = if self.phase == Phase::Draining(Drain::Shutdown) {
            Reason::Shutdown { drained: false }
        } else {
            Reason::ConnectionAborted
        };
        self.decide(reason, Close::Reset);
    }

    pub(crate) fn pause_reading(&mut self) {
        self.paused_by_protocol = true;
    }

    pub(crate) fn resume_reading(&mut self) {
        self.paused_by_protocol = false;
    }

    pub(crate) fn reading_paused(&self) -> bool {
        self.paused_by_protocol
    }

    // ----- the engine's events -----

    /// The server is stopping. A connection already draining now ends with
    /// `Shutdown { drained: true }`; an open one stays open until the protocol,
    /// told `server_stopping` next, closes it (the default `lose_connection` then
    /// drains and ends with `Shutdown { drained: true }`) or the drain deadline
    /// aborts it.
    pub(crate) fn shutdown(&mut self) {
        self.server = Server::Stopping;
        if matches!(self.phase, Phase::Draining(_)) {
            self.phase = Phase::Draining(Drain::Shutdown);
        }
    }

    /// The drain deadline passed: end now, with a reset.
    pub(crate) fn force_shutdown(&mut self) {
        self.decide(Reason::Shutdown { drained: false }, Close::Reset);
    }

    /// The peer sent FIN.
    pub(crate) fn handle_eof(&mut self, half_closeable: bool) -> EofAction {
        match self.phase {
            Phase::Open if half_closeable => {
                self.phase = Phase::ReadClosed;
                EofAction::ReadConnectionLost
            }
            Phase::Open => {
                self.phase = Phase::Draining(Drain::PeerClosed);
                EofAction::Nothing
            }
            _ => EofAction::Nothing,
        }
    }

    /// Reading or sending failed.
    pub(crate) fn handle_error(&mut self, error: std::io::Error) {
        let reason = if self.phase == Phase::Draining(Drain::PeerClosed) {
            // The peer closed first; failing to flush to it afterwards is its close.
            Reason::ConnectionDone
        } else {
            Reason::ConnectionLost(error)
        };
        self.decide(reason, Close::Plain);
    }

    /// A protocol callback panicked (its output is discarded by the caller).
    pub(crate) fn handle_panic(&mut self, message: String) {
        self.decide(Reason::ProtocolFailure(message), Close::Orderly);
    }

    /// The shard's output budget is spent and this connection holds the most.
    pub(crate) fn over_budget(&mut self, buffered: usize, budget: usize) {
        self.decide(
            Reason::OutputLimitExceeded {
                buffered,
                limit: budget,
            },
            Close::Reset,
        );
    }

    /// `connection_lost` has been delivered.
    pub(crate) fn mark_lost(&mut self) {
        self.phase = Phase::Lost;
        self.end = None;
    }

    // ----- what to do next -----

    /// Tells whether the connection should be read now.
    pub(crate) fn wants_read(&self) -> bool {
        self.phase == Phase::Open && !self.paused_by_protocol && !self.held_by_output
    }

    /// Tells whether writes are still accepted (not after an abort or the end).
    pub(crate) fn accepts_writes(&self) -> bool {
        !matches!(self.phase, Phase::Ended | Phase::Lost)
    }

    /// Twisted's `transport.disconnecting`: a close is pending or done.
    pub(crate) fn disconnecting(&self) -> bool {
        matches!(
            self.phase,
            Phase::Draining(Drain::Lose | Drain::Shutdown) | Phase::Ended | Phase::Lost
        )
    }

    /// Tells whether a graceful close (`lose_connection` or a shutdown) is pending.
    pub(crate) fn losing(&self) -> bool {
        matches!(self.phase, Phase::Draining(Drain::Lose | Drain::Shutdown))
    }

    /// Tells whether `connection_lost` has not been delivered yet.
    pub(crate) fn connected(&self) -> bool {
        self.phase != Phase::Lost
    }

    /// Tells whether the decided end, not yet taken, is a reset (the test transport's
    /// `aborted()`).
    pub(crate) fn aborted(&self) -> bool {
        matches!(self.end, Some((_, Close::Reset)))
    }

    /// Holds the producer for a rate policy: the empty output no longer resumes it
    /// until [`release_producer`](Self::release_producer). Returns `true` when the
    /// protocol was producing and must now be told `pause_producing` (by the caller,
    /// which is inside one of its callbacks).
    pub(crate) fn throttle_producer(&mut self) -> bool {
        let was = std::mem::replace(&mut self.producer, Producer::Throttled);
        was == Producer::Flowing
    }

    /// Ends a policy's hold: the producer resumes once the output is empty, as
    /// after a watermark pause. Nothing changes if it was not held.
    pub(crate) fn release_producer(&mut self) {
        if self.producer == Producer::Throttled {
            self.producer = Producer::Paused;
        }
    }

    /// Applies the cap and the watermarks to `buffered` (output the kernel has not
    /// taken) and returns the next event for the protocol, if any. Call until `None`.
    ///
    /// `kernel_full` says the kernel refused part of the last send (the peer's
    /// window and our socket buffer are full): only then does the hard cap apply,
    /// so a burst written in one turn to a peer that reads (a chat line fanned out
    /// to many clients) is not cut before the kernel had a chance to take it.
    pub(crate) fn poll_flow(&mut self, buffered: usize, kernel_full: bool) -> Option<Flow> {
        if matches!(self.phase, Phase::Ended | Phase::Lost) {
            return None;
        }
        let limits = self.limits;
        if kernel_full && buffered > limits.max_buffer {
            self.decide(
                Reason::OutputLimitExceeded {
                    buffered,
                    limit: limits.max_buffer,
                },
                Close::Reset,
            );
            return None;
        }
        if buffered > limits.high_watermark {
            if self.backpressure == Backpressure::PauseReading {
                self.held_by_output = true;
            }
            if self.producer == Producer::Flowing {
                self.producer = Producer::Paused;
                return Some(Flow::PauseProducing);
            }
            return None;
        }
        if self.held_by_output && buffered <= limits.low_watermark {
            self.held_by_output = false;
        }
        if buffered == 0 && self.producer == Producer::Paused {
            self.producer = Producer::Flowing;
            return Some(Flow::ResumeProducing);
        }
        None
    }

    /// Returns the connection's end once it is decided: at once after an abort, an
    /// error, a panic or the cap; after the output drained (`buffered == 0`) for a
    /// graceful close. The engine closes the socket as told, then delivers the
    /// reason to `connection_lost` and calls [`mark_lost`](Self::mark_lost).
    pub(crate) fn poll_end(&mut self, buffered: usize) -> Option<(Reason, Close)> {
        if let Phase::Draining(why) = self.phase {
            if buffered == 0 {
                let reason = match why {
                    Drain::Lose | Drain::PeerClosed => Reason::ConnectionDone,
                    Drain::Shutdown => Reason::Shutdown { drained: true },
                };
                self.decide(reason, Close::Orderly);
            }
        }
        self.end.take()
    }
}

#[cfg(test)]
mod tests {
    //! `<state>_<event>`: one block per transition, no socket anywhere.
    use super::*;

    const HIGH: usize = 100;
    const LOW: usize = 25;
    const CAP: usize = 1000;

    fn machine() -> Machine {
        Machine::new(OutputLimits {
            high_watermark: HIGH,
            low_watermark: LOW,
            max_buffer: CAP,
        })
    }

    fn end(m: &mut Machine, buffered: usize) -> Option<(String, Close)> {
        m.poll_end(buffered).map(|(r, c)| (format!("{r:?}"), c))
    }

    #[test]
    fn open_reads_and_accepts_writes() {
        let m = machine();
        assert_eq!(m.phase(), Phase::Open);
        assert!(m.wants_read() && m.accepts_writes() && m.connected());
        assert!(!m.disconnecting());
    }

    #[test]
    fn open_lose_stops_reading_and_ends_done_once_drained() {
        let mut m = machine();
        m.lose();
        assert_eq!(m.phase(), Phase::Draining(Drain::Lose));
        assert!(!m.wants_read() && m.accepts_writes() && m.disconnecting());
        assert_eq!(end(&mut m, 10), None, "not before the output drained");
        assert_eq!(
            end(&mut m, 0),
            Some(("ConnectionDone".into(), Close::Orderly))
        );
        assert_eq!(end(&mut m, 0), None, "the end is given once");
    }

    #[test]
    fn open_abort_ends_at_once_with_a_reset() {
        let mut m = machine();
        m.abort();
        assert!(!m.accepts_writes());
        assert_eq!(
            end(&mut m, 500),
            Some(("ConnectionAborted".into(), Close::Reset))
        );
    }

    #[test]
    fn draining_abort_ends_at_once_with_a_reset() {
        let mut m = machine();
        m.lose();
        m.abort();
        assert_eq!(
            end(&mut m, 5),
            Some(("ConnectionAborted".into(), Close::Reset))
        );
    }

    #[test]
    fn open_eof_not_half_closeable_drains_then_ends_done() {
        let mut m = machine();
        assert_eq!(m.handle_eof(false), EofAction::Nothing);
        assert_eq!(m.phase(), Phase::Draining(Drain::PeerClosed));
        assert!(!m.disconnecting(), "no close was asked for");
        assert_eq!(end(&mut m, 3), None);
        assert_eq!(
            end(&mut m, 0),
            Some(("ConnectionDone".into(), Close::Orderly))
        );
    }

    #[test]
    fn open_eof_half_closeable_keeps_writing() {
        let mut m = machine();
        assert_eq!(m.handle_eof(true), EofAction::ReadConnectionLost);
        assert_eq!(m.phase(), Phase::ReadClosed);
        assert!(!m.wants_read() && m.accepts_writes());
        assert_eq!(
            end(&mut m, 0),
            None,
            "open for writing until lose_connection"
        );
    }

    #[test]
    fn read_closed_lose_drains_then_ends_done() {
        let mut m = machine();
        m.handle_eof(true);
        m.lose();
        assert_eq!(
            end(&mut m, 0),
            Some(("ConnectionDone".into(), Close::Orderly))
        );
    }

    #[test]
    fn draining_eof_changes_nothing() {
        let mut m = machine();
        m.lose();
        assert_eq!(m.handle_eof(true), EofAction::Nothing);
        assert_eq!(m.phase(), Phase::Draining(Drain::Lose));
    }

    #[test]
    fn open_shutdown_waits_for_the_protocol_then_its_lose_is_a_shutdown() {
        let mut m = machine();
        m.shutdown();
        assert_eq!(m.phase(), Phase::Open, "server_stopping decides");
        assert!(m.wants_read());
        assert_eq!(end(&mut m, 0), None);
        m.lose(); // the default server_stopping
        assert_eq!(m.phase(), Phase::Draining(Drain::Shutdown));
        assert_eq!(end(&mut m, 1), None);
        assert_eq!(
            end(&mut m, 0),
            Some(("Shutdown { drained: true }".into(), Close::Orderly))
        );
    }

    #[test]
    fn draining_lose_shutdown_becomes_a_shutdown() {
        let mut m = machine();
        m.lose();
        m.shutdown();
        assert_eq!(m.phase(), Phase::Draining(Drain::Shutdown));
    }

    #[test]
    fn draining_shutdown_force_ends_undrained_with_a_reset() {
        let mut m = machine();
        m.shutdown();
        m.force_shutdown();
        assert_eq!(
            end(&mut m, 7),
            Some(("Shutdown { drained: false }".into(), Close::Reset))
        );
    }

    #[test]
    fn draining_shutdown_abort_says_shutdown_undrained() {
        let mut m = machine();
        m.shutdown();
        m.lose();
        m.abort();
        assert_eq!(
            end(&mut m, 7),
            Some(("Shutdown { drained: false }".into(), Close::Reset))
        );
    }

    #[test]
    fn open_error_ends_lost_with_a_plain_close() {
        let mut m = machine();
        m.handle_error(std::io::Error::from_raw_os_error(libc::ECONNRESET));
        let (reason, how) = end(&mut m, 9).expect("ended");
        assert!(reason.starts_with("ConnectionLost"), "{reason}");
        assert_eq!(how, Close::Plain);
    }

    #[test]
    fn peer_closed_error_is_still_a_clean_close() {
        let mut m = machine();
        m.handle_eof(false);
        m.handle_error(std::io::Error::from_raw_os_error(libc::EPIPE));
        assert_eq!(
            end(&mut m, 9),
            Some(("ConnectionDone".into(), Close::Plain))
        );
    }

    #[test]
    fn open_panic_ends_protocol_failure_with_a_fin() {
        let mut m = machine();
        m.handle_panic("boom".into());
        assert_eq!(
            end(&mut m, 0),
            Some(("ProtocolFailure(\"boom\")".into(), Close::Orderly))
        );
    }

    #[test]
    fn ended_events_change_nothing() {
        let mut m = machine();
        m.abort();
        m.lose();
        m.shutdown();
        m.handle_panic("late".into());
        m.handle_error(std::io::Error::other("late"));
        assert_eq!(
            end(&mut m, 0),
            Some(("ConnectionAborted".into(), Close::Reset)),
            "the first end wins"
        );
    }

    #[test]
    fn lost_is_dead() {
        let mut m = machine();
        m.abort();
        m.poll_end(0);
        m.mark_lost();
        assert!(!m.connected() && !m.accepts_writes() && !m.wants_read());
        assert_eq!(
            m.poll_flow(CAP * 2, true),
            None,
            "no flow events after the end"
        );
        assert_eq!(end(&mut m, 0), None);
    }

    #[test]
    fn open_over_high_watermark_pauses_producer_and_reading() {
        let mut m = machine();
        assert_eq!(m.poll_flow(HIGH, true), None, "at the mark is not over it");
        assert_eq!(m.poll_flow(HIGH + 1, true), Some(Flow::PauseProducing));
        assert!(
            !m.wants_read(),
            "a peer that does not read stops being read"
        );
        assert_eq!(m.poll_flow(HIGH + 50, true), None, "paused once");
    }

    #[test]
    fn throttled_producer_is_not_resumed_at_empty_until_released() {
        let mut m = machine();
        assert!(
            m.throttle_producer(),
            "a flowing producer must be told to pause"
        );
        assert_eq!(
            m.poll_flow(0, false),
            None,
            "held: empty output does not resume"
        );
        assert_eq!(m.poll_flow(HIGH + 1, true), None, "already paused");
        assert!(!m.throttle_producer(), "held twice is told once");
        m.release_producer();
        assert_eq!(m.poll_flow(LOW, false), None, "resumes at empty only");
        assert_eq!(m.poll_flow(0, false), Some(Flow::ResumeProducing));
        m.release_producer();
        assert_eq!(
            m.poll_flow(0, false),
            None,
            "a release without a hold is nothing"
        );
    }

    #[test]
    fn throttling_a_producer_paused_by_the_watermark_needs_no_second_pause() {
        let mut m = machine();
        assert_eq!(m.poll_flow(HIGH + 1, true), Some(Flow::PauseProducing));
        assert!(!m.throttle_producer());
        assert_eq!(m.poll_flow(0, false), None);
        m.release_producer();
        assert_eq!(m.poll_flow(0, false), Some(Flow::ResumeProducing));
    }

    #[test]
    fn held_reading_resumes_at_the_low_watermark_and_producer_at_empty() {
        let mut m = machine();
        m.poll_flow(HIGH + 1, true);
        assert_eq!(m.poll_flow(LOW + 1, true), None);
        assert!(!m.wants_read(), "still above the low watermark");
        assert_eq!(m.poll_flow(LOW, true), None);
        assert!(m.wants_read(), "reading resumes at the low watermark");
        assert_eq!(m.poll_flow(0, true), Some(Flow::ResumeProducing));
        assert_eq!(m.poll_flow(0, true), None);
    }

    #[test]
    fn keep_reading_protocol_is_not_held() {
        let mut m = machine();
        m.set_backpressure(Backpressure::KeepReading);
        assert_eq!(m.poll_flow(HIGH + 1, true), Some(Flow::PauseProducing));
        assert!(m.wants_read());
    }

    #[test]
    fn protocol_pause_outlives_the_output_hold() {
        let mut m = machine();
        m.pause_reading();
        m.poll_flow(HIGH + 1, true);
        m.poll_flow(0, true);
        assert!(!m.wants_read(), "the protocol's own pause stays");
        m.resume_reading();
        assert!(m.wants_read());
    }

    #[test]
    fn open_over_cap_ends_output_limit_with_a_reset() {
        let mut m = machine();
        assert_eq!(m.poll_flow(CAP + 1, true), None);
        assert_eq!(
            end(&mut m, CAP + 1),
            Some((
                format!(
                    "OutputLimitExceeded {{ buffered: {}, limit: {CAP} }}",
                    CAP + 1
                ),
                Close::Reset
            ))
        );
    }

    #[test]
    fn open_over_cap_while_the_kernel_takes_everything_is_not_cut() {
        let mut m = machine();
        assert_eq!(m.poll_flow(CAP + 1, false), Some(Flow::PauseProducing));
        assert_eq!(
            end(&mut m, CAP + 1),
            None,
            "a burst the kernel has not refused"
        );
        assert_eq!(m.poll_flow(CAP + 1, true), None);
        assert!(
            end(&mut m, CAP + 1).is_some(),
            "cut once the kernel refuses"
        );
    }

    #[test]
    fn open_over_budget_ends_output_limit_naming_the_budget() {
        let mut m = machine();
        m.over_budget(400, 300);
        assert_eq!(
            end(&mut m, 400),
            Some((
                "OutputLimitExceeded { buffered: 400, limit: 300 }".into(),
                Close::Reset
            ))
        );
    }
}
