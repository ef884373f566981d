//! Host-name resolution off the shard's thread.
//!
//! A shard must never block: `getaddrinfo` can take seconds (a slow DNS server, a
//! dead resolver), and glommio's own `TcpStream::connect` resolves names on the
//! executor thread. weft resolves on a short-lived helper thread instead, and hands
//! the answer back through a shared slot and the waiting task's waker (glommio
//! wakers may be woken from any thread):
//!
//! ```text
//!  shard thread                           helper thread
//!  resolve(host, port) ──spawn──────────► f(host, port)   (blocking is fine here)
//!   └ poll: slot empty → store waker       │
//!   ◄──────────────── slot = result; waker.wake() ┘
//! ```
//!
//! The blocking function is injectable ([`Resolver::new`]) so a test can plug in a
//! slow or failing one and check that the shard keeps running its timers.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

type ResolveFn = dyn Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync;

/// Turns a host name into addresses, on a helper thread (Twisted: the reactor's
/// threaded resolver). Cloning shares the same function.
///
/// # Examples
/// ```
/// use weft::client::Resolver;
/// // A resolver that knows one name, for tests.
/// let r = Resolver::new(|host, port| match host {
///     "irc.test" => Ok(vec![([127, 0, 0, 1], port).into()]),
///     _ => Err(std::io::Error::new(std::io::ErrorKind::NotFound, "unknown host")),
/// });
/// # let _ = r;
/// ```
#[derive(Clone)]
pub struct Resolver {
    f: Arc<ResolveFn>,
}

impl Default for Resolver {
    fn default() -> Self {
        Resolver::system()
    }
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Resolver")
    }
}

impl Resolver {
    /// Returns the system resolver (`getaddrinfo` through `ToSocketAddrs`).
    pub fn system() -> Resolver {
        Resolver::new(|host, port| (host, port).to_socket_addrs().map(Iterator::collect))
    }

    /// Returns a resolver that calls `f` on a helper thread; `f` may block.
    pub fn new<F>(f: F) -> Resolver
    where
        F: Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync + 'static,
    {
        Resolver { f: Arc::new(f) }
    }

    /// Resolves `host` on a helper thread; the returned future completes on the
    /// caller's thread without ever blocking it.
    ///
    /// # Errors
    /// What the resolving function returned, or the error from spawning the thread.
    pub fn resolve(
        &self,
        host: &str,
        port: u16,
    ) -> impl Future<Output = io::Result<Vec<SocketAddr>>> {
        let slot = Arc::new(Mutex::new(Slot::default()));
        let (f, s, host) = (Arc::clone(&self.f), Arc::clone(&slot), host.to_string());
        let spawned = std::thread::Builder::new()
            .name("weft-resolve".into())
            .spawn(move || {
                let result = f(&host, port);
                let waker = {
                    let mut s = s.lock().unwrap_or_else(|e| e.into_inner());
                    s.result = Some(result);
                    s.waker.take()
                };
                if let Some(w) = waker {
                    w.wake();
                }
            });
        if let Err(e) = spawned {
            slot.lock().unwrap_or_else(|e| e.into_inner()).result = Some(Err(e));
        }
        Lookup { slot }
    }
}

#[derive(Default)]
struct Slot {
    result: Option<io::Result<Vec<SocketAddr>>>,
    waker: Option<Waker>,
}

struct Lookup {
    slot: Arc<Mutex<Slot>>,
}

impl Future for Lookup {
    type Output = io::Result<Vec<SocketAddr>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        match s.result.take() {
            Some(r) => Poll::Ready(r),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_lookup_completes_on_the_caller_after_the_helper_answers() {
        let r = Resolver::new(|_, port| {
            std::thread::sleep(Duration::from_millis(50));
            Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))])
        });
        let got = futures_lite::future::block_on(r.resolve("anything", 7)).unwrap();
        assert_eq!(got, vec![SocketAddr::from(([127, 0, 0, 1], 7))]);
    }

    #[test]
    fn the_system_resolver_knows_ip_literals() {
        let got = futures_lite::future::block_on(Resolver::system().resolve("127.0.0.1", 9));
        assert_eq!(got.unwrap(), vec![SocketAddr::from(([127, 0, 0, 1], 9))]);
    }
}
