//! Why a TLS configuration could not be built or reloaded.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why TLS settings were rejected: a file that cannot be read, PEM without the
/// expected item, a key that does not match its certificate, an unsupported method.
/// The message names the file or option.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// The endpoint string did not parse.
    Endpoint(crate::endpoints::EndpointError),
    /// A file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        error: io::Error,
    },
    /// A PEM file holds no item of the kind wanted (a certificate, a private key).
    NoItem {
        /// The file.
        path: PathBuf,
        /// What was looked for, such as "certificate" or "private key".
        what: &'static str,
    },
    /// A PEM file is malformed.
    BadPem {
        /// The file.
        path: PathBuf,
        /// What the PEM parser said.
        error: String,
    },
    /// rustls refused the setting (a key it cannot use, a key that does not match
    /// the certificate, a CA file it cannot use).
    Rustls {
        /// What was being set up, such as "privateKey server.pem".
        context: String,
        /// The rustls error.
        error: rustls::Error,
    },
    /// An option value is not acceptable (an old `sslmethod`, an empty ALPN name,
    /// a bad server name).
    BadOption {
        /// The option.
        option: &'static str,
        /// Why.
        reason: String,
    },
}

impl fmt::Display for TlsConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsConfigError::Endpoint(e) => write!(f, "bad endpoint: {e}"),
            TlsConfigError::Read { path, error } => {
                write!(f, "cannot read {}: {error}", path.display())
            }
            TlsConfigError::NoItem { path, what } => {
                write!(f, "{} holds no {what}", path.display())
            }
            TlsConfigError::BadPem { path, error } => {
                write!(f, "{} is not valid PEM: {error}", path.display())
            }
            TlsConfigError::Rustls { context, error } => write!(f, "{context}: {error}"),
            TlsConfigError::BadOption { option, reason } => write!(f, "`{option}`: {reason}"),
        }
    }
}

impl std::error::Error for TlsConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsConfigError::Endpoint(e) => Some(e),
            TlsConfigError::Read { error, .. } => Some(error),
            TlsConfigError::Rustls { error, .. } => Some(error),
            _ => None,
        }
    }
}
