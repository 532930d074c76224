//! The Rust client of the ledger.
//!
//! - Connects to a list of endpoints (any node of any site) and sends each call to one of them.
//! - Retries what is safe to retry: a node that is down or has no leader (another endpoint),
//!   an overloaded node (after a pause), and a write whose outcome is unknown (same transfer
//!   ids, so the ledger's idempotency makes the retry harmless and returns the original result).
//! - Never retries a refusal (permission denied, unauthenticated, invalid argument, not found,
//!   a failed precondition other than "site not writable", a TLS handshake the node or the
//!   client refused): the same request gets the same answer from every node (see
//!   [`ClientError::is_final`]).
//! - Bounds every call by [`ClientConfig::retry_deadline`]: no attempt outlives it, and no
//!   attempt starts after it (leader discovery may add at most its own second).
//! - Follows the leader of the active site: when a node refuses a write because its site is a
//!   standby, or a call fails in a way worth another endpoint, the client asks every endpoint
//!   for its site role, epoch, term and role, and goes to the newest active site's leader.
//! - Speaks mutual TLS when given a CA, a certificate and a key.

pub mod audit;
pub mod bench;
pub mod tls;

use std::future::Future;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use ledger_proto::v1 as pb;
use ledger_proto::v1::audit_client::AuditClient;
use ledger_proto::v1::cluster_client::ClusterClient;
use ledger_proto::v1::ledger_client::LedgerClient as LedgerRpc;
use tonic::Code;
use tonic::Status;
use tonic::transport::Channel;
use tonic::transport::ClientTlsConfig;
use tonic::transport::Endpoint;

pub use ledger_proto::v1 as proto;

pub use ledger_proto::ErrorCode;
/// Metadata key with the stable error code of a failed call.
pub use ledger_proto::error_code::ERROR_CODE_KEY;
/// Largest message the client accepts.
const MESSAGE_BYTES_MAX: usize = 16 * 1024 * 1024;
/// First pause between retries; doubles up to `RETRY_PAUSE_MS_MAX`.
const RETRY_PAUSE_MS_START: u64 = 50;
const RETRY_PAUSE_MS_MAX: u64 = 300;
/// The shortest timeout an attempt gets, even at the very end of the retry deadline (an
/// attempt with less could not even finish a TLS handshake).
const ATTEMPT_TIMEOUT_MIN: Duration = Duration::from_millis(200);
/// How long leader discovery waits for the endpoints' status answers.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(1);
/// Once an active site's leader has answered, how much longer discovery waits for a better
/// answer (a newer term) before it goes with it: a hung node must not hold every retry up.
const DISCOVERY_GRACE: Duration = Duration::from_millis(100);
/// Once any node of an active site has answered (none leads yet: an election), how much
/// longer discovery waits for a leader; a follower waits for the election and forwards.
const DISCOVERY_GRACE_NO_LEADER: Duration = Duration::from_millis(300);

/// How to reach the ledger.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// `host:port` of client endpoints, of any site.
    pub endpoints: Vec<String>,
    /// Mutual TLS; `None` for plaintext (`--insecure` nodes).
    pub tls: Option<ClientTlsConfig>,
    /// Deadline of one attempt.
    pub attempt_timeout: Duration,
    /// Total time spent on one call, retries included, before giving up (see
    /// [`LedgerClient::call`]).
    pub retry_deadline: Duration,
}

impl ClientConfig {
    pub fn insecure(endpoints: Vec<String>) -> ClientConfig {
        ClientConfig {
            endpoints,
            tls: None,
            attempt_timeout: Duration::from_secs(15),
            retry_deadline: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    #[error("{endpoint}: {code:?} ({error_code}): {message}")]
    Rpc { endpoint: String, code: Code, error_code: String, message: String },
    /// The TLS handshake failed on a certificate or protocol error (the node refused our
    /// certificate, or we refused the node's): a configuration mismatch, not an outage.
    #[error(
        "{endpoint}: TLS handshake refused: {reason} (the client certificate must be signed by the cluster's CA, and \
         the CA given must be the one that signed the nodes' certificates)"
    )]
    TlsRefused { endpoint: String, reason: String },
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    Endpoint { endpoint: String, reason: String },
    #[error("no endpoints configured")]
    NoEndpoints,
    #[error("gave up after {attempts} attempts in {elapsed_ms} ms; last error: {last}")]
    Exhausted { attempts: u32, elapsed_ms: u64, last: Box<ClientError> },
}

