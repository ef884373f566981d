//! The receivers' own pause of a transport's reading.

use crate::transport::Transport;

/// Remembers whether a receiver's pause is what stopped its transport's reading, so
/// that its resume undoes only that: a handler that paused reading itself (finger
/// during a lookup) stays paused across the engine's watermark pause/resume.
#[derive(Debug, Default)]
pub(crate) struct ReadHold {
    held: bool,
}

impl ReadHold {
    /// Pauses reading unless something else already has.
    pub(crate) fn pause(&mut self, t: &mut Transport) {
        if !t.reading_paused() {
            self.held = true;
            t.pause_reading();
        }
    }

    /// Resumes reading if `pause` is what paused it.
    pub(crate) fn resume(&mut self, t: &mut Transport) {
        if std::mem::take(&mut self.held) {
            t.resume_reading();
        }
    }
}
