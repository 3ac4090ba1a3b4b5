//! A certificate authority made in the test, and a server certificate from it for
//! localhost and 127.0.0.1: a gateway behind a company's own CA.

use std::path::Path;

pub type Ca = rcgen::CertifiedIssuer<'static, rcgen::KeyPair>;

pub fn ca(name: &str) -> Ca {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap()
}

/// Writes `gateway.crt`, `gateway.key` and `ca.pem` into `dir`; returns the CA and the
/// gateway configuration's `[tls]` section naming the first two.
pub fn server_files(dir: &Path) -> (Ca, String) {
    let ca = ca("Firebreak test CA");
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params
        .subject_alt_names
        .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let cert = params.signed_by(&key, &ca).unwrap();
    std::fs::write(dir.join("gateway.crt"), cert.pem()).unwrap();
    std::fs::write(dir.join("gateway.key"), key.serialize_pem()).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    let tls = format!(
        "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        dir.join("gateway.crt").display(),
        dir.join("gateway.key").display()
    );
    (ca, tls)
}
