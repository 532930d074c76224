//! Client-side mutual TLS from PEM files.

use std::path::Path;

use tonic::transport::Certificate;
use tonic::transport::ClientTlsConfig;
use tonic::transport::Identity;

/// The DNS name every node certificate carries (besides its addresses), so that clients verify
/// nodes by one name whatever address they dial.
pub const NODE_SERVER_NAME: &str = "ledger-node";

#[derive(Debug, thiserror::Error)]
#[error("reading {path}: {source}")]
pub struct TlsFileError {
    pub path: String,
    pub source: std::io::Error,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsFileError> {
    std::fs::read(path).map_err(|source| TlsFileError { path: path.display().to_string(), source })
}

/// A client TLS configuration: trust `ca`, present `cert`/`key`, expect the node name.
pub fn client_tls(ca: &Path, cert: &Path, key: &Path) -> Result<ClientTlsConfig, TlsFileError> {
    Ok(ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(ca)?))
        .identity(Identity::from_pem(read(cert)?, read(key)?))
        .domain_name(NODE_SERVER_NAME))
}
