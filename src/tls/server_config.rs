//! `ServerTls`: a server's rustls config, shared by every shard and reloadable.
//!
//! ```text
//!  ServerTls (Arc, one per ssl: endpoint)      shard s: TlsServerFactory
//!   ├ options (the file paths)                   cached (generation, Arc<ServerConfig>)
//!   ├ generation: AtomicU64  ◄── one load per accept ──┘  refreshed when it moved
//!   └ current: Mutex<Arc<ServerConfig>>  ◄── reload(): re-read files, swap, generation+1
//! ```
//!
//! A reload builds a whole new `ServerConfig` from the files; if any file is bad the
//! old config stays and the error says why. Connections already up keep the session
//! they negotiated; only handshakes that start after the swap see the new files.
//! The session cache starts empty: a session made under the old certificate is
//! not resumed after the reload, so every new connection is shown the new one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;

use super::error::TlsConfigError;
use super::options::ServerTlsOptions;
use super::pem::{certified_key, root_store};
use super::provider::provider;
use super::sni::SniResolver;

/// A server endpoint's TLS configuration: built from [`ServerTlsOptions`],
/// shared by the shards, reloadable from disk.
#[derive(Debug)]
pub struct ServerTls {
    options: ServerTlsOptions,
    generation: AtomicU64,
    current: Mutex<Arc<ServerConfig>>,
}

impl ServerTls {
    /// Reads the files named by `options` and builds the config.
    ///
    /// # Errors
    /// [`TlsConfigError`] naming the file or option that is wrong.
    pub fn load(options: ServerTlsOptions) -> Result<Arc<ServerTls>, TlsConfigError> {
        let config = build(&options)?;
        Ok(Arc::new(ServerTls {
            options,
            generation: AtomicU64::new(0),
            current: Mutex::new(Arc::new(config)),
        }))
    }

    /// Re-reads the files and, if they are good, makes new handshakes use them.
    /// Connections already up are untouched.
    ///
    /// # Errors
    /// [`TlsConfigError`] if a file is bad; the config in use is then kept.
    pub fn reload(&self) -> Result<(), TlsConfigError> {
        let new = build(&self.options)?;
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(new);
        self.generation.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// Returns the config in use now.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Returns how many successful reloads there have been.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Returns the options this config was built from.
    pub fn options(&self) -> &ServerTlsOptions {
        &self.options
    }
}

/// Builds a rustls server config from the options. Each build has a fresh session
/// cache, so a session made under an old certificate is not resumed after a reload.
fn build(o: &ServerTlsOptions) -> Result<ServerConfig, TlsConfigError> {
    let p = provider();
    let builder = ServerConfig::builder_with_provider(p.clone())
        .with_protocol_versions(o.method.versions())
        .map_err(|error| TlsConfigError::Rustls {
            context: "sslmethod".into(),
            error,
        })?;
    let builder = match &o.client_ca {
        Some(ca) => {
            let roots = Arc::new(root_store(ca)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, p)
                .build()
                .map_err(|e| TlsConfigError::BadOption {
                    option: "clientCA",
                    reason: e.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let default = match &o.private_key {
        Some(key) => {
            let cert = o.cert_key.as_deref().unwrap_or(key);
            Some(certified_key(key, cert, o.extra_cert_chain.as_deref())?)
        }
        None => None,
    };
    let mut resolver = SniResolver::new(default);
    if let Some(dir) = &o.sni_directory {
        resolver.load_dir(dir)?;
    }
    let mut config = builder.with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = o.alpn.clone();
    // After the handshake rustls hands the keys to weft's record layer
    // (src/tls/traffic.rs), which allocates nothing per record.
    config.enable_secret_extraction = true;
    Ok(config)
}
