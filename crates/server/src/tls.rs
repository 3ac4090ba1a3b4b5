//! TLS a server terminates itself (wss and https over the accepted socket): the
//! certificate chain and key, PEM files named in its configuration.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The acceptor for `tls`; errors name the file and the configuration key.
pub fn acceptor(tls: &Tls) -> Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    firebreak_common::process::install_tls_provider();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .and_then(|certs| certs.collect())
        .map_err(|e| anyhow::anyhow!("tls.cert: cannot read {}: {e}", tls.cert.display()))?;
    if certs.is_empty() {
        bail!("tls.cert: {} holds no certificate", tls.cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key)
        .map_err(|e| anyhow::anyhow!("tls.key: cannot read {}: {e}", tls.key.display()))?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("tls: the certificate and the key do not go together")?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
