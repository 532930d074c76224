//! Client-side mutual TLS from PEM files, and a handshake probe that tells a certificate the
//! nodes refuse from a node that is down.
//!
//! Why the probe: in TLS 1.3 the server checks the client's certificate after the client has
//! finished its side of the handshake, so a refused certificate reaches a gRPC call only as a
//! broken connection (the node's alert is never read), which looks like an outage and would be
//! retried until the deadline. The probe reads the node's first bytes after the handshake: the
//! HTTP/2 preface of a node that accepted us, or the alert of one that did not.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;
use tokio::io::AsyncReadExt;
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

/// What a handshake probe found.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The TLS handshake failed on a certificate or protocol error, on either side: the same
    /// files will be refused by every node of the cluster.
    #[error("{endpoint}: TLS handshake refused: {reason}")]
    Refused { endpoint: String, reason: String },
    /// The files do not make a TLS configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
    /// Nothing conclusive (no connection, a reset, no answer in time): let the calls decide.
    #[error("{endpoint}: {reason}")]
    Inconclusive { endpoint: String, reason: String },
}

/// How long a probe waits for the connection, the handshake, and the node's first bytes.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Connects to `endpoint`, handshakes with `ca`, `cert` and `key` as a client would, and waits
/// (at most [`PROBE_TIMEOUT`]) for the node's first bytes. `Ok` when the node accepted us.
pub async fn probe_handshake(endpoint: &str, ca: &Path, cert: &Path, key: &Path) -> Result<(), ProbeError> {
    let config = rustls_client_config(ca, cert, key)?;
    let inconclusive = |reason: String| ProbeError::Inconclusive { endpoint: endpoint.to_string(), reason };
    let refused = |reason: String| ProbeError::Refused { endpoint: endpoint.to_string(), reason };
    let probe = async {
        let tcp = tokio::net::TcpStream::connect(endpoint).await.map_err(|e| inconclusive(e.to_string()))?;
        let name = ServerName::try_from(NODE_SERVER_NAME).expect("a valid DNS name");
        let mut tls =
            tokio_rustls::TlsConnector::from(config).connect(name, tcp).await.map_err(|e| match rustls_error(&e) {
                Some(tls) => refused(tls.to_string()),
                None => inconclusive(e.to_string()),
            })?;
        let mut first = [0u8; 1];
        match tls.read(&mut first).await {
            Ok(0) => Err(refused("the node closed the connection right after the handshake".into())),
            Ok(_) => Ok(()),
            Err(e) => Err(match rustls_error(&e) {
                Some(tls) => refused(tls.to_string()),
                None => inconclusive(e.to_string()),
            }),
        }
    };
    match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
        Ok(result) => result,
        Err(_) => Err(inconclusive(format!("no answer within {PROBE_TIMEOUT:?}"))),
    }
}

fn rustls_error(error: &std::io::Error) -> Option<&rustls::Error> {
    error.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

/// The rustls configuration [`client_tls`] amounts to: TLS 1.3, ALPN h2, our CA only.
fn rustls_client_config(ca: &Path, cert: &Path, key: &Path) -> Result<Arc<rustls::ClientConfig>, ProbeError> {
    let config_error = |what: &str, e: &dyn std::fmt::Display| ProbeError::Config(format!("{what}: {e}"));
    let ca_pem = read(ca).map_err(|e| ProbeError::Config(e.to_string()))?;
    let cert_pem = read(cert).map_err(|e| ProbeError::Config(e.to_string()))?;
    let key_pem = read(key).map_err(|e| ProbeError::Config(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(&ca_pem) {
        roots.add(ca.map_err(|e| config_error("CA", &e))?).map_err(|e| config_error("CA", &e))?;
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| config_error("certificate", &e))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| config_error("key", &e))?;
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| config_error("protocol", &e))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| config_error("certificate/key", &e))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Probes every endpoint at once and goes by the first conclusive answer: `Err` if it is a
/// refusal (or the files are unusable), `Ok` if a node accepted us or none answered in time
/// (the calls themselves then retry and report). Every node of a cluster trusts the same CA,
/// so one node's answer is everyone's.
pub async fn check_accepted(endpoints: &[String], ca: &Path, cert: &Path, key: &Path) -> Result<(), ProbeError> {
    use futures::StreamExt;
    let mut probes: futures::stream::FuturesUnordered<_> =
        endpoints.iter().map(|endpoint| probe_handshake(endpoint, ca, cert, key)).collect();
    while let Some(answer) = probes.next().await {
        match answer {
            Ok(()) => return Ok(()),
            Err(ProbeError::Inconclusive { endpoint, reason }) => {
                tracing::debug!(%endpoint, %reason, "TLS probe inconclusive");
            }
            Err(refusal) => return Err(refusal),
        }
    }
    Ok(())
}
