//! The exporter's HTTP side: one plain thread, a `std::net::TcpListener`, and just
//! enough HTTP/1.1 to answer `GET /metrics`.
//!
//! Why not an HTTP crate: a scrape is one small request every few seconds from a
//! known client, answered with `Connection: close`. hyper or tiny_http would bring
//! an async runtime or a thread pool, and their dependencies, into every program that
//! embeds weft, for a page one thread can serve in microseconds. The thread is
//! outside the shards and never sends them anything: it renders from the counters
//! the shards publish ([`ShardStats`]), so a scrape costs a shard nothing.
//!
//! One request per connection, handled in turn. A client gets 2 s to send its
//! request head (at most 8 KiB) and 2 s to take the answer, so a stuck client
//! delays the next scrape by at most that, and cannot hold the thread.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::metrics::registry::Registry;
use crate::metrics::render::{render, CONTENT_TYPE};
use crate::runtime::ShardStats;

/// The largest request head read.
const MAX_HEAD: usize = 8 * 1024;
/// How long a client may take to send its request or read the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// A running exporter: the thread serving `/metrics`. Dropping it stops the thread.
pub struct Exporter {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Exporter {
    /// Serves `stats` (one entry per shard) and `registry` on `listener` from a new
    /// thread named `weft-metrics`.
    ///
    /// # Errors
    /// The OS error if the listener's address cannot be read or the thread cannot
    /// be spawned.
    pub fn spawn(
        listener: TcpListener,
        stats: Vec<Arc<ShardStats>>,
        registry: Registry,
    ) -> io::Result<Exporter> {
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("weft-metrics".into())
            .spawn(move || serve(listener, &stats, &registry, &flag))?;
        Ok(Exporter {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// Returns the address the exporter listens on (the real port for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Returns the page's URL, `http://ADDR/metrics`.
    pub fn url(&self) -> String {
        format!("http://{}/metrics", self.addr)
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // The thread waits in accept: a connection wakes it to see the flag. If
        // that connection cannot be made, leave the thread rather than hang here.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => [127, 0, 0, 1].into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        if TcpStream::connect_timeout(&wake, Duration::from_secs(1)).is_ok() {
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }
}

fn serve(listener: TcpListener, stats: &[Arc<ShardStats>], registry: &Registry, stop: &AtomicBool) {
    for conn in listener.incoming() {
        if stop.load(Ordering::Acquire) {
            return;
        }
        match conn {
            Ok(stream) => {
                if let Err(e) = answer(stream, stats, registry) {
                    tracing::debug!("metrics: a scrape failed: {e}");
                }
            }
            Err(e) => {
                // EMFILE and the like: back off instead of spinning.
                tracing::warn!("metrics: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// What the request asked for.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    /// `GET` (or `HEAD`, without the body) of `/metrics`.
    Metrics {
        head_only: bool,
    },
    /// `GET /`: a pointer to `/metrics`.
    Index {
        head_only: bool,
    },
    NotFound,
    MethodNotAllowed,
    Malformed,
}

/// Parses a request head's first line.
fn parse(head: &[u8]) -> Request {
    let line = match head.split(|&b| b == b'\n').next() {
        Some(l) => String::from_utf8_lossy(l).trim_end().to_string(),
        None => return Request::Malformed,
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Request::Malformed;
    };
    if !version.starts_with("HTTP/1.") {
        return Request::Malformed;
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Request::MethodNotAllowed,
    };
    let path = target.split('?').next().unwrap_or("");
    match path {
        "/metrics" => Request::Metrics { head_only },
        "/" => Request::Index { head_only },
        _ => Request::NotFound,
    }
}

/// Reads until the end of the request head (`\r\n\r\n`), at most [`MAX_HEAD`].
fn read_head(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(head);
        }
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.len() >= MAX_HEAD {
            return Ok(head);
        }
    }
}

fn answer(mut stream: TcpStream, stats: &[Arc<ShardStats>], registry: &Registry) -> io::Result<()> {
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let head = read_head(&mut stream)?;
    let (status, content_type, body, head_only) = match parse(&head) {
        Request::Metrics { head_only } => {
            ("200 OK", CONTENT_TYPE, render(stats, registry), head_only)
        }
        Request::Index { head_only } => (
            "200 OK",
            "text/html; charset=utf-8",
            "<html><body><a href=\"/metrics\">/metrics</a></body></html>\n".to_string(),
            head_only,
        ),
        Request::NotFound => (
            "404 Not Found",
            "text/plain",
            "not found: try /metrics\n".into(),
            false,
        ),
        Request::MethodNotAllowed => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET and HEAD\n".into(),
            false,
        ),
        Request::Malformed => (
            "400 Bad Request",
            "text/plain",
            "bad request\n".into(),
            false,
        ),
    };
    let allow = if status.starts_with("405") {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    stream.write_all(&out)?;
    let _ = stream.shutdown(Shutdown::Write);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_sorted_by_their_first_line() {
        assert_eq!(
            parse(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Request::Metrics { head_only: false }
        );
        assert_eq!(
            parse(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Request::Metrics { head_only: false }
        );
        assert_eq!(
            parse(b"HEAD /metrics HTTP/1.1\r\n\r\n"),
            Request::Metrics { head_only: true }
        );
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\n\r\n"),
            Request::Index { head_only: false }
        );
        assert_eq!(parse(b"GET /other HTTP/1.1\r\n\r\n"), Request::NotFound);
        assert_eq!(
            parse(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Request::MethodNotAllowed
        );
        assert_eq!(parse(b"garbage"), Request::Malformed);
        assert_eq!(parse(b""), Request::Malformed);
    }

    #[test]
    fn a_scrape_gets_the_page_and_dropping_stops_the_thread() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let stats = vec![Arc::new(ShardStats::default())];
        let exporter = Exporter::spawn(listener, stats, Registry::new()).unwrap();
        let mut s = TcpStream::connect(exporter.local_addr()).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut page = String::new();
        s.read_to_string(&mut page).unwrap();
        assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
        assert!(page.contains("weft_connections_accepted_total{shard=\"0\"} 0\n"));
        drop(exporter);
    }
}
