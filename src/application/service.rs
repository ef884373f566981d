//! The `Service` trait: Twisted's `IService`.

use std::future::Future;
use std::pin::Pin;

use crate::endpoints::ServerEndpoint;
use crate::runtime::{ServerBuilder, ServerHandle};

/// What `stop_service` returns: the runner awaits it (Twisted's Deferred from
/// `stopService`).
pub type StopFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Something an [`Application`](super::Application) starts and stops (Twisted's
/// `IService`). Every method has a default that does nothing.
///
/// Call order: `privileged_start_service` (while privileged: add listeners to the
/// builder), then privileges are dropped and the shards start, then
/// `start_service`, and at the end `stop_service`.
pub trait Service: Send {
    /// The service's name, unique within its parent.
    fn name(&self) -> &str;

    /// The endpoints this service will listen on, for the checks made before any
    /// of them is bound (the same endpoint twice, a port already in use).
    fn listening_endpoints(&self) -> Vec<ServerEndpoint> {
        Vec::new()
    }

    /// Adds what must be bound with the process's initial privileges (Twisted's
    /// `privilegedStartService`): the builder binds every listener before any
    /// privilege is dropped.
    fn privileged_start_service(&mut self, server: ServerBuilder) -> ServerBuilder {
        server
    }

    /// Called once every shard listens and privileges are dropped (Twisted's
    /// `startService`).
    fn start_service(&mut self, server: &ServerHandle) {
        let _ = server;
    }

    /// Called after the shards have ended; the runner awaits the future (Twisted's
    /// `stopService`).
    fn stop_service(&mut self) -> StopFuture {
        Box::pin(std::future::ready(()))
    }
}
