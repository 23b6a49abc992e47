//! TLS for client connections (rustls): loading the configured certificate and key.
//!
//! Owns building the acceptor. It never weakens rustls' defaults and never logs key material.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls;

use crate::error::GatewayError;

pub fn acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, GatewayError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| GatewayError::Tls(format!("cannot read gateway.tls_cert {}: {e}", cert.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| GatewayError::Tls(format!("gateway.tls_cert {} is not a PEM certificate chain: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(GatewayError::Tls(format!("gateway.tls_cert {} holds no certificate", cert.display())));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| GatewayError::Tls(format!("cannot read a private key from gateway.tls_key {}: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| GatewayError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| GatewayError::Tls(format!("certificate and key do not fit together: {e}")))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
