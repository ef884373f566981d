//! Test certificates made at test time (rcgen): a CA, server and client
//! certificates signed by it, written as PEM files into a fresh temporary
//! directory. Shared by the unit tests and (through `#[path]`) the `tests/tls_*`
//! integration tests, so no private key is ever committed.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

/// A throwaway CA and the files it issued.
pub struct TestPki {
    /// The directory every file is written to.
    pub dir: PathBuf,
    ca: CertifiedIssuer<'static, KeyPair>,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl TestPki {
    /// Makes a new CA (its certificate in `ca.pem`) in a new temporary directory.
    pub fn new(tag: &str) -> TestPki {
        let dir = std::env::temp_dir().join(format!(
            "weft-tls-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("weft test CA {tag}"));
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key"))
            .expect("CA certificate");
        std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write ca.pem");
        TestPki { dir, ca }
    }

    /// The CA certificate's file.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// Issues a certificate for `names` (DNS names or IP addresses) and writes key
    /// and certificate into one PEM file, `file`, returning its path.
    pub fn issue(&self, file: &str, names: &[&str]) -> PathBuf {
        let path = self.dir.join(file);
        self.issue_to(&path, names);
        path
    }

    /// As [`issue`](Self::issue), to an explicit path (to overwrite a file in place).
    pub fn issue_to(&self, path: &Path, names: &[&str]) {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("params");
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.ca).expect("sign");
        let pem = format!("{}{}", key.serialize_pem(), cert.pem());
        // Write then rename, so a reader never sees half a file.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, pem).expect("write pem");
        std::fs::rename(&tmp, path).expect("rename pem");
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
