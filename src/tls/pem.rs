//! Reading certificates and keys from PEM files (rustls-pki-types' PEM parser).
//!
//! Twisted's rule is kept: one PEM file may hold both the key and the certificate
//! (`certKey` defaults to `privateKey`). A certificate chain file that holds no
//! certificate is an error, not an empty chain.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;

use super::error::TlsConfigError;
use super::provider::provider;

fn pem_error(path: &Path, e: pem::Error) -> TlsConfigError {
    match e {
        pem::Error::Io(error) => TlsConfigError::Read {
            path: path.to_path_buf(),
            error,
        },
        other => TlsConfigError::BadPem {
            path: path.to_path_buf(),
            error: other.to_string(),
        },
    }
}

/// Reads every certificate in a PEM file, in order; none is an error.
///
/// # Errors
/// [`TlsConfigError`] if the file cannot be read, is malformed, or holds no certificate.
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(TlsConfigError::NoItem {
            path: path.to_path_buf(),
            what: "certificate",
        });
    }
    Ok(certs)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
///
/// # Errors
/// [`TlsConfigError`] if the file cannot be read, is malformed, or holds no key.
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsConfigError::NoItem {
            path: path.to_path_buf(),
            what: "private key",
        },
        other => pem_error(path, other),
    })
}

/// Loads a certificate chain and its key: the certificates of `cert` (then those
/// of `extra_chain`), and the key of `key`; checks that the key matches.
///
/// # Errors
/// [`TlsConfigError`] for an unreadable file, a missing item, or a key rustls
/// cannot use or that does not match the certificate.
pub fn certified_key(
    key: &Path,
    cert: &Path,
    extra_chain: Option<&Path>,
) -> Result<Arc<CertifiedKey>, TlsConfigError> {
    let mut chain = certificates(cert)?;
    if let Some(extra) = extra_chain {
        chain.extend(certificates(extra)?);
    }
    let der = private_key(key)?;
    let ck = CertifiedKey::from_der(chain, der, &provider()).map_err(|error| {
        TlsConfigError::Rustls {
            context: format!(
                "privateKey {} with certificate {}",
                key.display(),
                cert.display()
            ),
            error,
        }
    })?;
    Ok(Arc::new(ck))
}

/// Reads a CA file into a root store (for `clientCA=` and `trustRoots=`).
///
/// # Errors
/// [`TlsConfigError`] if the file cannot be read or holds no usable certificate.
pub fn root_store(path: &Path) -> Result<RootCertStore, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    for c in certificates(path)? {
        roots.add(c).map_err(|error| TlsConfigError::Rustls {
            context: format!("CA certificate in {}", path.display()),
            error,
        })?;
    }
    Ok(roots)
}

/// Loads the system's trust roots (what a client trusts when `trustRoots` is not
/// given). Certificates the platform store holds but rustls cannot parse are skipped.
///
/// # Errors
/// [`TlsConfigError::NoItem`] if the system store has no usable certificate.
pub fn system_roots() -> Result<RootCertStore, TlsConfigError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (_added, _skipped) = roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        return Err(TlsConfigError::NoItem {
            path: "the system trust store".into(),
            what: "certificate",
        });
    }
    Ok(roots)
}
