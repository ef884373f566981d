//! Choosing the certificate by the client's server name (SNI): Twisted 26.4's
//! `contextForServerName`, and txsni's directory of `NAME.pem` files.
//!
//! A directory holds one PEM file per name, `NAME.pem`, with the key and the chain
//! in it (`example.com.pem`, `*.example.org.pem` for a wildcard). A name is looked
//! up exactly (lower case), then as a wildcard for its parent domain, then the
//! endpoint's `privateKey`/`certKey` certificate is used; with none of these the
//! handshake fails. The resolver also notes the name asked for, for the session's
//! `TlsInfo::server_name`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::error::TlsConfigError;
use super::pem::certified_key;

/// Picks a certificate by server name, falling back to a default one.
#[derive(Debug, Default)]
pub struct SniResolver {
    by_name: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl SniResolver {
    /// Creates a resolver that always answers with `default` (if any).
    pub fn new(default: Option<Arc<CertifiedKey>>) -> SniResolver {
        SniResolver {
            by_name: HashMap::new(),
            default,
        }
    }

    /// Adds the certificate for `name` (`*.example.org` for a wildcard).
    pub fn add(&mut self, name: &str, key: Arc<CertifiedKey>) {
        self.by_name.insert(name.to_ascii_lowercase(), key);
    }

    /// Loads every `NAME.pem` of `dir` (key and chain in one file).
    ///
    /// # Errors
    /// [`TlsConfigError`] if the directory cannot be read or any `.pem` in it is bad.
    pub fn load_dir(&mut self, dir: &Path) -> Result<usize, TlsConfigError> {
        let read = |error| TlsConfigError::Read {
            path: dir.to_path_buf(),
            error,
        };
        let mut n = 0;
        for entry in std::fs::read_dir(dir).map_err(read)? {
            let path = entry.map_err(read)?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("pem") {
                continue;
            }
            let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            let key = certified_key(&path, &path, None)?;
            self.add(name, key);
            n += 1;
        }
        Ok(n)
    }

    /// Returns the certificate for `name`: exact, then wildcard, then the default.
    pub fn lookup(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = name {
            let name = name.to_ascii_lowercase();
            if let Some(k) = self.by_name.get(&name) {
                return Some(k.clone());
            }
            if let Some((_, parent)) = name.split_once('.') {
                if let Some(k) = self.by_name.get(&format!("*.{parent}")) {
                    return Some(k.clone());
                }
            }
        }
        self.default.clone()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        REQUESTED.set(hello.server_name().map(str::to_string));
        self.lookup(hello.server_name())
    }
}

thread_local! {
    /// The name the last ClientHello on this thread asked for. rustls's unbuffered
    /// server connection does not tell the SNI name, so the resolver notes it
    /// here, from inside the session's own `process_tls_records` call, and the
    /// session takes it as soon as that call returns (a shard runs one session at
    /// a time, so no other ClientHello comes between).
    static REQUESTED: std::cell::Cell<Option<String>> = const { std::cell::Cell::new(None) };
}

/// Takes the name the last ClientHello on this thread asked for (see `REQUESTED`).
pub(crate) fn take_requested_name() -> Option<String> {
    REQUESTED.take()
}
