//! How this node opens gRPC channels to other nodes: plaintext in `--insecure` mode, mutual
//! TLS 1.3 otherwise (see `security::tls`). One place, so the Raft network, write forwarding
//! and DR shipping all connect the same way.

use std::time::Duration;

use tonic::transport::Channel;
use tonic::transport::ClientTlsConfig;
use tonic::transport::Endpoint;

/// Connect timeout for every channel; a dead peer is detected fast and reported Unreachable.
const CONNECT_TIMEOUT_MS: u64 = 1000;
/// HTTP/2 keepalive, so a half-open connection (a partition) is noticed.
const KEEPALIVE_MS: u64 = 2000;

#[derive(Clone, Debug)]
pub struct Transport {
    tls: Option<ClientTlsConfig>,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid address {addr:?}: {reason}")]
pub struct AddressError {
    pub addr: String,
    pub reason: String,
}

impl Transport {
    pub fn plaintext() -> Transport {
        Transport { tls: None }
    }

    pub fn tls(config: ClientTlsConfig) -> Transport {
        Transport { tls: Some(config) }
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// A lazily connecting channel to `addr` (`host:port`). Never blocks, never fails on an
    /// unreachable peer: the first RPC does.
    pub fn channel(&self, addr: &str) -> Result<Channel, AddressError> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let bad = |reason: String| AddressError { addr: addr.to_string(), reason };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
            .map_err(|e| bad(e.to_string()))?
            .connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_millis(KEEPALIVE_MS))
            .keep_alive_timeout(Duration::from_millis(KEEPALIVE_MS))
            .keep_alive_while_idle(true);
        if let Some(tls) = &self.tls {
            endpoint = endpoint.tls_config(tls.clone()).map_err(|e| bad(e.to_string()))?;
        }
        Ok(endpoint.connect_lazy())
    }
}
