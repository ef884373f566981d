//! A running server: its addresses, counters, and the means to stop and join it.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::address::Address;
use crate::runtime::{ServerError, ShardStats, ShardSummary, StopHandle};

/// A running server: its addresses, counters, and the means to stop and join it.
pub struct ServerHandle {
    pub(crate) shards: usize,
    pub(crate) addresses: Vec<Address>,
    pub(crate) stop: StopHandle,
    pub(crate) stats: Vec<Arc<ShardStats>>,
    pub(crate) joins: Vec<glommio::ExecutorJoinHandle<Result<ShardSummary, String>>>,
    /// The Prometheus exporter's thread (`ServerBuilder::metrics`); stops when this
    /// handle is dropped or joined.
    pub(crate) metrics: Option<crate::metrics::Exporter>,
}

impl ServerHandle {
    /// Returns the number of shards.
    pub fn shards(&self) -> usize {
        self.shards
    }

    /// Returns the bound address of every endpoint, in the order given (port 0 is
    /// replaced by the real port).
    pub fn addresses(&self) -> &[Address] {
        &self.addresses
    }

    /// Returns the first TCP endpoint's address.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.addresses.iter().find_map(|a| match a {
            Address::Tcp(a) => Some(*a),
            _ => None,
        })
    }

    /// Returns the first UDP endpoint's address.
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.addresses.iter().find_map(|a| match a {
            Address::Udp(a) => Some(*a),
            _ => None,
        })
    }

    /// Returns a handle that stops the server from any thread.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Returns each shard's live counters.
    pub fn stats(&self) -> &[Arc<ShardStats>] {
        &self.stats
    }

    /// Returns the address of the metrics endpoint, if one was asked for.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|m| m.local_addr())
    }

    /// Returns the metrics page's URL (`http://127.0.0.1:PORT/metrics`), if any.
    pub fn metrics_url(&self) -> Option<String> {
        self.metrics.as_ref().map(|m| m.url())
    }

    /// Starts a graceful shutdown (see [`StopHandle::stop`]).
    pub fn stop(&self) {
        self.stop.stop();
    }

    /// Waits until every shard has ended and returns their totals.
    ///
    /// # Errors
    /// [`ServerError::Runtime`] if a shard's thread failed.
    pub fn join(self) -> Result<Vec<ShardSummary>, ServerError> {
        let mut out = Vec::with_capacity(self.joins.len());
        for j in self.joins {
            match j.join() {
                Ok(Ok(summary)) => out.push(summary),
                Ok(Err(msg)) => return Err(ServerError::Runtime(msg)),
                Err(e) => return Err(ServerError::Runtime(format!("shard failed: {e}"))),
            }
        }
        Ok(out)
    }

    /// Stops the server gracefully and waits for it.
    ///
    /// # Errors
    /// As [`join`](Self::join).
    pub fn shutdown(self) -> Result<Vec<ShardSummary>, ServerError> {
        self.stop();
        self.join()
    }
}
