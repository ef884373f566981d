//! Chat (stub).
use crate::stats::ThreadResult;
use crate::worker::ThreadCtx;
/// Runs one chat thread.
pub fn run_thread(_ctx: ThreadCtx) -> ThreadResult { unimplemented!() }
