//! Engine settings shared by every shard.

use std::time::Duration;

use crate::transport::OutputLimits;

/// The default time a graceful shutdown waits for connections to drain.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The default per-shard budget for all buffered output (64 MiB): past it the
/// connections holding the most are aborted, so that many connections at their
/// caps cannot exhaust the process.
pub const DEFAULT_SHARD_OUTPUT_BUDGET: usize = 64 * 1024 * 1024;

/// The default number of 8 KiB buffers in each shard's receive pool (4 MiB of
/// address space, touched only as used).
pub const DEFAULT_RECEIVE_BUFFERS: usize = 512;

/// Tasks a shard runs per turn before it looks at its ring again.
pub(crate) const TASK_BUDGET: usize = 256;

/// Cross-shard messages a shard delivers per turn and per mailbox.
pub(crate) const MESH_BATCH: usize = 256;

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) limits: OutputLimits,
    pub(crate) drain_timeout: Duration,
    pub(crate) nodelay: bool,
    pub(crate) shard_output_budget: usize,
    pub(crate) receive_buffers: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            limits: OutputLimits::default(),
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            nodelay: true,
            shard_output_budget: DEFAULT_SHARD_OUTPUT_BUDGET,
            receive_buffers: DEFAULT_RECEIVE_BUFFERS,
        }
    }
}
