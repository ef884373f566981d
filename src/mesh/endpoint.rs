//! [`MeshEndpoint`]: one shard's end of a mesh.

use std::fmt;
use std::rc::Rc;
use std::sync::atomic::Ordering;

use crate::runtime::inbox::Mailbox;

use super::*;

/// One shard's end of a [`Mesh`]: shard-local, cheap to clone (an `Rc`).
///
/// Send with [`broadcast`](Self::broadcast), [`send`](Self::send) and
/// [`ask_all`](Self::ask_all); receive by setting [`on_message`](Self::on_message)
/// and [`on_ask`](Self::on_ask). Handlers run on this shard, in the shard's
/// delivery task, never inside the sender's call: a handler may itself send.
pub struct MeshEndpoint<M> {
    pub(super) local: Rc<Local<M>>,
}

impl<M> Clone for MeshEndpoint<M> {
    fn clone(&self) -> Self {
        MeshEndpoint {
            local: Rc::clone(&self.local),
        }
    }
}

impl<M> fmt::Debug for MeshEndpoint<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeshEndpoint")
            .field("shard", &self.local.shard)
            .field("backlog", &self.local.backlog.get())
            .finish()
    }
}

impl<M: Send + 'static> MeshEndpoint<M> {
    /// Returns this endpoint's shard index.
    pub fn shard(&self) -> usize {
        self.local.shard
    }

    /// Returns the number of shards in the mesh.
    pub fn shards(&self) -> usize {
        self.local.shared.slots.len()
    }

    /// Sets the function called with every message delivered to this shard
    /// (replacing any previous one). Without one, messages are discarded.
    pub fn on_message<H: FnMut(M) + 'static>(&self, handler: H) {
        *self.local.handler.borrow_mut() = Some(Box::new(handler));
    }

    /// Sets the function that answers [`ask_all`](Self::ask_all) on this shard.
    pub fn on_ask<R: FnMut(M) -> M + 'static>(&self, responder: R) {
        *self.local.responder.borrow_mut() = Some(Box::new(responder));
    }

    /// Sends `msg` to shard `to` (this shard included). If `to`'s inbox is full the
    /// message waits in this shard's outbox; it is never dropped.
    ///
    /// # Errors
    /// [`MeshError::NoSuchShard`], or [`MeshError::Closed`] once shutdown began.
    pub fn send(&self, to: usize, msg: M) -> Result<(), MeshError> {
        self.local.check_shard(to)?;
        self.local.check_open()?;
        self.local.push(to, Envelope::Message(msg));
        Ok(())
    }

    /// Returns the messages waiting in this shard's outbox for full inboxes.
    pub fn backlog(&self) -> usize {
        self.local.backlog.get()
    }

    /// Delivers what is waiting in this shard's inbox (and moves the outbox on);
    /// returns how many messages were delivered. A [`join_manual`](Mesh::join_manual)
    /// endpoint is driven this way; with [`join`](Mesh::join) the delivery task
    /// does it.
    pub fn run_pending(&self) -> u64 {
        let before = self.local.own().stats.delivered.load(Ordering::Relaxed);
        while self.local.run(usize::MAX) {}
        self.local.own().stats.delivered.load(Ordering::Relaxed) - before
    }
}

impl<M: Send + Clone + 'static> MeshEndpoint<M> {
    /// Sends `msg` to every shard, this one included (one clone per shard: make the
    /// payload [`bytes::Bytes`] so a clone is a reference count).
    ///
    /// # Errors
    /// [`MeshError::Closed`] once shutdown began.
    pub fn broadcast(&self, msg: M) -> Result<(), MeshError> {
        self.local.check_open()?;
        let last = self.shards() - 1;
        for to in 0..last {
            self.local.push(to, Envelope::Message(msg.clone()));
        }
        self.local.push(last, Envelope::Message(msg));
        Ok(())
    }

    /// Asks every shard (this one included) to answer `msg` with its responder and
    /// returns a future of the answers, indexed by shard; combine them as needed
    /// (for example, sum the connection counts). Spawn it with
    /// [`Reactor::spawn_local`](crate::Reactor::spawn_local).
    ///
    /// # Errors
    /// The future yields [`MeshError::NoResponder`] if a shard has no responder,
    /// and [`MeshError::Closed`] if shutdown began before every answer came.
    pub fn ask_all(&self, msg: M) -> AskAll<M> {
        let local = Rc::clone(&self.local);
        if let Err(e) = local.check_open() {
            return AskAll {
                local,
                id: None,
                early: Some(e),
            };
        }
        let id = local.next_ask.get();
        local.next_ask.set(id + 1);
        let shards = self.shards();
        local.asks.borrow_mut().insert(
            id,
            AskState {
                answers: (0..shards).map(|_| None).collect(),
                remaining: shards,
                error: None,
                waker: None,
            },
        );
        let from = local.shard;
        for to in 0..shards {
            local.push(
                to,
                Envelope::Ask {
                    from,
                    id,
                    msg: msg.clone(),
                },
            );
        }
        AskAll {
            local,
            id: Some(id),
            early: None,
        }
    }
}
