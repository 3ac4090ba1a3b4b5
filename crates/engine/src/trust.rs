//! Which servers the console trusts over TLS: what the operating system trusts (through
//! rustls-platform-verifier: the OS certificate store on Linux, the system verifier on
//! macOS and Windows), plus, per cluster, an optional CA certificate file for a gateway
//! behind a company's own certificate authority. The event stream and the action client
//! use the same configuration, so a gateway either works on both or fails on both with
//! the same message.

use std::path::Path;
use std::sync::Arc;

/// The TLS client configuration for a cluster; `ca_file` adds its certificates (PEM) as
/// trusted roots. The error names the file and says what is wrong with it.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    firebreak_common::process::install_tls_provider();
    let extra = match ca_file {
        Some(path) => read_ca_file(path)?,
        None => Vec::new(),
    };
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())
            .map_err(|e| format!("cannot set up certificate checks: {e}"))?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

pub use firebreak_common::certs::read_ca_file;

/// Says what a TLS failure means for the engineer, when it is about trust: a server whose
/// certificate no trusted CA signed gets a message naming where trust comes from.
pub fn explain(error: &str, ca_file: Option<&Path>) -> String {
    let lower = error.to_ascii_lowercase();
    let untrusted = lower.contains("unknownissuer")
        || lower.contains("unknown issuer")
        || lower.contains("badsignature")
        || lower.contains("certificate is not trusted")
        || lower.contains("invalid peer certificate");
    if !untrusted {
        return error.to_owned();
    }
    let trusted = match ca_file {
        Some(p) => format!("the operating system's store and the CA file {}", p.display()),
        None => "the operating system's store (set a CA file for this cluster if its gateway uses a company CA)".to_owned(),
    };
    format!(
        "the server's certificate is not signed by a CA this console trusts ({trusted}): {error}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_certificates_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").expect("write");
        let err = read_ca_file(&path).expect_err("no certificate");
        assert!(err.contains("holds no certificate"), "{err}");
        assert!(err.contains("ca.pem"), "{err}");
        let missing = read_ca_file(&dir.path().join("absent.pem")).expect_err("missing");
        assert!(missing.contains("cannot read the CA file"), "{missing}");
    }

    #[test]
    fn untrusted_certificates_are_explained_and_other_errors_kept() {
        let e = "invalid peer certificate: UnknownIssuer";
        let said = explain(e, Some(Path::new("/etc/corp-ca.pem")));
        assert!(
            said.contains("not signed by a CA this console trusts"),
            "{said}"
        );
        assert!(said.contains("/etc/corp-ca.pem"), "{said}");
        assert_eq!(explain("connection refused", None), "connection refused");
    }
}
