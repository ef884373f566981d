//! A finger server (RFC 1288), as the Twisted tutorial's `finger07`/`finger08`.
//!
//! The client sends one line, the user's name; the server replies with that user's
//! entry, or `No such user`, then CRLF, and closes. Only the first line is answered
//! (Twisted's `LineReceiver` stops delivering once the transport is disconnecting;
//! here later lines are also ignored while the lookup is still running).
//!
//! # The lookup is asynchronous (finger08's Deferred)
//! The user database is a [`UserDatabase`]: `get_user` returns a future. The
//! protocol spawns it on the shard with [`Reactor::spawn_local`](crate::Reactor::spawn_local)
//! and writes the answer later through a [`TransportHandle`](crate::TransportHandle),
//! so a slow lookup never blocks the shard's other connections. While it runs the
//! connection stops reading. A failed lookup replies `Internal error in server` and
//! CRLF and closes (finger08's errback). If the client went away meanwhile the answer
//! is dropped (the handle is a no-op after `connection_lost`).
//!
//! Closures work as databases, which is how tests inject slow or failing lookups:
//!
//! ```
//! use weft::services::finger::{FingerFactory, LookupError};
//! use weft::Reactor;
//! let f = FingerFactory::new(|user: Vec<u8>, _reactor: Reactor| async move {
//!     match &user[..] {
//!         b"moshez" => Ok(Some(b"Happy and well".to_vec())),
//!         b"boom" => Err(LookupError("the database is down".into())),
//!         _ => Ok(None),
//!     }
//! });
//! # let _ = f;
//! ```
//!
//! # What is accepted on the wire
//! RFC 1288 queries are `{Q1} ::= [{W}|{W}{S}{U}]{C}` with `{W} ::= "/W"`: a verbose
//! request is `/W user`. The query is trimmed of surrounding spaces and tabs, a
//! leading `/W` (and the spaces after it) is dropped, and what is left is looked up
//! as is: `moshez`, ` moshez `, `/W moshez` and `/W  moshez` all ask for `moshez`.
//! An empty query (`finger @host`, "list the users") and a forwarding query
//! (`user@otherhost`) are looked up verbatim and so get `No such user`, as Twisted's
//! tutorial server does. Debian's `finger` client sends `user\r\n`, or `/W user\r\n`
//! with `-l`.
//!
//! # The users file
//! [`StaticUsers::parse`] reads `user:status` or `user=status` lines (split at the
//! first `:` or `=`; both sides trimmed); blank lines and lines starting with `#` are
//! skipped.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use crate::address::Address;
use crate::factory::Factory;
use crate::protocols::{LineControl, LineHandler, LineReceiver};
use crate::reactor::Reactor;

/// The reply for an unknown user (finger05/07).
pub const NO_SUCH_USER: &[u8] = b"No such user";
/// The reply when the lookup failed (finger08's errback).
pub const INTERNAL_ERROR: &[u8] = b"Internal error in server";

/// Why a lookup failed; the client only sees [`INTERNAL_ERROR`], this is logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupError(pub String);

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LookupError {}

/// What a lookup yields: the user's entry, `None` for no such user, or an error.
pub type LookupResult = Result<Option<Vec<u8>>, LookupError>;

/// A pending lookup: a shard-local future (Twisted: the Deferred `getUser` returns).
pub type Lookup = Pin<Box<dyn Future<Output = LookupResult>>>;

/// Where users are looked up (Twisted's `factory.getUser`). Implemented for every
/// `Fn(Vec<u8>) -> impl Future<Output = LookupResult>` closure.
///
/// The lookup runs on the connection's shard; `reactor` is that shard's, for timers
/// (Twisted code would use the global reactor, e.g. `deferLater`).
pub trait UserDatabase: 'static {
    /// Looks `user` up (the query with `/W` and whitespace removed).
    fn get_user(&self, user: &[u8], reactor: &Reactor) -> Lookup;
}

impl<F, Fut> UserDatabase for F
where
    F: Fn(Vec<u8>, Reactor) -> Fut + 'static,
    Fut: Future<Output = LookupResult> + 'static,
{
    fn get_user(&self, user: &[u8], reactor: &Reactor) -> Lookup {
        Box::pin(self(user.to_vec(), reactor.clone()))
    }
}

/// Users from a table in memory, answered at once (finger07's dict, or finger08's
/// `defer.succeed`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StaticUsers {
    users: HashMap<Vec<u8>, Vec<u8>>,
}

