//! The API's contract at its edges, against real clusters (issue 9's defects found from
//! outside): a standby refuses linearizable reads, a cancelled leadership transfer leaves the
//! leader working, a panicking background task stops the node, undecodable requests are the
//! caller's error, health says which nodes take writes, and reflection lists what the client
//! port serves in both protocol versions.

use std::time::Duration;
use std::time::Instant;

use ledger_client::LedgerClient;
use ledger_client::proto as pb;
use ledger_cluster::launcher::LocalCluster;
use ledger_cluster::launcher::NodeKey;
use ledger_tests::*;
use prost::bytes::Buf;
use prost::bytes::BufMut;
use tonic::codec::Codec;
use tonic::codec::DecodeBuf;
use tonic::codec::Decoder;
use tonic::codec::EncodeBuf;
use tonic::codec::Encoder;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;

/// A channel to one node's client port as `identity`.
async fn channel(test: &TestCluster, key: &NodeKey, identity: &str) -> Channel {
    let spec = test.cluster.topology.site(&key.0).unwrap().node(key.1).unwrap().clone();
    let tls = test.cluster.client_config_as(identity, vec![]).unwrap().tls.expect("the test cluster runs TLS");
    tonic::transport::Endpoint::from_shared(format!("https://{}", spec.client_addr))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap()
}

fn error_code(status: &tonic::Status) -> String {
    status.metadata().get("ledger-error-code").and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
}

async fn health(channel: Channel, service: &str) -> ServingStatus {
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
    let answer = client
        .check(tonic_health::pb::HealthCheckRequest { service: service.into() })
        .await
        .unwrap_or_else(|e| panic!("health of {service:?}: {e}"))
        .into_inner();
    ServingStatus::try_from(answer.status).unwrap()
}

