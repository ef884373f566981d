//! [`AskAll`]: the answers of every shard to one ask.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::*;

/// The answers to [`MeshEndpoint::ask_all`], indexed by shard.
#[must_use = "an ask does nothing useful unless awaited"]
pub struct AskAll<M> {
    pub(super) local: Rc<Local<M>>,
    pub(super) id: Option<u64>,
    pub(super) early: Option<MeshError>,
}

impl<M> fmt::Debug for AskAll<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AskAll").field("id", &self.id).finish()
    }
}

impl<M> Future for AskAll<M> {
    type Output = Result<Vec<M>, MeshError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(e) = self.early.take() {
            return Poll::Ready(Err(e));
        }
        let Some(id) = self.id else {
            return Poll::Ready(Err(MeshError::Closed));
        };
        let mut asks = self.local.asks.borrow_mut();
        let Some(state) = asks.get_mut(&id) else {
            return Poll::Ready(Err(MeshError::Closed));
        };
        if state.remaining > 0 {
            state.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let state = asks.remove(&id).expect("present above");
        drop(asks);
        self.id = None;
        if let Some(e) = state.error {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(state.answers.into_iter().flatten().collect()))
    }
}

impl<M> Drop for AskAll<M> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.local.asks.borrow_mut().remove(&id);
        }
    }
}
