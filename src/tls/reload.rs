//! Reloading every `ssl:` endpoint's certificates at once: the SIGHUP hook.
//!
//! Each [`ServerTls`] built from an endpoint string by a `ServerBuilder` registers
//! itself here (weakly: a stopped server's configs just disappear). A program calls
//! [`reload_all`] from its SIGHUP handling; `weft serve` is meant to.

use std::sync::{Arc, Mutex, Weak};

use super::error::TlsConfigError;
use super::server_config::ServerTls;

static REGISTRY: Mutex<Vec<Weak<ServerTls>>> = Mutex::new(Vec::new());

/// Adds a config to the set [`reload_all`] reloads.
pub fn register(tls: &Arc<ServerTls>) {
    let mut r = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    r.retain(|w| w.strong_count() > 0);
    r.push(Arc::downgrade(tls));
}

/// What a reload of one endpoint's config did.
#[derive(Debug)]
pub struct ReloadOutcome {
    /// The key (or SNI directory) file the endpoint serves, for the log line.
    pub source: String,
    /// `Ok` if the new files are in use; the error if the old ones were kept.
    pub result: Result<(), TlsConfigError>,
}

/// Reloads every registered config from disk and logs each outcome; a config whose
/// new files are bad keeps the old ones.
pub fn reload_all() -> Vec<ReloadOutcome> {
    let live: Vec<Arc<ServerTls>> = {
        let r = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
        r.iter().filter_map(Weak::upgrade).collect()
    };
    live.iter()
        .map(|tls| {
            let o = tls.options();
            let source = o
                .private_key
                .as_ref()
                .or(o.sni_directory.as_ref())
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            let result = tls.reload();
            match &result {
                Ok(()) => tracing::info!("tls: reloaded {source}"),
                Err(e) => tracing::warn!("tls: kept the old certificate for {source}: {e}"),
            }
            ReloadOutcome { source, result }
        })
        .collect()
}
