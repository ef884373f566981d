//! [`Mesh`], the `Send + Sync` handle that creates the inboxes and lets shards join,
//! and [`MeshStats`].

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::runtime::inbox::{self, Doorbell, Mailbox};

use super::*;

/// A set of bounded inboxes, one per shard, for messages of type `M`.
///
/// Create it before the server starts, move a clone into the factory closure and
/// [`join`](Mesh::join) once per shard there. It is `Send + Sync`; the endpoints
/// it hands out are shard-local.
pub struct Mesh<M> {
    shared: Arc<Shared<M>>,
}

impl<M> Clone for Mesh<M> {
    fn clone(&self) -> Self {
        Mesh {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<M> fmt::Debug for Mesh<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mesh")
            .field("shards", &self.shared.slots.len())
            .field("capacity", &self.shared.capacity)
            .finish()
    }
}

/// One shard's counters, readable from any thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct MeshStats {
    /// Messages this shard sent (every receiver counts once; asks and replies too).
    pub sent: u64,
    /// Messages this shard delivered to its handler or responder.
    pub delivered: u64,
    /// Messages this shard sent that had to wait in its outbox (a full inbox).
    pub deferred: u64,
    /// Messages dropped because the shutdown barrier passed its deadline.
    pub dropped: u64,
    /// Times a sender found this shard asleep and woke it.
    pub wakeups: u64,
}

impl<M: Send + 'static> Mesh<M> {
    /// Creates a mesh for `shards` shards whose inboxes hold `capacity` messages
    /// each (both at least 1). The inboxes are allocated here, once.
    pub fn new(shards: usize, capacity: usize) -> Mesh<M> {
        let shards = shards.max(1);
        let capacity = capacity.max(1);
        let slots = (0..shards)
            .map(|_| {
                let (tx, rx) = crossbeam_channel::bounded(capacity);
                Slot {
                    tx,
                    rx,
                    doorbell: Doorbell::default(),
                    joined: AtomicBool::new(false),
                    waiting: (0..shards).map(|_| AtomicBool::new(false)).collect(),
                    any_waiting: AtomicBool::new(false),
                    retry: AtomicBool::new(false),
                    closed: AtomicBool::new(false),
                    posting: AtomicUsize::new(0),
                    stats: SlotStats::default(),
                }
            })
            .collect();
        Mesh {
            shared: Arc::new(Shared {
                slots,
                capacity,
                joined: AtomicUsize::new(0),
                flushed: AtomicUsize::new(0),
            }),
        }
    }

    /// Returns the number of shards.
    pub fn shards(&self) -> usize {
        self.shared.slots.len()
    }

    /// Returns the capacity of each inbox, in messages.
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// Joins the mesh as `shard`, from that shard's thread (inside the factory
    /// closure): starts the shard's delivery task and hooks it into shutdown.
    ///
    /// # Errors
    /// [`MeshError::NoSuchShard`], [`MeshError::AlreadyJoined`], or
    /// [`MeshError::NotOnShard`] when called outside a weft shard.
    pub fn join(&self, shard: usize) -> Result<MeshEndpoint<M>, MeshError> {
        let endpoint = self.join_manual(shard)?;
        let mailbox: Rc<dyn Mailbox> = endpoint.local.clone();
        if !inbox::attach(mailbox) {
            self.leave(shard);
            return Err(MeshError::NotOnShard);
        }
        Ok(endpoint)
    }

    /// Joins the mesh as `shard` without a delivery task: the caller delivers by
    /// calling [`MeshEndpoint::run_pending`]. For tests and for threads that run
    /// no weft shard. Such an endpoint takes no part in the shutdown barrier.
    ///
    /// # Errors
    /// [`MeshError::NoSuchShard`] or [`MeshError::AlreadyJoined`].
    pub fn join_manual(&self, shard: usize) -> Result<MeshEndpoint<M>, MeshError> {
        let shards = self.shards();
        let slot = self
            .shared
            .slots
            .get(shard)
            .ok_or(MeshError::NoSuchShard { shard, shards })?;
        if slot.joined.swap(true, Ordering::SeqCst) {
            return Err(MeshError::AlreadyJoined { shard });
        }
        self.shared.joined.fetch_add(1, Ordering::SeqCst);
        Ok(MeshEndpoint {
            local: Rc::new(Local {
                shard,
                shared: Arc::clone(&self.shared),
                outboxes: RefCell::new((0..shards).map(|_| VecDeque::new()).collect()),
                backlog: Cell::new(0),
                handler: RefCell::new(None),
                responder: RefCell::new(None),
                asks: RefCell::new(HashMap::new()),
                next_ask: Cell::new(0),
                phase: Cell::new(Phase::Open),
            }),
        })
    }

    fn leave(&self, shard: usize) {
        self.shared.slots[shard]
            .joined
            .store(false, Ordering::SeqCst);
        self.shared.joined.fetch_sub(1, Ordering::SeqCst);
    }

    /// Sends `msg` to `shard` from any thread (an admin thread, a test). There is
    /// no outbox here: a full inbox gives the error back at once.
    ///
    /// # Errors
    /// [`MeshError::NoSuchShard`], [`MeshError::Full`], or [`MeshError::Closed`]
    /// once that shard has begun shutting down.
    pub fn post(&self, shard: usize, msg: M) -> Result<(), MeshError> {
        let shards = self.shards();
        let slot = self
            .shared
            .slots
            .get(shard)
            .ok_or(MeshError::NoSuchShard { shard, shards })?;
        // Counted so that the receiver's final drain waits for a post in progress.
        slot.posting.fetch_add(1, Ordering::SeqCst);
        let result = if slot.closed.load(Ordering::SeqCst) {
            Err(MeshError::Closed)
        } else {
            match slot.tx.try_send(Envelope::Message(msg)) {
                Ok(()) => {
                    slot.doorbell.ring();
                    Ok(())
                }
                Err(_) => Err(MeshError::Full { shard }),
            }
        };
        slot.posting.fetch_sub(1, Ordering::SeqCst);
        result
    }

    /// Returns every shard's counters.
    pub fn stats(&self) -> Vec<MeshStats> {
        self.shared
            .slots
            .iter()
            .map(|s| MeshStats {
                sent: s.stats.sent.load(Ordering::Relaxed),
                delivered: s.stats.delivered.load(Ordering::Relaxed),
                deferred: s.stats.deferred.load(Ordering::Relaxed),
                dropped: s.stats.dropped.load(Ordering::Relaxed),
                wakeups: s.doorbell.wakeups(),
            })
            .collect()
    }
}
