//! `sip.tls`: the certificate and key zentrale presents on its SIP-TLS
//! listeners, and the authorities it trusts when it opens a TLS connection
//! itself. The files are read and checked when the config is loaded (so
//! `zentrale check`, start and reload refuse a missing, unreadable or
//! broken PEM file with its `file:line:col`), and the ready rustls configs
//! travel with the [`Config`](super::Config): a reload swaps them in for
//! new connections while established ones keep their session.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The loaded `sip.tls` section.
#[derive(Clone)]
pub struct TlsConfig {
    /// PEM file with the certificate chain, leaf first (`cert`).
    pub cert: PathBuf,
    /// PEM file with the private key of the leaf certificate (`key`).
    pub key: PathBuf,
    /// PEM file with the authorities trusted for connections zentrale
    /// opens (`ca`); `None`: zentrale opens no TLS connections itself.
    pub ca: Option<PathBuf>,
    /// What the listeners hand each new handshake.
    pub server: Arc<rustls::ServerConfig>,
    /// What connections zentrale opens use (`None` without `ca`).
    pub client: Option<Arc<rustls::ClientConfig>>,
}

/// Two configs are the same when they name the same files: the contents
/// are read again on every reload anyway.
impl PartialEq for TlsConfig {
    fn eq(&self, other: &Self) -> bool {
        self.cert == other.cert && self.key == other.key && self.ca == other.ca
    }
}

impl Eq for TlsConfig {}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("ca", &self.ca)
            .finish_non_exhaustive()
    }
}

/// Which key of `sip.tls` a problem belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TlsKey {
    Cert,
    Key,
    Ca,
}

/// A problem with one of the files: which key, what is wrong, what to do.
pub(crate) struct TlsProblem {
    pub key: TlsKey,
    pub message: String,
    pub hint: String,
}

fn problem(key: TlsKey, message: String, hint: &str) -> TlsProblem {
    TlsProblem {
        key,
        message,
        hint: hint.to_string(),
    }
}

/// The crypto provider: ring, which builds without cmake or nasm (the
/// aws-lc-rs provider needs both). rustls deprecates it for lacking
/// post-quantum key exchange; SIP phones offer none yet.
#[allow(deprecated)]
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn readable(key: TlsKey, path: &Path) -> Result<(), TlsProblem> {
    std::fs::metadata(path).and_then(|_| std::fs::File::open(path).map(drop)).map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::NotFound => "check the path (relative paths are resolved against the config file's directory)",
            std::io::ErrorKind::PermissionDenied => "give zentrale's user read access to the file",
            _ => "name a readable PEM file",
        };
        problem(key, format!("cannot read `{}`: {e}", path.display()), hint)
    })
}

fn certificates(key: TlsKey, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsProblem> {
    readable(key, path)?;
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            problem(
                key,
                format!("`{}` is not a valid PEM file: {e}", path.display()),
                "give a PEM file with `-----BEGIN CERTIFICATE-----` blocks",
            )
        })?;
    if certs.is_empty() {
        return Err(problem(
            key,
            format!("`{}` holds no certificate", path.display()),
            "give a PEM file with `-----BEGIN CERTIFICATE-----` blocks",
        ));
    }
    Ok(certs)
}

/// Reads and checks the files and builds the rustls configs.
pub(crate) fn load(
    cert: PathBuf,
    key: PathBuf,
    ca: Option<PathBuf>,
) -> Result<TlsConfig, TlsProblem> {
    let chain = certificates(TlsKey::Cert, &cert)?;
    readable(TlsKey::Key, &key)?;
    let private = PrivateKeyDer::from_pem_file(&key).map_err(|e| {
        problem(
            TlsKey::Key,
            format!("`{}` holds no usable private key: {e}", key.display()),
            "give the PEM private key (PKCS#8, PKCS#1 or SEC1) that belongs to the certificate",
        )
    })?;
    let server = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| {
            problem(
                TlsKey::Cert,
                format!("TLS setup failed: {e}"),
                "report this as a bug",
            )
        })?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| {
            problem(
                TlsKey::Key,
                format!(
                    "the key `{}` does not fit the certificate `{}`: {e}",
                    key.display(),
                    cert.display()
                ),
                "give the private key that belongs to the first certificate in `cert`",
            )
        })?;
    let client = match &ca {
        None => None,
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certificates(TlsKey::Ca, path)? {
                roots.add(c).map_err(|e| {
                    problem(
                        TlsKey::Ca,
                        format!("`{}` holds a certificate rustls cannot use: {e}", path.display()),
                        "give the PEM certificates of the authorities that sign your peers' certificates",
                    )
                })?;
            }
            let client = rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| {
                    problem(
                        TlsKey::Ca,
                        format!("TLS setup failed: {e}"),
                        "report this as a bug",
                    )
                })?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Some(Arc::new(client))
        }
    };
    Ok(TlsConfig {
        cert,
        key,
        ca,
        server: Arc::new(server),
        client,
    })
}