impl ClientError {
    fn from_status(endpoint: &str, status: &Status) -> ClientError {
        if let Some(reason) = tls_refusal(status) {
            return ClientError::TlsRefused { endpoint: endpoint.to_string(), reason };
        }
        let error_code = status.metadata().get(ERROR_CODE_KEY).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        // A transport error's message is only "transport error": say what failed.
        let mut message = status.message().to_string();
        let mut source = std::error::Error::source(status);
        while let Some(error) = source {
            let text = error.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = error.source();
        }
        ClientError::Rpc { endpoint: endpoint.to_string(), code: status.code(), error_code, message }
    }

    /// The innermost RPC error.
    pub fn last(&self) -> &ClientError {
        match self {
            ClientError::Exhausted { last, .. } => last.last(),
            other => other,
        }
    }

    /// The stable `ledger-error-code` of the (last) failed call, or "".
    pub fn error_code(&self) -> &str {
        match self.last() {
            ClientError::Rpc { error_code, .. } => error_code,
            _ => "",
        }
    }

    pub fn grpc_code(&self) -> Option<Code> {
        match self.last() {
            ClientError::Rpc { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// A refusal: asking again, here or at another node, gets the same answer, so no caller
    /// should retry it (a wrong role, a bad certificate, a malformed request, an unknown
    /// account, a site operation that does not fit). Connection failures, leader changes,
    /// overload and unknown outcomes are not final; neither is running out of retry time.
    pub fn is_final(&self) -> bool {
        match self {
            ClientError::Rpc { code, error_code, .. } => match retry_class(*code, error_code) {
                RetryClass::Final => true,
                RetryClass::Transient | RetryClass::Overloaded | RetryClass::OutcomeUnknown | RetryClass::Elsewhere => {
                    false
                }
            },
            ClientError::TlsRefused { .. } | ClientError::Endpoint { .. } | ClientError::NoEndpoints => true,
            ClientError::Exhausted { .. } => false,
        }
    }

    /// The refusal is about who the caller is (its certificate or its role), not about the
    /// request: a wrong identity was presented.
    pub fn is_identity_refusal(&self) -> bool {
        match self.last() {
            ClientError::Rpc { code, .. } => matches!(code, Code::PermissionDenied | Code::Unauthenticated),
            ClientError::TlsRefused { .. } => true,
            _ => false,
        }
    }
}

/// The TLS error under a transport failure, if the handshake failed on one. rustls reports
/// every certificate and protocol refusal as a `rustls::Error` (ours, or an alert the node
/// sent); timeouts and resets are plain IO errors and stay retryable.
fn tls_refusal(status: &Status) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(error) = source {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        // `io::Error::source` skips the error it wraps: look inside.
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(tls) = inner.downcast_ref::<rustls::Error>()
        {
            return Some(tls.to_string());
        }
        source = error.source();
    }
    None
}

/// The call failed because no connection could be made (refused, unreachable): the request
/// never left this process.
fn never_connected(status: &Status) -> bool {
    use std::io::ErrorKind;
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(error) = source {
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                ErrorKind::ConnectionRefused
                    | ErrorKind::AddrNotAvailable
                    | ErrorKind::HostUnreachable
                    | ErrorKind::NetworkUnreachable
            )
        {
            return true;
        }
        source = error.source();
    }
    false
}

/// How a failed call's gRPC code and `ledger-error-code` may be retried (docs/api.md, "gRPC
/// errors"). Exhaustive over the gRPC codes, so that a new one is a decision, not a default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RetryClass {
    /// A refusal: the same answer anywhere, any time. Never retried.
    Final,
    /// Nothing was done (no leader, node down, node shutting down): another endpoint.
    Transient,
    /// The node's write queue is full: pause, then again.
    Overloaded,
    /// The call may or may not have run: retried only when it is idempotent.
    OutcomeUnknown,
    /// This site is not the active one: find the active site, then again.
    Elsewhere,
}