/// Polls health until `service` reports `want`.
async fn must_reach_health(channel: &Channel, service: &str, want: ServingStatus) {
    LocalCluster::poll(&format!("health of {service} = {want:?}"), DEADLINE, || async {
        (health(channel.clone(), service).await == want).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

/// Goal (issue 9, defect 1): a standby never answers a read labelled LINEARIZABLE, since its
/// copy may miss writes the active site acknowledged. It refuses with FAILED_PRECONDITION
/// `site_not_active` naming the active site (as a write refusal does); a LOCAL read is served
/// with the site's watermark; the Rust client given both sites follows to the active site and
/// finds a write acknowledged a moment before. Health says the standby takes no writes.
/// Method: primary + DR; write, then at once read on a DR node each way.
#[tokio::test(flavor = "multi_thread")]
async fn standby_refuses_linearizable_reads_and_serves_local_ones_with_its_watermark() {
    let test = TestCluster::start(node_bin!(), Spec::primary_and_dr()).await;
    let writer = test.client();
    must_create_accounts(&writer, vec![account("s-bank", "EUR"), account("s-shop", "EUR")]).await;
    let dr_node = test.key("dr", 1);
    // A standby learns the active site's name from the first record it ships; until then its
    // refusals say "(not known yet)" and the client finds the active site by asking for status.
    let dr_client = test.node_client(&dr_node);
    LocalCluster::poll("the standby shipped the accounts", DEADLINE, || async {
        let found = dr_client.lookup_accounts(vec!["s-shop".into()], pb::ReadConsistency::Local).await.ok()?;
        (found.accounts.len() == 1).then_some(())
    })
    .await
    .unwrap();
    for i in 0..10 {
        let id = format!("s-{i}");
        let r = writer.create_transfers(vec![transfer(&id, "s-bank", "s-shop", "1.00")], false).await.unwrap();
        assert_eq!(codes(&r.results), ["ok"]);
        let mut rpc = pb::ledger_client::LedgerClient::new(channel(&test, &dr_node, "reader").await);
        let request =
            pb::LookupTransfersRequest { ids: vec![id.clone()], consistency: pb::ReadConsistency::Linearizable as i32 };
        let refused = rpc.lookup_transfers(request).await.expect_err("a standby refuses linearizable reads");
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused:?}");
        assert_eq!(error_code(&refused), "site_not_active");
        assert_eq!(refused.metadata().get("ledger-active-site").unwrap().to_str().unwrap(), "primary");
        assert!(refused.message().contains("READ_CONSISTENCY_LOCAL"), "{}", refused.message());
        let local = rpc
            .lookup_transfers(pb::LookupTransfersRequest {
                ids: vec![id.clone()],
                consistency: pb::ReadConsistency::Local as i32,
            })
            .await
            .expect("a standby serves LOCAL reads")
            .into_inner();
        let read = local.read.expect("read info");
        assert_eq!(read.consistency, pb::ReadConsistency::Local as i32, "labelled LOCAL");
        assert_eq!((read.site.as_str(), read.site_role.as_str()), ("dr", "standby"));
        assert!(read.watermark_seq <= test.status(&test.key("primary", 1)).await.journal_head.unwrap().seq);
    }
    // The Rust client given the standby's endpoints first follows to the active site.
    let mut endpoints = test.cluster.topology.site("dr").unwrap().endpoints();
    endpoints.extend(test.cluster.topology.site("primary").unwrap().endpoints());
    let both = LedgerClient::new(test.cluster.client_config_as("reader", endpoints).unwrap()).unwrap();
    let found = both
        .lookup_transfers(vec!["s-9".into()], pb::ReadConsistency::Linearizable)
        .await
        .expect("the client follows to the active site");
    assert_eq!(found.transfers.len(), 1, "the acknowledged write is seen");
    let read = found.read.unwrap();
    assert_eq!((read.site.as_str(), read.consistency), ("primary", pb::ReadConsistency::Linearizable as i32));
    // Health: the standby takes no writes, its shipping runs; the primary leader takes writes.
    let dr_channel = channel(&test, &dr_node, "reader").await;
    must_reach_health(&dr_channel, "ledger.v1.Ledger", ServingStatus::NotServing).await;
    must_reach_health(&dr_channel, "ledger.dr.Shipping", ServingStatus::Serving).await;
    assert_eq!(health(dr_channel.clone(), "").await, ServingStatus::Serving);
    let leader = test.leader("primary").await;
    must_reach_health(&channel(&test, &leader, "reader").await, "ledger.v1.Ledger", ServingStatus::Serving).await;
}

/// Goal (issue 9, defect 3): a leadership transfer whose caller goes away mid-way (its
/// deadline passes, it disconnects) leaves the leader working: it proposes and heartbeats
/// again, so it stays leader in the same term and takes writes. Before the fix both flags
/// stayed set: the leader answered every write with no_leader and went silent, and the
/// followers elected someone else.
/// Method: ask the leader to transfer to a follower with a 300 ms deadline (a transfer waits
/// out the leader lease, 1.6 s in tests, so it is cut mid-way); then watch the leader for
/// three leases and write to it directly.
#[tokio::test(flavor = "multi_thread")]
async fn transfer_leader_cancelled_midway_leaves_the_leader_working() {
    let test = TestCluster::start(node_bin!(), Spec::single_site(3)).await;
    let leader = test.leader("primary").await;
    let term = test.status(&leader).await.raft_term;
    let target = test.cluster.site_keys("primary").into_iter().find(|k| *k != leader).unwrap();
    let mut rpc = pb::cluster_client::ClusterClient::new(channel(&test, &leader, "admin").await);
    let mut request = tonic::Request::new(pb::TransferLeaderRequest { target_node_id: target.1 });
    request.set_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let cancelled = rpc.transfer_leader(request).await.expect_err("the transfer cannot finish in 300 ms");
    assert!(started.elapsed() < Duration::from_secs(3), "the deadline cut the call short");
    assert!(matches!(cancelled.code(), tonic::Code::Cancelled | tonic::Code::DeadlineExceeded), "{cancelled:?}");
    // Three leader leases (election_max 1.6 s): a leader that stopped heartbeating loses
    // its followers to an election within one.
    let watch_until = Instant::now() + Duration::from_millis(3 * 1600);
    while Instant::now() < watch_until {
        let status = test.status(&leader).await;
        assert_eq!((status.raft_role.as_str(), status.raft_term), ("leader", term), "the leader kept its term");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let direct = test.node_client(&leader);
    must_create_accounts(&direct, vec![account("after-cancel", "EUR")]).await;
    // A second transfer, run to completion, still works.
    let moved = test.client().transfer_leader(target.1).await.expect("a full transfer");
    assert_eq!(moved.new_leader_id, target.1);
}

/// Goal (issue 9, defect 5): fail-stop. A panic in a node's background task (here the ledger
/// timer, through the `ledger-timer-panic` failpoint) stops the whole process with a non-zero
/// status instead of leaving it serving without the task.
/// Method: form a site from two nodes, start the third with the failpoint armed, and wait for
/// its process to exit.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_whose_background_task_panics_exits_non_zero() {
    let spec = Spec::single_site(3).with_tweak(|key, config| {
        if key.1 == 3 {
            config.failpoints = vec![ledger_node::failpoint::LEDGER_TIMER_PANIC.into()];
        }
    });
    let mut test = TestCluster::start_partial(node_bin!(), spec, 2).await;
    let doomed = test.key("primary", 3);
    test.cluster.start(&doomed).expect("start node 3");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = test.cluster.exit_status(&doomed) {
            break status;
        }
        assert!(Instant::now() < deadline, "node 3 still runs 20 s after its timer task panicked");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!status.success(), "exit status {status:?}");
    let log = std::fs::read_to_string(test.cluster.log_path(&doomed)).unwrap();
    assert!(log.contains("fail-stop"), "the node says why it stopped:\n{log}");
    // The two healthy nodes carry on.
    must_create_accounts(&test.client(), vec![account("still-up", "EUR")]).await;
}

/// Sends raw bytes as a request body and returns the raw response body.
#[derive(Default)]
struct RawCodec;

struct RawEncoder;
struct RawDecoder;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

/// Goal (issue 9, defect 10): a request body that is not valid protobuf is the caller's error:
/// INVALID_ARGUMENT with `malformed_request`, never INTERNAL (which docs/api.md keeps for our
/// bugs), on every client RPC, and it changes nothing. Also (defect 9) reflection answers in
/// both protocol versions and lists exactly what the client port serves.
/// Method: hand-made broken bodies (a truncated varint, a length past the end, an invalid wire
/// type, field number 0, a truncated length) to each unary RPC and the journal stream;
/// compare the journal head before and after.
#[tokio::test(flavor = "multi_thread")]
async fn malformed_requests_are_invalid_argument_and_reflection_lists_the_client_port() {
    let test = TestCluster::start(node_bin!(), Spec::single_site(3)).await;
    let leader = test.leader("primary").await;
    must_create_accounts(&test.client(), vec![account("m-a", "EUR")]).await;
    let head_before = test.client().journal_head().await.unwrap();
    let bodies: [&[u8]; 5] = [&[0x08], &[0x0a, 0x10, 0x01], &[0x0f, 0x01], &[0x00, 0x01], &[0x0a, 0x80]];
    let rpcs = [
        "/ledger.v1.Ledger/CreateAccounts",
        "/ledger.v1.Ledger/UpdateAccounts",
        "/ledger.v1.Ledger/CreateTransfers",
        "/ledger.v1.Ledger/LookupAccounts",
        "/ledger.v1.Ledger/LookupTransfers",
        "/ledger.v1.Ledger/GetAccountHistory",
        "/ledger.v1.Cluster/Status",
        "/ledger.v1.Cluster/SiteOperation",
        "/ledger.v1.Audit/GetJournalHead",
        "/ledger.v1.Audit/ReadSiteLog",
    ];
    let channel = channel(&test, &leader, "admin").await;
    let mut n_checked = 0;
    for rpc in rpcs {
        for body in bodies {
            let mut grpc = tonic::client::Grpc::new(channel.clone());
            grpc.ready().await.unwrap();
            let path = tonic::codegen::http::uri::PathAndQuery::from_static(rpc);
            let answer = grpc.unary(tonic::Request::new(body.to_vec()), path, RawCodec).await;
            let status = answer.expect_err("a broken body is refused");
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{rpc} {body:02x?}: {status:?}");
            assert_eq!(error_code(&status), "malformed_request", "{rpc} {body:02x?}");
            n_checked += 1;
        }
    }
    for body in bodies {
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready().await.unwrap();
        let path = tonic::codegen::http::uri::PathAndQuery::from_static("/ledger.v1.Audit/ReadJournal");
        let status = match grpc.server_streaming(tonic::Request::new(body.to_vec()), path, RawCodec).await {
            Err(status) => status,
            Ok(stream) => stream.into_inner().message().await.expect_err("a broken body is refused"),
        };
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "ReadJournal {body:02x?}: {status:?}");
        assert_eq!(error_code(&status), "malformed_request");
        n_checked += 1;
    }
    assert_eq!(n_checked, rpcs.len() * bodies.len() + bodies.len());
    assert_eq!(test.client().journal_head().await.unwrap(), head_before, "broken requests change nothing");

    // Reflection: both versions, the client port's services only.
    let want = [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "ledger.v1.Audit",
        "ledger.v1.Cluster",
        "ledger.v1.Ledger",
    ];
    assert_eq!(list_services!(tonic_reflection::pb::v1alpha, channel.clone()), want, "v1alpha lists the client port");
    assert_eq!(list_services!(tonic_reflection::pb::v1, channel.clone()), want, "v1 lists the client port");
}

