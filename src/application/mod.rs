//! Twisted's application model: services started in order, stopped in reverse, under
//! one [`Application`] with a name, a uid and a gid.
//!
//! ```text
//! Application::start(builder)
//!   ├─ check the endpoints: none twice, none already listened on by another
//!   │  process (port_group.rs), unless joining a port group is asked for
//!   ├─ privileged_start_service on every service, in order: listeners are added
//!   │  to the builder, which binds them all (root may be needed here)
//!   ├─ after every bind, before any shard thread exists: setgroups, setgid, setuid
//!   │  (privileges.rs), so no shard ever accepts with root's privileges
//!   ├─ the shards start; start_service on every service, in order
//!   └─ RunningApplication::join: the shards drain and end (SIGTERM, or stop());
//!      then stop_service on every service in reverse order, awaited
//! ```
//!
//! | Twisted | weft |
//! | --- | --- |
//! | `service.IService`, `service.Service` | [`Service`] |
//! | `service.MultiService` | [`MultiService`] |
//! | `service.Application(name, uid, gid)` | [`Application`] |
//! | `strports.service(desc, factory)`, `internet.TCPServer`, `UNIXServer` | [`ListeningService`] |
//! | `internet.ClientService` (on `ReconnectingClientFactory`'s delays) | [`ClientService`] |
//! | `twistd`'s `shedPrivileges` | [`Credentials::drop_privileges`] |
//!
//! # Twisted
//! A Twisted `stopService` runs before the reactor stops and may delay it; here the
//! engine's graceful stop (every shard stops accepting and drains its connections)
//! comes first, and `stop_service` runs after the shards have ended, for what a
//! service holds outside them (files, client sessions, notifications).

mod app;
mod client_service;
mod listening;
mod multi;
mod port_group;
mod privileges;
mod service;
pub mod systemd;

pub use app::{AppError, Application, RunningApplication};
pub use client_service::ClientService;
pub use listening::ListeningService;
pub use multi::MultiService;
pub use port_group::{check_endpoints, PortConflict};
pub use privileges::{Credentials, PrivilegeError};
pub use service::{Service, StopFuture};
