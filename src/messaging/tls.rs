//! TLS for the messengers: rustls with the ring crypto provider and the system's roots.
//!
//! In: the system's certificate store (`/etc/ssl/certs` and friends, or the files named by
//! `SSL_CERT_FILE` / `SSL_CERT_DIR`). Out: the root certificates and the crypto provider the
//! MQTT and HTTP clients are given, so neither pulls in aws-lc (which needs cmake) nor a
//! bundled root list that goes stale on a sensor left in the field for years.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;

use super::SetupError;

/// The crypto provider both clients use: ring.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The system's root certificates, read now; an error names `destination` and says how to
/// provide roots when none could be read.
pub(crate) fn system_roots(destination: &str) -> Result<Vec<CertificateDer<'static>>, SetupError> {
    let found = rustls_native_certs::load_native_certs();
    if found.certs.is_empty() {
        let why = found
            .errors
            .first()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        return Err(SetupError(format!(
            "{destination}: no system root certificates found for TLS{why}; install `ca-certificates` or point `SSL_CERT_FILE` at a PEM bundle"
        )));
    }
    Ok(found.certs)
}

/// A rustls client configuration trusting the system's roots, for `destination`.
pub(crate) fn client_config(destination: &str) -> Result<rustls::ClientConfig, SetupError> {
    let mut roots = rustls::RootCertStore::empty();
    let (added, _unparsable) = roots.add_parsable_certificates(system_roots(destination)?);
    if added == 0 {
        return Err(SetupError(format!(
            "{destination}: none of the system root certificates could be parsed; install `ca-certificates` or point `SSL_CERT_FILE` at a PEM bundle"
        )));
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| SetupError(format!("{destination}: TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}