fn retry_class(code: Code, error_code: &str) -> RetryClass {
    let error_code = ErrorCode::from_name(error_code);
    match code {
        Code::InvalidArgument
        | Code::NotFound
        | Code::AlreadyExists
        | Code::PermissionDenied
        | Code::Unauthenticated
        | Code::OutOfRange
        | Code::Unimplemented
        | Code::Internal
        | Code::DataLoss
        | Code::Aborted
        | Code::Ok => RetryClass::Final,
        // Not the active site: a write it will not take, or a linearizable read it cannot serve.
        Code::FailedPrecondition
            if matches!(error_code, Some(ErrorCode::SiteNotWritable | ErrorCode::SiteNotActive)) =>
        {
            RetryClass::Elsewhere
        }
        Code::FailedPrecondition => RetryClass::Final,
        Code::ResourceExhausted if error_code == Some(ErrorCode::Overloaded) => RetryClass::Overloaded,
        // Without the node's code, tonic's own (a message over the size limit): final.
        Code::ResourceExhausted => RetryClass::Final,
        // The node says it did not run the call (no leader, shutting down, DR lag ceiling).
        Code::Unavailable if error_code.is_some() => RetryClass::Transient,
        // The connection failed or broke: before sending (nothing ran) or after (unknown).
        Code::Unavailable | Code::Unknown | Code::Cancelled => RetryClass::OutcomeUnknown,
        Code::DeadlineExceeded => RetryClass::OutcomeUnknown,
    }
}

/// What to do after a failed attempt.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// Try another endpoint.
    OtherEndpoint,
    /// Pause, then try again.
    Pause,
    /// Find the active site, then try again.
    FindActiveSite,
    /// Give up: the error is the answer.
    Stop,
}

fn classify(status: &Status, idempotent: bool) -> Next {
    if tls_refusal(status).is_some() {
        return Next::Stop;
    }
    if never_connected(status) {
        // Nothing was sent: safe to send elsewhere, idempotent or not.
        return Next::OtherEndpoint;
    }
    let error_code = status.metadata().get(ERROR_CODE_KEY).and_then(|v| v.to_str().ok()).unwrap_or("");
    match retry_class(status.code(), error_code) {
        RetryClass::Final => Next::Stop,
        RetryClass::Transient => Next::OtherEndpoint,
        RetryClass::Overloaded => Next::Pause,
        RetryClass::OutcomeUnknown if idempotent => Next::OtherEndpoint,
        RetryClass::OutcomeUnknown => Next::Stop,
        RetryClass::Elsewhere => Next::FindActiveSite,
    }
}

struct Endpoints {
    addrs: Vec<String>,
    channels: Vec<Channel>,
}

/// A client of the ledger. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct LedgerClient {
    config: Arc<ClientConfig>,
    endpoints: Arc<Mutex<Endpoints>>,
    preferred: Arc<AtomicUsize>,
}

fn channel(addr: &str, tls: &Option<ClientTlsConfig>) -> Result<Channel, ClientError> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let bad = |reason: String| ClientError::Endpoint { endpoint: addr.to_string(), reason };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
        .map_err(|e| bad(e.to_string()))?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_while_idle(true);
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls.clone()).map_err(|e| bad(e.to_string()))?;
    }
    Ok(endpoint.connect_lazy())
}

impl LedgerClient {
    /// A client over `config.endpoints`; connects lazily.
    pub fn new(config: ClientConfig) -> Result<LedgerClient, ClientError> {
        if config.endpoints.is_empty() {
            return Err(ClientError::NoEndpoints);
        }
        let channels = config.endpoints.iter().map(|addr| channel(addr, &config.tls)).collect::<Result<Vec<_>, _>>()?;
        let endpoints = Endpoints { addrs: config.endpoints.clone(), channels };
        Ok(LedgerClient {
            config: Arc::new(config),
            endpoints: Arc::new(Mutex::new(endpoints)),
            preferred: Arc::new(AtomicUsize::new(0)),
        })
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.endpoints.lock().expect("lock").addrs.clone()
    }

    /// An independent client over the same endpoints and configuration (its own channels and
    /// endpoint preference).
    pub fn fork(&self) -> LedgerClient {
        LedgerClient::new((*self.config).clone()).expect("a working configuration stays valid")
    }

    /// A client pinned to one endpoint (no failover): for per-node calls like `status`.
    pub fn for_endpoint(&self, addr: &str) -> Result<LedgerClient, ClientError> {
        LedgerClient::new(ClientConfig { endpoints: vec![addr.to_string()], ..(*self.config).clone() })
    }

    fn pick(&self, attempt: usize) -> (String, Channel) {
        let endpoints = self.endpoints.lock().expect("lock");
        let n = endpoints.addrs.len();
        let index = (self.preferred.load(Ordering::Relaxed) + attempt) % n;
        (endpoints.addrs[index].clone(), endpoints.channels[index].clone())
    }

