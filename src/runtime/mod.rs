//! The engine: the only code that knows glommio and io_uring (stub, being written).
#![allow(missing_docs)]
pub struct Server;
pub struct ServerBuilder;
pub struct ServerError;
pub struct ServerHandle;
pub struct ShardStats;
pub struct StopHandle;
