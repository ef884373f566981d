//! Connection storm (stub).
use crate::stats::ThreadResult;
use crate::worker::ThreadCtx;
/// Runs one connect thread.
pub fn run_thread(_ctx: ThreadCtx) -> ThreadResult { unimplemented!() }