    /// The endpoint the last successful call went to (the one preferred next).
    pub fn preferred_endpoint(&self) -> String {
        let endpoints = self.endpoints.lock().expect("lock");
        endpoints.addrs[self.preferred.load(Ordering::Relaxed) % endpoints.addrs.len()].clone()
    }

    fn prefer(&self, addr: &str) {
        let endpoints = self.endpoints.lock().expect("lock");
        if let Some(index) = endpoints.addrs.iter().position(|a| a == addr) {
            self.preferred.store(index, Ordering::Relaxed);
        }
    }

    /// Runs `call` against endpoints until it succeeds, fails for good (a refusal: see
    /// [`ClientError::is_final`]), or the retry deadline passes. `idempotent` calls are
    /// retried even when their outcome is unknown. Each attempt gets the attempt timeout or
    /// what is left of the retry deadline, whichever is shorter, so a call returns within
    /// `retry_deadline` plus at most one leader discovery ([`DISCOVERY_TIMEOUT`]).
    pub async fn call<T, F, Fut>(&self, idempotent: bool, call: F) -> Result<T, ClientError>
    where
        F: Fn(Channel, Duration) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let started = Instant::now();
        let deadline = started + self.config.retry_deadline;
        let mut attempt = 0usize;
        let mut attempts = 0u32;
        let mut pause = Duration::from_millis(RETRY_PAUSE_MS_START);
        loop {
            let (addr, channel) = self.pick(attempt);
            let left = deadline.saturating_duration_since(Instant::now()).max(ATTEMPT_TIMEOUT_MIN);
            attempts += 1;
            let result = call(channel, self.config.attempt_timeout.min(left)).await;
            let status = match result {
                Ok(response) => {
                    self.prefer(&addr);
                    return Ok(response.into_inner());
                }
                Err(status) => status,
            };
            let error = ClientError::from_status(&addr, &status);
            let next = classify(&status, idempotent);
            tracing::debug!(endpoint = %addr, ?next, error = %error, "call failed");
            if next == Next::Stop {
                return Err(error);
            }
            let exhausted = || ClientError::Exhausted {
                attempts,
                elapsed_ms: started.elapsed().as_millis() as u64,
                last: Box::new(error.clone()),
            };
            if Instant::now() + pause >= deadline {
                return Err(exhausted());
            }
            match next {
                // Ask who leads now rather than walk the list: the node that failed us may be
                // cut off from its site (a deposed or partitioned leader still answers but can
                // neither commit nor forward), and a walk can land on it again. Found: start
                // again from the winner (the rotation offset is relative to the preferred
                // endpoint, and a stale offset would land on the standby site again), or from
                // the next one if the winner is the node that just failed.
                Next::OtherEndpoint | Next::FindActiveSite => match self.find_active_site_leader().await {
                    Some(winner) if winner != addr => attempt = 0,
                    Some(_) => attempt = 1,
                    None => attempt += 1,
                },
                Next::Pause | Next::Stop => {}
            }
            if Instant::now() + pause >= deadline {
                return Err(exhausted());
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(RETRY_PAUSE_MS_MAX));
        }
    }

    /// Asks every endpoint for its site role and epoch; prefers an endpoint of the active site
    /// with the highest epoch, its leader if it answers. Returns whether one was found.
    pub async fn find_active_site(&self) -> bool {
        self.find_active_site_leader().await.is_some()
    }

    /// Asks every endpoint at once for its status and prefers the best answer, ranked by
    /// (site epoch, Raft term, is leader) among unfenced active sites: the newest active
    /// site's current leader, so that a deposed leader that still answers (partitioned, not
    /// yet told) loses to the one elected after it. Waits at most [`DISCOVERY_TIMEOUT`],
    /// [`DISCOVERY_GRACE_NO_LEADER`] after the first answer and [`DISCOVERY_GRACE`] after the
    /// first leader's. Returns the preferred endpoint.
    async fn find_active_site_leader(&self) -> Option<String> {
        let (addrs, channels) = {
            let endpoints = self.endpoints.lock().expect("lock");
            (endpoints.addrs.clone(), endpoints.channels.clone())
        };
        let mut probes: FuturesUnordered<_> = addrs
            .into_iter()
            .zip(channels)
            .map(|(addr, channel)| async move {
                let mut request = tonic::Request::new(pb::StatusRequest {});
                request.set_timeout(DISCOVERY_TIMEOUT);
                let status = ClusterClient::new(channel).status(request).await.ok()?.into_inner();
                let site = status.site.as_ref()?;
                let rank = (site.epoch, status.raft_term, status.raft_role == "leader");
                (site.role == "active" && !site.fenced).then_some((rank, addr))
            })
            .collect();
        let started = tokio::time::Instant::now();
        let mut deadline = started + DISCOVERY_TIMEOUT;
        let mut best: Option<((u64, u64, bool), String)> = None;
        while let Ok(Some(answer)) = tokio::time::timeout_at(deadline, probes.next()).await {
            let Some((rank, addr)) = answer else { continue };
            if best.as_ref().is_none_or(|(best_rank, _)| rank > *best_rank) {
                best = Some((rank, addr));
            }
            let grace = if rank.2 { DISCOVERY_GRACE } else { DISCOVERY_GRACE_NO_LEADER };
            deadline = deadline.min(tokio::time::Instant::now() + grace);
        }
        tracing::debug!(best = ?best, elapsed_ms = started.elapsed().as_millis() as u64, "leader discovery");
        let (_, addr) = best?;
        self.prefer(&addr);
        Some(addr)
    }

    fn ledger(channel: Channel) -> LedgerRpc<Channel> {
        LedgerRpc::new(channel)
            .max_decoding_message_size(MESSAGE_BYTES_MAX)
            .max_encoding_message_size(MESSAGE_BYTES_MAX)
    }

    pub async fn create_accounts(
        &self,
        accounts: Vec<pb::NewAccount>,
    ) -> Result<pb::CreateAccountsResponse, ClientError> {
        let request = pb::CreateAccountsRequest { accounts };
        self.call(true, |channel, timeout| {
            let mut req = tonic::Request::new(request.clone());
            req.set_timeout(timeout);
            async move { Self::ledger(channel).create_accounts(req).await }
        })
        .await
    }

    pub async fn update_accounts(
        &self,
        updates: Vec<pb::AccountUpdate>,
    ) -> Result<pb::UpdateAccountsResponse, ClientError> {
        let request = pb::UpdateAccountsRequest { updates };
        self.call(true, |channel, timeout| {
            let mut req = tonic::Request::new(request.clone());
            req.set_timeout(timeout);
            async move { Self::ledger(channel).update_accounts(req).await }
        })
        .await
    }

    /// Posts a batch. Retries (on another node, after a leader change, or when the outcome is
    /// unknown) resend the same ids: the ledger applies each transfer at most once.
    pub async fn create_transfers(
        &self,
        transfers: Vec<pb::NewTransfer>,
        atomic: bool,
    ) -> Result<pb::CreateTransfersResponse, ClientError> {
        let request = pb::CreateTransfersRequest { transfers, atomic };
        self.call(true, |channel, timeout| {
            let mut req = tonic::Request::new(request.clone());
            req.set_timeout(timeout);
            async move { Self::ledger(channel).create_transfers(req).await }
        })
        .await
    }

    pub async fn lookup_accounts(
        &self,
        ids: Vec<String>,
        consistency: pb::ReadConsistency,
    ) -> Result<pb::LookupAccountsResponse, ClientError> {
        let request = pb::LookupAccountsRequest { ids, consistency: consistency as i32 };
        self.call(true, |channel, timeout| {
            let mut req = tonic::Request::new(request.clone());
            req.set_timeout(timeout);
            async move { Self::ledger(channel).lookup_accounts(req).await }
        })
        .await
    }

    pub async fn lookup_transfers(
        &self,
        ids: Vec<String>,
        consistency: pb::ReadConsistency,
    ) -> Result<pb::LookupTransfersResponse, ClientError> {
        let request = pb::LookupTransfersRequest { ids, consistency: consistency as i32 };
        self.call(true, |channel, timeout| {
            let mut req = tonic::Request::new(request.clone());
            req.set_timeout(timeout);
            async move { Self::ledger(channel).lookup_transfers(req).await }
        })
        .await
    }

    pub async fn account_history(
        &self,
        account_id: &str,
        from_index: u64,
        limit: u32,
        consistency: pb::ReadConsistency,
    ) -> Result<pb::GetAccountHistoryResponse, ClientError> {
        let request = pb::GetAccountHistoryRequest {
            account_id: account_id.to_string(),
            from_index,
            limit,
            consistency: consistency as i32,
        };
        self.call(true, |channel, timeout| {
            let mut req = tonic::Request::new(request.clone());
            req.set_timeout(timeout);
            async move { Self::ledger(channel).get_account_history(req).await }
        })
        .await
    }

    /// Status of the first endpoint that answers (no retries on another node would change the
    /// answer's meaning: use `for_endpoint` to ask a given node).
    pub async fn status(&self) -> Result<pb::NodeStatus, ClientError> {
        self.call(true, |channel, timeout| {
            let mut req = tonic::Request::new(pb::StatusRequest {});
            req.set_timeout(timeout);
            async move { ClusterClient::new(channel).status(req).await }
        })
        .await
    }

    /// One attempt at one endpoint's status, with a short timeout: for polling.
    pub async fn status_once(&self, timeout: Duration) -> Result<pb::NodeStatus, ClientError> {
        let (addr, channel) = self.pick(0);
        let mut req = tonic::Request::new(pb::StatusRequest {});
        req.set_timeout(timeout);
        ClusterClient::new(channel)
            .status(req)
            .await
            .map(|r| r.into_inner())
            .map_err(|s| ClientError::from_status(&addr, &s))
    }

    pub async fn bootstrap(&self, request: pb::BootstrapRequest) -> Result<pb::BootstrapResponse, ClientError> {
        self.call(false, |channel, timeout| {
            let mut req = tonic::Request::new(request.clone());
            req.set_timeout(timeout);
            async move { ClusterClient::new(channel).bootstrap(req).await }
        })
        .await
    }

    pub async fn add_node(&self, request: pb::AddNodeRequest) -> Result<pb::MembershipResponse, ClientError> {
        self.call(false, |channel, timeout| {
            let mut req = tonic::Request::new(request.clone());
            req.set_timeout(timeout.max(Duration::from_millis(request.catch_up_timeout_ms + 5000)));
            async move { ClusterClient::new(channel).add_node(req).await }
        })
        .await
    }

    pub async fn remove_node(&self, node_id: u64) -> Result<pb::MembershipResponse, ClientError> {
        self.call(false, |channel, timeout| {
            let mut req = tonic::Request::new(pb::RemoveNodeRequest { node_id });
            req.set_timeout(timeout);
            async move { ClusterClient::new(channel).remove_node(req).await }
        })
        .await
    }

    pub async fn transfer_leader(&self, target_node_id: u64) -> Result<pb::TransferLeaderResponse, ClientError> {
        self.call(false, |channel, timeout| {
            let mut req = tonic::Request::new(pb::TransferLeaderRequest { target_node_id });
            req.set_timeout(timeout);
            async move { ClusterClient::new(channel).transfer_leader(req).await }
        })
        .await
    }

    /// A site operation on the site of these endpoints (any node forwards it to the leader).
    /// Retried only when the node says it did not run it (no leader yet, ...).
    pub async fn site_operation(
        &self,
        request: pb::SiteOperationRequest,
    ) -> Result<pb::SiteOperationResponse, ClientError> {
        self.call(false, |channel, timeout| {
            let mut req = tonic::Request::new(request.clone());
            req.set_timeout(timeout);
            async move { ClusterClient::new(channel).site_operation(req).await }
        })
        .await
    }

    pub async fn read_site_log(&self, from_seq: u64, limit: u32) -> Result<pb::ReadSiteLogResponse, ClientError> {
        self.call(true, |channel, timeout| {
            let mut req = tonic::Request::new(pb::ReadSiteLogRequest { from_seq, limit });
            req.set_timeout(timeout);
            async move { AuditClient::new(channel).read_site_log(req).await }
        })
        .await
    }

    pub async fn journal_head(&self) -> Result<pb::JournalHead, ClientError> {
        self.call(true, |channel, timeout| {
            let mut req = tonic::Request::new(pb::GetJournalHeadRequest {});
            req.set_timeout(timeout);
            async move { AuditClient::new(channel).get_journal_head(req).await }
        })
        .await
    }

    /// Streams journal records from the first endpoint that answers.
    pub async fn read_journal(
        &self,
        from_seq: u64,
        limit: u64,
        follow: bool,
    ) -> Result<tonic::Streaming<pb::JournalRecord>, ClientError> {
        self.call(true, |channel, _| {
            let req = tonic::Request::new(pb::ReadJournalRequest { from_seq, limit, follow });
            async move {
                AuditClient::new(channel).max_decoding_message_size(MESSAGE_BYTES_MAX).read_journal(req).await
            }
        })
        .await
    }
}
