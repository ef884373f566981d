//! `MultiService`: children started in order and stopped in reverse.

use super::service::{Service, StopFuture};
use crate::endpoints::ServerEndpoint;
use crate::runtime::{ServerBuilder, ServerHandle};

/// A service made of services (Twisted's `MultiService`): they start in the order
/// they were added and stop in the reverse order, every `stop_service` called at
/// once and then awaited together.
///
/// # Examples
/// ```
/// use weft::application::{ListeningService, MultiService, Service};
/// use weft::services::wire::{Echo, SimpleFactory};
/// let mut all = MultiService::new("all");
/// let echo = || Box::new(ListeningService::new("echo", &["tcp:0"], |_| SimpleFactory::new(|| Echo)));
/// assert!(all.add_service(echo()).is_ok());
/// assert!(all.get_service_named("echo").is_some());
/// assert!(all.add_service(echo()).is_err()); // the name is taken
/// ```
pub struct MultiService {
    name: String,
    children: Vec<Box<dyn Service>>,
}

impl MultiService {
    /// An empty one named `name`.
    pub fn new(name: &str) -> Self {
        MultiService {
            name: name.to_string(),
            children: Vec::new(),
        }
    }

    /// Adds a child (Twisted's `addService`).
    ///
    /// # Errors
    /// The child back, with a message, if a child of that name exists already
    /// (Twisted raises `RuntimeError`).
    pub fn add_service(
        &mut self,
        child: Box<dyn Service>,
    ) -> Result<(), (Box<dyn Service>, String)> {
        if self.get_service_named(child.name()).is_some() {
            let msg = format!("a service named {:?} exists already", child.name());
            return Err((child, msg));
        }
        self.children.push(child);
        Ok(())
    }

    /// Returns the child named `name` (Twisted's `getServiceNamed`).
    pub fn get_service_named(&self, name: &str) -> Option<&dyn Service> {
        self.children
            .iter()
            .find(|c| c.name() == name)
            .map(|c| c.as_ref())
    }

    /// Returns the children, in start order.
    pub fn services(&self) -> impl Iterator<Item = &dyn Service> {
        self.children.iter().map(|c| c.as_ref())
    }
}

impl Service for MultiService {
    fn name(&self) -> &str {
        &self.name
    }

    fn listening_endpoints(&self) -> Vec<ServerEndpoint> {
        self.children
            .iter()
            .flat_map(|c| c.listening_endpoints())
            .collect()
    }

    fn privileged_start_service(&mut self, mut server: ServerBuilder) -> ServerBuilder {
        for c in &mut self.children {
            server = c.privileged_start_service(server);
        }
        server
    }

    fn start_service(&mut self, server: &ServerHandle) {
        for c in &mut self.children {
            c.start_service(server);
        }
    }

    fn stop_service(&mut self) -> StopFuture {
        let stopping: Vec<StopFuture> = self
            .children
            .iter_mut()
            .rev()
            .map(|c| c.stop_service())
            .collect();
        Box::pin(async move {
            for s in stopping {
                s.await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    struct Recorder(&'static str, Arc<Mutex<Vec<String>>>);

    impl Service for Recorder {
        fn name(&self) -> &str {
            self.0
        }
        fn privileged_start_service(&mut self, s: ServerBuilder) -> ServerBuilder {
            self.1
                .lock()
                .unwrap()
                .push(format!("privileged {}", self.0));
            s
        }
        fn stop_service(&mut self) -> StopFuture {
            self.1.lock().unwrap().push(format!("stop {}", self.0));
            Box::pin(std::future::ready(()))
        }
    }

    #[test]
    fn children_start_in_order_and_stop_in_reverse() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut m = MultiService::new("m");
        for n in ["a", "b", "c"] {
            assert!(m.add_service(Box::new(Recorder(n, log.clone()))).is_ok());
        }
        let _ = m.privileged_start_service(crate::Server::builder());
        futures_lite::future::block_on(m.stop_service());
        assert_eq!(
            *log.lock().unwrap(),
            [
                "privileged a",
                "privileged b",
                "privileged c",
                "stop c",
                "stop b",
                "stop a"
            ]
        );
    }
}
