//! Where the binary's output goes, and why writing it can never stop the server.
//!
//! Log events go through `tracing` to stderr or to `--log-file`, as text or JSON,
//! filtered by a filter that SIGHUP can replace. Every write ignores its error: when
//! whatever reads stderr has gone away (`weft … 2>&1 | head -1`), a failed write
//! must not panic, for the signal thread logs before it stops the server and the
//! main thread prints the per-shard summary before it exits.
//!
//! The log file is reopened by SIGUSR1 (logrotate moves it, then signals): the new
//! file is opened first and swapped in under a lock, so no event is lost or torn.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};

use crate::cli::LogFormat;

/// Writes a line to stderr, ignoring a closed or full stream.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
pub(crate) use say;

/// A log file that can be reopened under the same path.
pub struct LogFile {
    path: PathBuf,
    file: Mutex<File>,
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl LogFile {
    /// Opens `path` for appending.
    ///
    /// # Errors
    /// The OS error, with the path.
    pub fn open(path: &Path) -> Result<LogFile, String> {
        let file = open_append(path)
            .map_err(|e| format!("cannot open the log file {}: {e}", path.display()))?;
        Ok(LogFile {
            path: path.to_path_buf(),
            file: Mutex::new(file),
        })
    }

    /// Opens the path again (after logrotate moved the old file) and writes to the
    /// new file from now on; on failure the old file stays in use.
    pub fn reopen(&self) {
        match open_append(&self.path) {
            Ok(f) => *self.file.lock().unwrap_or_else(|e| e.into_inner()) = f,
            Err(e) => tracing::error!("cannot reopen the log file {}: {e}", self.path.display()),
        }
    }
}

/// Where events are written.
#[derive(Clone)]
pub enum Target {
    /// stderr.
    Stderr,
    /// A log file.
    File(Arc<LogFile>),
}

/// One event's writer: writes whole, and never reports an error (there is nowhere
/// to report it, and failing must not stop anything).
pub struct EventWriter<'a>(&'a Target);

impl Write for EventWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let _ = match self.0 {
            Target::Stderr => io::stderr().write_all(buf),
            Target::File(f) => f
                .file
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .write_all(buf),
        };
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Target {
    type Writer = EventWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        EventWriter(self)
    }
}

/// Replaces the filter while running (SIGHUP).
pub type FilterHandle = reload::Handle<EnvFilter, Registry>;

/// Installs the global subscriber; returns the handle that changes its filter.
pub fn init(target: Target, format: LogFormat, filter: EnvFilter) -> FilterHandle {
    let ansi = matches!(target, Target::Stderr) && io::IsTerminal::is_terminal(&io::stderr());
    let (filter, handle) = reload::Layer::new(filter);
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(target)
        .with_ansi(ansi)
        .log_internal_errors(false);
    let fmt: Box<dyn Layer<_> + Send + Sync> = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().boxed(),
    };
    let _ = Registry::default().with(filter).with(fmt).try_init();
    handle
}

/// The filter: `level` if given, else RUST_LOG, else `fallback` (the file's), else
/// info.
///
/// # Errors
/// A message if the filter does not parse.
pub fn filter(level: Option<&str>, fallback: Option<&str>) -> Result<EnvFilter, String> {
    let text = level
        .map(str::to_string)
        .or_else(|| std::env::var("RUST_LOG").ok().filter(|s| !s.is_empty()))
        .or_else(|| fallback.map(str::to_string))
        .unwrap_or_else(|| "info".to_string());
    EnvFilter::try_new(&text).map_err(|e| format!("bad log filter {text:?}: {e}"))
}