/// The service names a reflection service of protocol module `$r` lists, sorted.
macro_rules! list_services {
    ($r:path, $channel:expr) => {{
        use $r as r;
        let mut client = r::server_reflection_client::ServerReflectionClient::new($channel);
        let request = r::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(r::server_reflection_request::MessageRequest::ListServices(String::new())),
        };
        let mut answers = client.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
        let answer = answers.message().await.unwrap().expect("an answer");
        let Some(r::server_reflection_response::MessageResponse::ListServicesResponse(list)) = answer.message_response
        else {
            panic!("not a service list: {answer:?}");
        };
        let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        names.sort();
        names
    }};
}
use list_services;

/// Goal (issue 9, defect 6): the API answers an atomic batch with a malformed item exactly as
/// the ledger's own rule does (`ledger::atomic_refused_up_front`): the malformed item its code,
/// every other item linked_event_failed, even an id that exists, and nothing is proposed.
/// Method: post a transfer, then send atomic batches that repeat it next to a malformed item,
/// and next to a repeated id; the journal head must not move.
#[tokio::test(flavor = "multi_thread")]
async fn atomic_batch_with_a_malformed_item_follows_the_ledgers_rule() {
    let test = TestCluster::start(node_bin!(), Spec::single_site(3)).await;
    let c = test.client();
    must_create_accounts(&c, vec![account("x-bank", "EUR"), account("x-shop", "EUR")]).await;
    let r = c.create_transfers(vec![transfer("x1", "x-bank", "x-shop", "1.00")], false).await.unwrap();
    assert_eq!(codes(&r.results), ["ok"]);
    let head = c.journal_head().await.unwrap();
    let batch = vec![
        transfer("x1", "x-bank", "x-shop", "1.00"),
        transfer("x2", "x-bank", "x-shop", "0"),
        transfer("x3", "x-bank", "x-shop", "2.00"),
    ];
    let r = c.create_transfers(batch, true).await.unwrap();
    let rule = ledger_core::ledger::atomic_refused_up_front(3, 1, ledger_core::reject::ResultCode::AmountNotPositive);
    let rule_names: Vec<String> = rule.iter().map(|i| i.code.name().to_string()).collect();
    assert_eq!(codes(&r.results), rule_names);
    assert_eq!(codes(&r.results), ["linked_event_failed", "amount_not_positive", "linked_event_failed"]);
    assert!(r.results.iter().all(|i| !i.replayed));
    assert_eq!(c.journal_head().await.unwrap(), head, "nothing was proposed");
    // An id repeated in the batch is a stateless failure too, caught before proposing.
    let batch = vec![
        transfer("x1", "x-bank", "x-shop", "1.00"),
        transfer("x4", "x-bank", "x-shop", "1.00"),
        transfer("x4", "x-bank", "x-shop", "1.00"),
    ];
    let r = c.create_transfers(batch, true).await.unwrap();
    assert_eq!(codes(&r.results), ["linked_event_failed", "linked_event_failed", "id_duplicate_in_batch"]);
    assert_eq!(c.journal_head().await.unwrap(), head, "nothing was proposed");
}
