//! The simulated network: every peer RPC of every node goes through [`SimNet`], which drops,
//! delays, duplicates (and so reorders) messages and cuts links one way or both, from the
//! seed. The node's own code is unchanged above [`PeerWire`]: the handler that answers is the
//! real `PeerService` of the target node, called in process.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use ledger_client::bench::Rng;
use ledger_client::proto::peer::RaftReply;
use ledger_client::proto::peer::RaftRequest;
use ledger_client::proto::peer::SnapshotPart;
use ledger_client::proto::peer::raft_peer_server::RaftPeer;
use ledger_node::api::peer::PeerService;
use ledger_node::raft::types::NodeId;
use ledger_node::raft::wire::PeerCallError;
use ledger_node::raft::wire::PeerMethod;
use ledger_node::raft::wire::PeerWire;
use ledger_node::raft::wire::WireFuture;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tonic::Request;
use tonic::Status;

/// How the network misbehaves now (changed by the fault schedule).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Weather {
    /// One-way delay of every message, drawn uniformly from this range, in ms.
    pub delay_ms: (u64, u64),
    /// Messages lost, per thousand (a request or its reply).
    pub loss_per_mille: u64,
    /// Requests delivered twice, per thousand (the second answer is thrown away).
    pub duplicate_per_mille: u64,
}

impl Weather {
    pub const CALM: Weather = Weather { delay_ms: (1, 3), loss_per_mille: 0, duplicate_per_mille: 0 };
}

/// Counters of what the network did, for the seed's report.
#[derive(Clone, Copy, Debug, Default)]
pub struct NetStats {
    pub messages: u64,
    pub lost: u64,
    pub cut: u64,
    pub duplicated: u64,
    pub to_down_node: u64,
}

struct State {
    rng: Rng,
    weather: Weather,
    /// Directed links that deliver nothing: (from, to).
    cut: BTreeSet<(NodeId, NodeId)>,
    /// The peer service of each node that is up, and which incarnation it is.
    up: BTreeMap<NodeId, (Arc<PeerService>, u64)>,
    incarnations: u64,
    stats: NetStats,
}

/// What will happen to one request.
enum Fate {
    /// The target is down: refused at once, as a closed port is.
    Refused,
    /// Lost on the way there, or the link is cut: nothing comes back before the deadline.
    Lost,
    Delivered {
        there: Duration,
        back: Duration,
        reply_lost: bool,
        duplicate: Option<Duration>,
    },
}

/// Where the network reports what it carried (votes: elections are what a trace is read for).
pub type Tracer = Box<dyn Fn(String) + Send + Sync>;

pub struct SimNet {
    state: Mutex<State>,
    tracer: Mutex<Option<Tracer>>,
    /// Bumped whenever a node goes down: what a connection to it is waiting on.
    downs: tokio::sync::watch::Sender<u64>,
}

