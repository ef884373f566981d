//! Connection policies: Twisted's `twisted.protocols.policies`, as wrapping factories.
//!
//! ```text
//! PolicyFactory<F> ──build_protocol──► Policed<P>
//!   │ admission (once per connection):   total cap, per-peer cap (ConnectionCounts,
//!   │                                    shared by every shard)
//!   └ per connection, shard-local only:  IdleTimeout (TimeoutMixin),
//!                                        RateLimit for reads and writes (ThrottlingFactory)
//! ```
//!
//! Each policy is a wrapper, as Twisted's `WrappingFactory`/`ProtocolWrapper`: the
//! engine knows nothing of them. What crosses shards (the counts) is touched once
//! when a connection is admitted and once when it ends, never per message; the
//! settings ([`PolicySettings`]) are atomics read once per admitted connection, so a
//! reload (SIGHUP) changes them for the connections that come next without touching
//! the ones that are open.
//!
//! | Twisted | weft |
//! | --- | --- |
//! | `TimeoutMixin` (`setTimeout`, `resetTimeout`, `timeoutConnection`) | [`IdleTimeout`] |
//! | `TimeoutFactory` | [`PolicySettings::set_idle_timeout`] |
//! | `ThrottlingFactory(readLimit, writeLimit, maxConnectionCount)` | [`RateLimit`], `set_read_rate`, `set_write_rate`, `set_max_connections` |
//! | `LimitConnectionsByPeer` (`maxConnectionsPerPeer = 5`) | `set_max_connections_per_peer`, across every shard |
//! | `LimitTotalConnectionsFactory` | `set_max_connections`, across every shard |

mod counts;
mod log_limit;
mod policed;
mod settings;
mod throttle;
mod timeout;

pub use counts::{Admission, ConnectionCounts, Refusal};
pub use log_limit::LogLimiter;
pub use policed::{Policed, PolicyFactory};
pub use settings::{PolicySettings, PolicyStats};
pub use throttle::RateLimit;
pub use timeout::{IdleTimeout, OnTimeout};
