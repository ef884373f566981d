//! A line logger: every line received is appended to a file with `\n` (the servers
//! howto's `LoggingProtocol` and `LogfileFactory`). Nothing is sent on the wire.
//!
//! As in Twisted, the file is opened (append mode, created if missing) in
//! [`start_factory`](Factory::start_factory) and closed in
//! [`stop_factory`](Factory::stop_factory); with weft that happens on every shard, so
//! each shard has its own descriptor on the same file.
//!
//! # Lines are never torn or interleaved
//! Each shard keeps a buffer of *whole* lines (`line + "\n"`) and writes it with a
//! single `write(2)` on its `O_APPEND` descriptor. POSIX makes setting the offset to
//! the end and writing one atomic step for a regular file ("no intervening file
//! modification"), so the bytes of one `write` land contiguously whatever the other
//! shards (or processes) append; since a buffer only ever holds whole lines, no line
//! is ever split. Within a shard, callbacks never run concurrently, so lines from
//! different connections cannot mix either.
//!
//! Why buffer instead of one `write` per line: lines arriving together from many
//! connections on a shard cost one system call, not one each. The buffer is flushed
//! by a task spawned when it stops being empty, which yields once (glommio polls a
//! new task at once, inside the spawning callback) and so runs after the tasks
//! already queued on the shard: a line reaches the file a turn after it was read. It
//! is also flushed at once when it passes [`FLUSH_THRESHOLD`], and in `stop_factory`. A
//! graceful stop (SIGTERM) drains the connections first and then calls
//! `stop_factory`, so no line that was read is lost. What a crash loses is at most
//! the lines of the current turn.
//!
//! Caveats: the write is blocking (a page-cache write; weft has no async file I/O
//! in the protocol layer). A short write, which for a regular file only happens on
//! an error such as a full disk, is retried for the rest, and those bytes may then
//! land after another shard's. A line not ended by the delimiter when the
//! connection closes is dropped, as Twisted's `LineReceiver` drops it. Lines
//! longer than the limit close the connection (Twisted's default).

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::address::Address;
use crate::factory::Factory;
use crate::protocols::{LineControl, LineHandler, LineReceiver};

/// A shard's buffer is written out as soon as it holds this many bytes.
pub const FLUSH_THRESHOLD: usize = 64 * 1024;

/// A shard's open log file and its buffer of whole lines.
#[derive(Default)]
struct LogFile {
    file: Option<File>,
    buf: Vec<u8>,
    flush_scheduled: bool,
}

impl LogFile {
    fn flush(&mut self) {
        self.flush_scheduled = false;
        if self.buf.is_empty() {
            return;
        }
        match &mut self.file {
            Some(f) => {
                if let Err(e) = f.write_all(&self.buf) {
                    tracing::error!("logger: writing {} bytes failed: {e}", self.buf.len());
                }
            }
            None => tracing::error!("logger: {} bytes arrived with no file open", self.buf.len()),
        }
        self.buf.clear();
        if self.buf.capacity() > 4 * FLUSH_THRESHOLD {
            self.buf.shrink_to(FLUSH_THRESHOLD);
        }
    }
}

/// Twisted's `LogfileFactory(fileName)`: shard-local, shares its open file with its
/// protocols.
pub struct LoggerFactory {
    path: PathBuf,
    log: Rc<RefCell<LogFile>>,
}

impl LoggerFactory {
    /// Creates the factory for `path`; the file is opened by `start_factory`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        LoggerFactory {
            path: path.into(),
            log: Rc::default(),
        }
    }

    /// Returns the file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Builds one connection's protocol.
    pub fn protocol(&self) -> LoggerProtocol {
        LineReceiver::new(Logger {
            log: Rc::clone(&self.log),
        })
    }

    /// Opens the file for appending; `weft serve logger` calls this before starting
    /// so that a bad path fails with a message, not a panic on a shard.
    ///
    /// # Errors
    /// The file cannot be opened for appending.
    pub fn open(path: &Path) -> std::io::Result<File> {
        OpenOptions::new().append(true).create(true).open(path)
    }
}

impl Factory for LoggerFactory {
    type Protocol = LoggerProtocol;

    fn build_protocol(&mut self, _peer: &Address) -> Option<LoggerProtocol> {
        Some(self.protocol())
    }

    /// Opens the file in append mode (Twisted: `open(fileName, "a")`).
    ///
    /// # Panics
    /// If the file cannot be opened: the shard then fails to start with the message.
    fn start_factory(&mut self) {
        let file = Self::open(&self.path)
            .unwrap_or_else(|e| panic!("cannot open {} for appending: {e}", self.path.display()));
        self.log.borrow_mut().file = Some(file);
    }

    /// Writes what is buffered and closes the file.
    fn stop_factory(&mut self) {
        let mut log = self.log.borrow_mut();
        log.flush();
        log.file = None;
    }
}

/// Twisted's `LoggingProtocol`: appends each line and `\n` to the factory's file.
pub struct Logger {
    log: Rc<RefCell<LogFile>>,
}

impl LineHandler for Logger {
    fn line_received(&mut self, line: &[u8], t: &mut LineControl<'_>) {
        let schedule = {
            let mut log = self.log.borrow_mut();
            log.buf.reserve(line.len() + 1);
            log.buf.extend_from_slice(line);
            log.buf.push(b'\n');
            if log.buf.len() >= FLUSH_THRESHOLD {
                log.flush();
                false
            } else {
                !std::mem::replace(&mut log.flush_scheduled, true)
            }
        };
        if schedule {
            let shared = Rc::clone(&self.log);
            // glommio polls a spawned future once at once, inside this callback:
            // yield first so the flush runs on a later turn.
            t.reactor().spawn_local(async move {
                YieldNow(false).await;
                shared.borrow_mut().flush();
            });
        }
    }
}

/// Returns `Pending` once (waking itself), then `Ready`: "run the rest later".
struct YieldNow(bool);

impl std::future::Future for YieldNow {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if std::mem::replace(&mut self.0, true) {
            std::task::Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    }
}

/// The protocol a [`LoggerFactory`] builds.
pub type LoggerProtocol = LineReceiver<Logger>;