impl SimNet {
    pub fn new(seed: u64) -> Arc<SimNet> {
        Arc::new(SimNet {
            state: Mutex::new(State {
                rng: Rng::new(seed),
                weather: Weather::CALM,
                cut: BTreeSet::new(),
                up: BTreeMap::new(),
                incarnations: 0,
                stats: NetStats::default(),
            }),
            downs: tokio::sync::watch::Sender::new(0),
            tracer: Mutex::new(None),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("lock is never poisoned")
    }

    pub fn set_tracer(&self, tracer: Tracer) {
        *self.tracer.lock().expect("lock is never poisoned") = Some(tracer);
    }

    fn trace(&self, line: impl FnOnce() -> String) {
        if let Some(tracer) = self.tracer.lock().expect("lock is never poisoned").as_ref() {
            tracer(line());
        }
    }

    pub fn wire(self: &Arc<Self>, from: NodeId) -> Arc<dyn PeerWire> {
        Arc::new(SimWire { from, net: self.clone() })
    }

    pub fn set_up(&self, id: NodeId, service: Arc<PeerService>) {
        let mut state = self.state();
        state.incarnations += 1;
        let incarnation = state.incarnations;
        state.up.insert(id, (service, incarnation));
    }

    pub fn set_down(&self, id: NodeId) {
        self.state().up.remove(&id);
        self.downs.send_modify(|n| *n += 1);
    }

    /// The incarnation of `id` now, if it is up.
    pub fn incarnation(&self, id: NodeId) -> Option<u64> {
        self.state().up.get(&id).map(|(_, incarnation)| *incarnation)
    }

    /// Resolves once incarnation `incarnation` of `id` is down: every connection to it is
    /// reset then, as a crashed process's are, and nothing of it stays in flight.
    pub async fn until_down(&self, id: NodeId, incarnation: u64) {
        let mut downs = self.downs.subscribe();
        while self.incarnation(id) == Some(incarnation) {
            if downs.changed().await.is_err() {
                return;
            }
        }
    }

    pub fn is_up(&self, id: NodeId) -> bool {
        self.state().up.contains_key(&id)
    }

    pub fn set_weather(&self, weather: Weather) {
        self.state().weather = weather;
    }

    /// Cuts the link `from -> to` (one way).
    pub fn cut(&self, from: NodeId, to: NodeId) {
        self.state().cut.insert((from, to));
    }

    pub fn heal(&self) {
        self.state().cut.clear();
    }

    pub fn is_cut(&self, from: NodeId, to: NodeId) -> bool {
        self.state().cut.contains(&(from, to))
    }

    pub fn stats(&self) -> NetStats {
        self.state().stats
    }

    /// A delay drawn from the current weather (also used for client requests).
    pub fn delay(&self) -> Duration {
        let mut state = self.state();
        let (low, high) = state.weather.delay_ms;
        Duration::from_millis(low + state.rng.below(high.saturating_sub(low) + 1))
    }

    /// Whether one message is lost now (also used for client requests and replies).
    pub fn lose(&self) -> bool {
        let mut state = self.state();
        let lost = state.rng.below(1000) < state.weather.loss_per_mille;
        if lost {
            state.stats.lost += 1;
        }
        lost
    }

    fn fate(&self, from: NodeId, to: NodeId) -> Fate {
        let mut state = self.state();
        state.stats.messages += 1;
        if !state.up.contains_key(&to) {
            state.stats.to_down_node += 1;
            return Fate::Refused;
        }
        if state.cut.contains(&(from, to)) {
            state.stats.cut += 1;
            return Fate::Lost;
        }
        let weather = state.weather;
        let draw_delay = |rng: &mut Rng| {
            let (low, high) = weather.delay_ms;
            Duration::from_millis(low + rng.below(high.saturating_sub(low) + 1))
        };
        if state.rng.below(1000) < weather.loss_per_mille {
            state.stats.lost += 1;
            return Fate::Lost;
        }
        let there = draw_delay(&mut state.rng);
        let back = draw_delay(&mut state.rng);
        let reply_lost = state.rng.below(1000) < weather.loss_per_mille || state.cut.contains(&(to, from));
        let duplicate = (state.rng.below(1000) < weather.duplicate_per_mille).then(|| draw_delay(&mut state.rng) * 3);
        if duplicate.is_some() {
            state.stats.duplicated += 1;
        }
        Fate::Delivered { there, back, reply_lost, duplicate }
    }

    fn service(&self, id: NodeId) -> Option<(Arc<PeerService>, u64)> {
        self.state().up.get(&id).cloned()
    }
}

struct SimWire {
    from: NodeId,
    net: Arc<SimNet>,
}

fn failed(target: NodeId, addr: &str, status: Status) -> PeerCallError {
    PeerCallError::Status { target, addr: addr.to_string(), status }
}

async fn dispatch(service: &PeerService, method: PeerMethod, request: RaftRequest) -> Result<RaftReply, Status> {
    let request = Request::new(request);
    let reply = match method {
        PeerMethod::AppendEntries => service.append_entries(request).await,
        PeerMethod::Vote => service.vote(request).await,
        PeerMethod::InstallSnapshot => service.install_snapshot(request).await,
        PeerMethod::Propose => service.propose(request).await,
        PeerMethod::ReadIndex => service.read_index(request).await,
        PeerMethod::Campaign => service.campaign(request).await,
    };
    reply.map(tonic::Response::into_inner)
}

/// One vote request and its answer, for the trace.
fn describe_vote(from: NodeId, to: NodeId, request: &[u8], reply: &[u8]) -> String {
    let request: Option<openraft::raft::VoteRequest<NodeId>> = ledger_core::codec::decode(request).ok();
    let reply: Option<Result<openraft::raft::VoteResponse<NodeId>, openraft::error::RaftError<NodeId>>> =
        ledger_core::codec::decode(reply).ok();
    match (request, reply) {
        (Some(q), Some(Ok(a))) => format!(
            "vote {from} -> {to}: asks {} (last log {:?}); {} (its vote {})",
            q.vote,
            q.last_log_id.map(|l| l.index),
            if a.vote_granted { "granted" } else { "refused" },
            a.vote
        ),
        (Some(q), Some(Err(e))) => format!("vote {from} -> {to}: asks {}; error {e}", q.vote),
        _ => format!("vote {from} -> {to}: undecodable"),
    }
}

impl PeerWire for SimWire {
    fn unary(
        &self,
        target: NodeId,
        addr: &str,
        method: PeerMethod,
        request: RaftRequest,
        timeout: Duration,
    ) -> WireFuture {
        let net = self.net.clone();
        let from = self.from;
        let addr = addr.to_string();
        Box::pin(async move {
            let call = async {
                match net.fate(from, target) {
                    Fate::Refused => {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        Err(failed(target, &addr, Status::unavailable("connection refused (node down)")))
                    }
                    Fate::Lost => std::future::pending().await,
                    Fate::Delivered { there, back, reply_lost, duplicate } => {
                        if let Some(later) = duplicate {
                            let (net, request) = (net.clone(), request.clone());
                            tokio::spawn(async move {
                                tokio::time::sleep(later).await;
                                if let Some((service, incarnation)) = net.service(target) {
                                    tokio::select! {
                                        _ = dispatch(&service, method, request) => {}
                                        () = net.until_down(target, incarnation) => {}
                                    }
                                }
                            });
                        }
                        tokio::time::sleep(there).await;
                        let reset = || Err(failed(target, &addr, Status::unavailable("connection reset (node down)")));
                        let Some((service, incarnation)) = net.service(target) else {
                            return reset();
                        };
                        let vote = matches!(method, PeerMethod::Vote).then(|| request.payload.clone());
                        let reply = tokio::select! {
                            reply = dispatch(&service, method, request) => reply,
                            () = net.until_down(target, incarnation) => return reset(),
                        };
                        if let (Some(vote), Ok(answer)) = (vote, &reply) {
                            net.trace(|| describe_vote(from, target, &vote, &answer.payload));
                        }
                        // A crashed node's services must not outlive its answers: a reply
                        // lost in flight would hold its store open until the caller's deadline.
                        drop(service);
                        if reply_lost || net.is_cut(target, from) || !net.is_up(target) {
                            return std::future::pending().await;
                        }
                        tokio::time::sleep(back).await;
                        reply.map_err(|status| failed(target, &addr, status))
                    }
                }
            };
            match tokio::time::timeout(timeout, call).await {
                Ok(reply) => reply,
                Err(_) => Err(failed(target, &addr, Status::deadline_exceeded("no answer before the deadline"))),
            }
        })
    }

    fn stream(&self, target: NodeId, addr: &str, parts: mpsc::Receiver<SnapshotPart>) -> WireFuture {
        let net = self.net.clone();
        let from = self.from;
        let addr = addr.to_string();
        Box::pin(async move {
            // A stream is a connection: it either gets through whole (delayed) or is reset.
            let service = match net.fate(from, target) {
                Fate::Refused | Fate::Lost => None,
                Fate::Delivered { there, .. } => {
                    tokio::time::sleep(there).await;
                    net.service(target)
                }
            };
            let reset = || Err(failed(target, &addr, Status::unavailable("snapshot stream reset")));
            let Some((service, incarnation)) = service else {
                return reset();
            };
            let parts = tokio_stream::wrappers::ReceiverStream::new(parts).map(Ok::<_, Status>);
            let reply = tokio::select! {
                reply = service.receive_snapshot(parts) => reply,
                () = net.until_down(target, incarnation) => return reset(),
            };
            drop(service);
            if net.is_cut(target, from) || !net.is_up(target) {
                return Err(failed(target, &addr, Status::unavailable("snapshot stream reset")));
            }
            reply.map(tonic::Response::into_inner).map_err(|status| failed(target, &addr, status))
        })
    }
}
