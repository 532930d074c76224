//! Transport security: TLS 1.3 only, mutual authentication on both listeners, and the
//! caller's identity from its certificate.
//!
//! tonic's own `ServerTlsConfig` cannot restrict the protocol version (it still accepts TLS
//! 1.2), so each listener runs its own rustls acceptor: TLS 1.3 only, a client certificate
//! signed by our CA required, ALPN `h2`. Each handshake runs in its own task under a timeout
//! and the finished streams are handed to tonic, which exposes the peer certificates.
//!
//! Identity: the certificate's subject common name is the caller's name (recorded in the
//! journal); its organizational unit is the role (`writer`, `reader`, `auditor`, `operator`,
//! `admin`, `node`). A certificate without a known role is refused.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpListener;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Certificate;
use tonic::transport::ClientTlsConfig;
use tonic::transport::Identity;

use crate::config::TlsFiles;
use crate::security::authz::Caller;
use crate::security::authz::Role;

/// The DNS name every node certificate carries; clients verify nodes by it.
pub const NODE_SERVER_NAME: &str = "ledger-node";
/// A handshake that takes longer is dropped (slowloris, half-open connections).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Accepted connections waiting for tonic, at most.
const ACCEPT_QUEUE: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {detail}")]
    Read { path: String, detail: String },
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The PEM material of one node (or client).
#[derive(Clone)]
pub struct TlsMaterial {
    ca_pem: Vec<u8>,
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Read { path: path.display().to_string(), detail: e.to_string() })
}

impl TlsMaterial {
    pub fn load(files: &TlsFiles) -> Result<TlsMaterial, TlsError> {
        Ok(TlsMaterial { ca_pem: read(&files.ca)?, cert_pem: read(&files.cert)?, key_pem: read(&files.key)? })
    }

    fn certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<_, _>>()
            .map_err(|e| TlsError::Config(format!("{what}: {e}")))?;
        if certs.is_empty() {
            return Err(TlsError::Config(format!("{what}: no certificate")));
        }
        Ok(certs)
    }

    /// The server side: TLS 1.3 only, client certificates from our CA required, ALPN h2.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for ca in Self::certs(&self.ca_pem, "CA")? {
            roots.add(ca).map_err(|e| TlsError::Config(format!("CA: {e}")))?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| TlsError::Config(format!("client verifier: {e}")))?;
        let key = PrivateKeyDer::from_pem_slice(&self.key_pem).map_err(|e| TlsError::Config(format!("key: {e}")))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(Self::certs(&self.cert_pem, "certificate")?, key)
            .map_err(|e| TlsError::Config(format!("certificate/key: {e}")))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }

    /// The client side (to peers, and to another site), presenting this node's certificate.
    pub fn client_config(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
            .domain_name(NODE_SERVER_NAME)
    }
}

/// Accepts TCP connections on `listener`, handshakes each (TLS 1.3, mutual) in its own task,
/// and yields the established streams for tonic's `serve_with_incoming`.
pub fn incoming(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
) -> ReceiverStream<std::io::Result<TlsStream<TcpStream>>> {
    let (tx, rx) = mpsc::channel(ACCEPT_QUEUE);
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = tx.closed() => return,
            };
            let _ = stream.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok(tls)).await;
                    }
                    Ok(Err(e)) => {
                        metrics::counter!("ledger_tls_handshake_failures_total").increment(1);
                        tracing::info!(%peer, error = %e, "TLS handshake refused");
                    }
                    Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// The caller named by a client certificate: common name and role (organizational unit).
pub fn caller_from_certs(certs: &[CertificateDer<'_>]) -> Result<Caller, String> {
    let leaf = certs.first().ok_or("no client certificate")?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(leaf.as_ref()).map_err(|e| format!("unreadable certificate: {e}"))?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .ok_or("certificate has no common name")?
        .to_string();
    let role_name = subject
        .iter_organizational_unit()
        .next()
        .and_then(|ou| ou.as_str().ok())
        .ok_or("certificate has no organizational unit (role)")?;
    let role = Role::parse(role_name).ok_or_else(|| format!("unknown role {role_name:?}"))?;
    if name.is_empty() || name.len() > ledger_core::limits::CALLER_BYTES_MAX {
        return Err("certificate common name is empty or too long".into());
    }
    Ok(Caller { name, role })
}