impl StaticUsers {
    /// Creates the table from `(user, entry)` pairs.
    pub fn new<I, U, S>(users: I) -> Self
    where
        I: IntoIterator<Item = (U, S)>,
        U: Into<Vec<u8>>,
        S: Into<Vec<u8>>,
    {
        StaticUsers {
            users: users
                .into_iter()
                .map(|(u, s)| (u.into(), s.into()))
                .collect(),
        }
    }

    /// Parses a users file (see the module docs).
    ///
    /// # Errors
    /// A line without `:` or `=`, or with an empty user name, named by its number.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some(at) = line.find([':', '=']) else {
                return Err(format!(
                    "line {}: expected user:status or user=status, got {line:?}",
                    n + 1
                ));
            };
            let (user, status) = (line[..at].trim(), line[at + 1..].trim());
            if user.is_empty() {
                return Err(format!("line {}: empty user name", n + 1));
            }
            users.insert(user.as_bytes().to_vec(), status.as_bytes().to_vec());
        }
        Ok(StaticUsers { users })
    }

    /// Reads and parses a users file.
    ///
    /// # Errors
    /// The file cannot be read, or [`parse`](Self::parse) fails; the message names it.
    pub fn from_file(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read users file {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Returns a user's entry.
    pub fn get(&self, user: &[u8]) -> Option<&[u8]> {
        self.users.get(user).map(Vec::as_slice)
    }

    /// Returns how many users there are.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Tells whether there are no users.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

impl UserDatabase for StaticUsers {
    fn get_user(&self, user: &[u8], _reactor: &Reactor) -> Lookup {
        let found = self.get(user).map(<[u8]>::to_vec);
        Box::pin(std::future::ready(Ok(found)))
    }
}

/// Turns an RFC 1288 query line into the user name to look up: trims spaces and
/// tabs, drops a leading `/W` token.
///
/// # Examples
/// ```
/// use weft::services::finger::query_user;
/// assert_eq!(query_user(b"/W moshez "), b"moshez");
/// assert_eq!(query_user(b"moshez"), b"moshez");
/// assert_eq!(query_user(b"/Wmoshez"), b"/Wmoshez");
/// assert_eq!(query_user(b"/W"), b"");
/// ```
pub fn query_user(line: &[u8]) -> &[u8] {
    let q = line.trim_ascii();
    match q.strip_prefix(b"/W") {
        Some(rest) if rest.is_empty() || rest[0] == b' ' || rest[0] == b'\t' => rest.trim_ascii(),
        _ => q,
    }
}

/// One finger connection (finger08's `FingerProtocol`): a [`LineHandler`].
pub struct Finger {
    db: Rc<dyn UserDatabase>,
    asked: bool,
}

impl Finger {
    /// Creates the protocol's handler over `db`.
    pub fn new(db: Rc<dyn UserDatabase>) -> Self {
        Finger { db, asked: false }
    }
}

impl LineHandler for Finger {
    fn line_received(&mut self, line: &[u8], t: &mut LineControl<'_>) {
        if std::mem::replace(&mut self.asked, true) {
            return; // only the first line is answered
        }
        let user = query_user(line).to_vec();
        let lookup = self.db.get_user(&user, t.reactor());
        // Nothing more to read: the answer ends the connection.
        t.pause_reading();
        let handle = t.handle();
        let delimiter = t.delimiter().to_vec();
        t.reactor().spawn_local(async move {
            let mut reply = match lookup.await {
                Ok(Some(entry)) => entry,
                Ok(None) => NO_SUCH_USER.to_vec(),
                Err(e) => {
                    tracing::warn!(user = %String::from_utf8_lossy(&user), "finger lookup failed: {e}");
                    INTERNAL_ERROR.to_vec()
                }
            };
            reply.extend_from_slice(&delimiter);
            handle.write(&reply);
            handle.lose_connection();
        });
    }
}

/// The protocol a [`FingerFactory`] builds.
pub type FingerProtocol = LineReceiver<Finger>;

/// Twisted's `FingerFactory`: holds the user database, shard-local.
#[derive(Clone)]
pub struct FingerFactory {
    db: Rc<dyn UserDatabase>,
}

impl FingerFactory {
    /// Creates the factory over `db`.
    pub fn new<D: UserDatabase>(db: D) -> Self {
        FingerFactory { db: Rc::new(db) }
    }

    /// Builds one connection's protocol.
    pub fn protocol(&self) -> FingerProtocol {
        LineReceiver::new(Finger::new(Rc::clone(&self.db)))
    }
}

impl Factory for FingerFactory {
    type Protocol = FingerProtocol;
    fn build_protocol(&mut self, _peer: &Address) -> Option<FingerProtocol> {
        Some(self.protocol())
    }
}
