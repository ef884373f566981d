//! `Application`: a name, a uid and a gid, and the services it runs.

use std::fmt;

use super::multi::MultiService;
use super::port_group::{check_endpoints, PortConflict};
use super::privileges::{Credentials, PrivilegeError};
use super::service::Service;
use crate::runtime::{ServerBuilder, ServerError, ServerHandle, ShardSummary};

/// Why an application could not start or did not stop cleanly.
#[derive(Debug)]
#[non_exhaustive]
pub enum AppError {
    /// An endpoint is given twice, already in use, or needs privileges.
    Port(PortConflict),
    /// The uid or gid cannot be taken.
    Privileges(PrivilegeError),
    /// The server failed to start or a shard failed.
    Server(ServerError),
    /// A service with that name was added already (Twisted raises `RuntimeError`).
    DuplicateService(String),
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::Port(e) => e.fmt(f),
            AppError::Privileges(e) => e.fmt(f),
            AppError::Server(e) => e.fmt(f),
            AppError::DuplicateService(name) => {
                write!(f, "a service named {name:?} exists already")
            }
        }
    }
}

impl std::error::Error for AppError {}

/// Twisted's `service.Application(name, uid, gid)`: the top service of a process.
///
/// # Examples
/// ```no_run
/// use weft::application::{Application, ListeningService};
/// use weft::services::wire::{Echo, SimpleFactory};
/// let mut app = Application::new("echo");
/// app.add_service(Box::new(ListeningService::new("echo", &["tcp:8000"], |_| SimpleFactory::new(|| Echo))))
///     .expect("a new name");
/// let running = app.start(weft::Server::builder().handle_signals(true)).expect("started");
/// running.join().expect("stopped cleanly");
/// ```
pub struct Application {
    name: String,
    credentials: Option<Credentials>,
    join_port_group: bool,
    services: MultiService,
}

impl Application {
    /// An application with no service, keeping the process's uid and gid.
    pub fn new(name: &str) -> Self {
        Application {
            name: name.to_string(),
            credentials: None,
            join_port_group: false,
            services: MultiService::new(name),
        }
    }

    /// Returns the name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs every thread as `credentials` once the listeners are bound.
    pub fn set_credentials(&mut self, credentials: Option<Credentials>) -> &mut Self {
        self.credentials = credentials;
        self
    }

    /// Lets a TCP or UDP port that another process listens on be shared with it
    /// (`SO_REUSEPORT`: the kernel splits the connections and unicast datagrams),
    /// for rolling restarts; for a multicast port it is Twisted's
    /// `listenMultiple=True` (every listener gets each group datagram). Off by
    /// default: such a port is refused.
    pub fn join_port_group(&mut self, on: bool) -> &mut Self {
        self.join_port_group = on;
        self
    }

    /// Adds a service (see [`MultiService::add_service`]).
    ///
    /// # Errors
    /// [`AppError::DuplicateService`] if one of that name was added already.
    pub fn add_service(&mut self, service: Box<dyn Service>) -> Result<&mut Self, AppError> {
        if let Err((s, _)) = self.services.add_service(service) {
            return Err(AppError::DuplicateService(s.name().to_string()));
        }
        Ok(self)
    }

    /// Returns the services.
    pub fn services(&self) -> &MultiService {
        &self.services
    }

    /// Checks the endpoints, binds every listener, drops privileges, starts the
    /// shards and then every service.
    ///
    /// # Errors
    /// [`AppError`]; nothing is left bound.
    pub fn start(mut self, builder: ServerBuilder) -> Result<RunningApplication, AppError> {
        check_endpoints(&self.services.listening_endpoints(), self.join_port_group)
            .map_err(AppError::Port)?;
        let mut builder = self.services.privileged_start_service(builder);
        if let Some(c) = self.credentials {
            c.check_possible().map_err(AppError::Privileges)?;
            builder = builder.after_bind(move || {
                c.drop_privileges().map_err(|e| e.to_string())?;
                tracing::info!(uid = c.uid, gid = c.gid, "privileges dropped");
                Ok(())
            });
        }
        let server = builder.start().map_err(AppError::Server)?;
        self.services.start_service(&server);
        Ok(RunningApplication {
            server,
            services: self.services,
        })
    }
}

/// A started [`Application`].
pub struct RunningApplication {
    server: ServerHandle,
    services: MultiService,
}

impl RunningApplication {
    /// Returns the running server (addresses, stats, stop handle).
    pub fn server(&self) -> &ServerHandle {
        &self.server
    }

    /// Waits until the shards have ended (a signal, or a stop through the server's
    /// stop handle), then stops every service in reverse order and waits for them.
    ///
    /// # Errors
    /// [`AppError::Server`] if a shard failed; the services are stopped anyway.
    pub fn join(mut self) -> Result<Vec<ShardSummary>, AppError> {
        let summaries = self.server.join();
        futures_lite::future::block_on(self.services.stop_service());
        summaries.map_err(AppError::Server)
    }
}
