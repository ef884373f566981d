//! Connection counts shared by every shard: the total and one per peer address.
//!
//! One [`ConnectionCounts`] is shared (through an `Arc`) by the policy factories of
//! every shard. [`ConnectionCounts::admit`] runs once per accepted connection and
//! the [`Admission`] it returns gives the slots back when dropped, so the cost is
//! one atomic add and, with a per-peer limit, one short lock per connection, never
//! per message.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The total connection cap was reached.
    TooManyConnections,
    /// The peer's address already has its cap of connections.
    TooManyFromPeer,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::TooManyConnections => "too many connections",
            Refusal::TooManyFromPeer => "too many connections from this peer",
        })
    }
}

/// The open connections, in total and per peer address, across every shard.
#[derive(Debug, Default)]
pub struct ConnectionCounts {
    total: AtomicUsize,
    per_peer: Mutex<HashMap<IpAddr, usize>>,
}

impl ConnectionCounts {
    /// Returns the connections admitted and not yet ended.
    pub fn open(&self) -> usize {
        self.total.load(Ordering::SeqCst)
    }

    /// Returns the connections open from `peer`.
    pub fn open_from(&self, peer: IpAddr) -> usize {
        self.peers().get(&peer).copied().unwrap_or(0)
    }

    fn peers(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.per_peer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a connection from `peer` if neither cap is reached (`None` is no cap;
    /// a UNIX peer has no address and is counted in the total only).
    ///
    /// # Errors
    /// The [`Refusal`] naming the cap that was reached; nothing stays counted.
    pub fn admit(
        self: &Arc<Self>,
        peer: Option<IpAddr>,
        max_total: Option<usize>,
        max_per_peer: Option<usize>,
    ) -> Result<Admission, Refusal> {
        let before = self.total.fetch_add(1, Ordering::SeqCst);
        let mut admission = Admission {
            counts: Arc::clone(self),
            peer: None,
        };
        if max_total.is_some_and(|max| before >= max) {
            return Err(Refusal::TooManyConnections);
        }
        if let (Some(ip), Some(max)) = (peer, max_per_peer) {
            let mut peers = self.peers();
            let n = peers.entry(ip).or_insert(0);
            if *n >= max {
                return Err(Refusal::TooManyFromPeer);
            }
            *n += 1;
            admission.peer = Some(ip);
        }
        Ok(admission)
    }
}

/// One admitted connection's place in the counts, given back when dropped.
#[derive(Debug)]
pub struct Admission {
    counts: Arc<ConnectionCounts>,
    peer: Option<IpAddr>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.counts.total.fetch_sub(1, Ordering::SeqCst);
        if let Some(ip) = self.peer {
            let mut peers = self.counts.peers();
            if let Some(n) = peers.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    peers.remove(&ip);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn a_peer_at_its_cap_is_refused_while_another_peer_is_admitted() {
        let c = Arc::new(ConnectionCounts::default());
        let a1 = c.admit(Some(A), None, Some(2)).unwrap();
        let _a2 = c.admit(Some(A), None, Some(2)).unwrap();
        assert_eq!(
            c.admit(Some(A), None, Some(2)).unwrap_err(),
            Refusal::TooManyFromPeer
        );
        let _b = c.admit(Some(B), None, Some(2)).unwrap();
        assert_eq!(c.open(), 3);
        drop(a1);
        assert_eq!(c.open_from(A), 1);
        assert!(c.admit(Some(A), None, Some(2)).is_ok());
    }

    #[test]
    fn the_total_cap_refuses_and_counts_nothing_for_the_refused() {
        let c = Arc::new(ConnectionCounts::default());
        let first = c.admit(None, Some(1), None).unwrap();
        assert_eq!(
            c.admit(None, Some(1), None).unwrap_err(),
            Refusal::TooManyConnections
        );
        assert_eq!(c.open(), 1);
        drop(first);
        assert_eq!(c.open(), 0);
    }
}
