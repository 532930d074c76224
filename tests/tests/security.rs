//! Security on a real TLS cluster: who is refused at the handshake, what each role may call
//! (the whole matrix, every refusal PERMISSION_DENIED and changing nothing), personal data
//! never on disk or in logs in plaintext and masked for roles that may not see it, dual
//! control of key rotation, and tamper detection in an exported journal.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ledger_client::ClientConfig;
use ledger_client::LedgerClient;
use ledger_client::proto as pb;
use ledger_cluster::certs::CertsDir;
use ledger_cluster::launcher::LocalCluster;
use ledger_node::security::authz::Action;
use ledger_node::security::authz::Role;
use ledger_node::security::authz::allows;
use ledger_tests::*;
use tonic::Code;

/// Every RPC of the client port, with the action it needs. docs/security.md prints this table
/// (checked below) and every handler authorizes with exactly this action.
const RPCS: &[(&str, Action)] = &[
    ("Ledger.CreateAccounts", Action::WriteLedger),
    ("Ledger.UpdateAccounts", Action::WriteLedger),
    ("Ledger.CreateTransfers", Action::WriteLedger),
    ("Ledger.LookupAccounts", Action::ReadLedger),
    ("Ledger.LookupTransfers", Action::ReadLedger),
    ("Ledger.GetAccountHistory", Action::ReadLedger),
    ("Cluster.Status", Action::ReadStatus),
    ("Cluster.Bootstrap", Action::OperateCluster),
    ("Cluster.AddNode", Action::OperateCluster),
    ("Cluster.RemoveNode", Action::OperateCluster),
    ("Cluster.TransferLeader", Action::OperateCluster),
    ("Cluster.SiteOperation", Action::OperateSite),
    ("Audit.ReadJournal", Action::ReadJournal),
    ("Audit.GetJournalHead", Action::ReadJournalHead),
    ("Audit.ReadSiteLog", Action::ReadSiteLog),
];

const ROLES: &[(&str, Role)] = &[
    ("writer", Role::Writer),
    ("reader", Role::Reader),
    ("auditor", Role::Auditor),
    ("operator-1", Role::Operator),
    ("admin", Role::Admin),
    ("node-client", Role::Node),
];

/// The matrix as Markdown, as docs/security.md shows it.
fn matrix_markdown() -> String {
    let mut out = String::from("| RPC | needs | writer | reader | auditor | operator | admin | node |\n");
    out.push_str("|---|---|---|---|---|---|---|---|\n");
    for (rpc, action) in RPCS {
        let cells: Vec<&str> = ROLES.iter().map(|(_, role)| if allows(*role, *action) { "yes" } else { "-" }).collect();
        out.push_str(&format!("| {rpc} | {} | {} |\n", action.name(), cells.join(" | ")));
    }
    let pii: Vec<&str> = ROLES
        .iter()
        .map(|(_, role)| if allows(*role, Action::ReadPersonalData) { "clear" } else { "masked" })
        .collect();
    out.push_str(&format!("| personal data in responses | read_personal_data | {} |\n", pii.join(" | ")));
    out
}

/// Goal: the documented role matrix is the one the node enforces.
#[test]
fn docs_show_the_enforced_role_matrix() {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/security.md")).unwrap();
    assert!(doc.contains(&matrix_markdown()), "docs/security.md must contain exactly:\n{}", matrix_markdown());
}

fn client_as(test: &TestCluster, identity: &str) -> LedgerClient {
    let endpoints = test.cluster.topology.site("primary").unwrap().endpoints();
    let config = test.cluster.client_config_as(identity, endpoints).unwrap();
    LedgerClient::new(ClientConfig { retry_deadline: Duration::from_secs(3), ..config }).unwrap()
}

/// Calls `rpc` harmlessly as `client`; returns the gRPC code (Ok for success).
/// A Raft peer client to primary node `node`'s peer port, presenting `identity`'s certificate.
fn peer_client_as(
    test: &TestCluster,
    node: u64,
    identity: &str,
) -> ledger_proto::v1::peer::raft_peer_client::RaftPeerClient<tonic::transport::Channel> {
    let peer_addr = test.cluster.topology.site("primary").unwrap().node(node).unwrap().peer_addr.clone();
    let tls = test.cluster.client_config_as(identity, vec![]).unwrap().tls.unwrap();
    let channel = tonic::transport::Endpoint::from_shared(format!("https://{peer_addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_lazy();
    ledger_proto::v1::peer::raft_peer_client::RaftPeerClient::new(channel)
}

async fn call(client: &LedgerClient, rpc: &str, n: usize) -> Code {
    let code = |r: Result<(), ledger_client::ClientError>| match r {
        Ok(()) => Code::Ok,
        Err(e) => e.grpc_code().unwrap_or(Code::Unknown),
    };
    let consistency = pb::ReadConsistency::Linearizable;
    match rpc {
        "Ledger.CreateAccounts" => {
            code(client.create_accounts(vec![account(&format!("m-{n}"), "EUR")]).await.map(|_| ()))
        }
        "Ledger.UpdateAccounts" => code(
            client
                .update_accounts(vec![pb::AccountUpdate {
                    id: "target".into(),
                    action: pb::AccountAction::Unfreeze as i32,
                }])
                .await
                .map(|_| ()),
        ),
        "Ledger.CreateTransfers" => code(
            client
                .create_transfers(vec![transfer(&format!("mt-{n}"), "bank", "target", "0.01")], false)
                .await
                .map(|_| ()),
        ),
        "Ledger.LookupAccounts" => code(client.lookup_accounts(vec!["target".into()], consistency).await.map(|_| ())),
        "Ledger.LookupTransfers" => code(client.lookup_transfers(vec!["seed".into()], consistency).await.map(|_| ())),
        "Ledger.GetAccountHistory" => code(client.account_history("target", 1, 10, consistency).await.map(|_| ())),
        "Cluster.Status" => code(client.status().await.map(|_| ())),
        "Cluster.Bootstrap" => code(
            client
                .bootstrap(pb::BootstrapRequest { site: "primary".into(), role: "active".into(), ..Default::default() })
                .await
                .map(|_| ()),
        ),
        "Cluster.AddNode" => code(
            client
                .add_node(pb::AddNodeRequest { node: Some(pb::Member::default()), ..Default::default() })
                .await
                .map(|_| ()),
        ),
        "Cluster.RemoveNode" => code(client.remove_node(99).await.map(|_| ())),
        "Cluster.TransferLeader" => code(client.transfer_leader(99).await.map(|_| ())),
        "Cluster.SiteOperation" => code(
            client
                .site_operation(pb::SiteOperationRequest {
                    kind: pb::SiteOperationKind::Approve as i32,
                    request_id: "matrix".into(),
                    action: "not-an-action".into(),
                    ..Default::default()
                })
                .await
                .map(|_| ()),
        ),
        "Audit.ReadJournal" => match client.read_journal(1, 1, false).await {
            Ok(mut stream) => match stream.message().await {
                Ok(_) => Code::Ok,
                Err(status) => status.code(),
            },
            Err(e) => e.grpc_code().unwrap_or(Code::Unknown),
        },
        "Audit.GetJournalHead" => code(client.journal_head().await.map(|_| ())),
        "Audit.ReadSiteLog" => code(client.read_site_log(1, 10).await.map(|_| ())),
        other => panic!("no call for {other}"),
    }
}

/// Heads of the journal and the site log (what a refused call must not move).
async fn heads(admin: &LedgerClient) -> (pb::JournalHead, u64) {
    let journal = admin.journal_head().await.unwrap();
    let site_log = admin.read_site_log(1, 1000).await.unwrap().entries.len() as u64;
    (journal, site_log)
}

/// Goal: walk the whole matrix: every role calls every RPC; what the matrix denies is
/// PERMISSION_DENIED and changes nothing (journal and site log heads unchanged); what it
/// allows is never PERMISSION_DENIED. The peer port refuses client certificates.
#[tokio::test(flavor = "multi_thread")]
async fn every_rpc_against_every_role() {
    let test = TestCluster::start(node_bin!(), Spec::single_site(3)).await;
    let certs = test.cluster.certs.clone().unwrap();
    certs.issue(&certs.client("node-client"), "node-client", "node", (-1, 30)).unwrap();
    let admin = client_as(&test, "admin");
    must_create_accounts(&admin, vec![account("bank", "EUR"), account("target", "EUR")]).await;
    admin.create_transfers(vec![transfer("seed", "bank", "target", "1.00")], false).await.unwrap();
    let mut n = 0;
    let mut table = String::new();
    for (identity, role) in ROLES {
        let client = client_as(&test, identity);
        for (rpc, action) in RPCS {
            n += 1;
            let before = heads(&admin).await;
            let code = call(&client, rpc, n).await;
            let allowed = allows(*role, *action);
            if allowed {
                assert_ne!(code, Code::PermissionDenied, "{identity} may call {rpc}");
            } else {
                assert_eq!(code, Code::PermissionDenied, "{identity} may not call {rpc}");
                assert_eq!(heads(&admin).await, before, "a refused {rpc} by {identity} changed nothing");
            }
            table.push_str(&format!("{identity:<12} {rpc:<26} {code:?}\n"));
        }
    }
    eprintln!("{table}");

    // The Raft port takes node certificates only.
    let key = test.leader("primary").await;
    let mut peer = peer_client_as(&test, key.1, "writer");
    let refused = peer
        .vote(ledger_proto::v1::peer::RaftRequest { cluster: "primary".into(), from: 9, to: key.1, payload: vec![] })
        .await
        .expect_err("a writer certificate may not speak Raft");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    // Nor stream it a snapshot: refused before the first part is read.
    let part = ledger_proto::v1::peer::SnapshotPart {
        request: Some(ledger_proto::v1::peer::RaftRequest {
            cluster: "primary".into(),
            from: 9,
            to: key.1,
            payload: vec![],
        }),
        data: vec![],
    };
    let refused = peer
        .stream_snapshot(tokio_stream::iter(vec![part]))
        .await
        .expect_err("a writer certificate may not send a snapshot");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
}

/// Goal: a node refuses a damaged snapshot stream from a peer before installing anything, and
/// goes on serving (a damaged stream handed to openraft's install would be a storage error
/// that stops the node).
/// Method: as a node certificate, stream a follower a snapshot whose head carries a vote
/// newer than any (so it is not refused as stale) and whose bytes are a stream with one
/// changed byte; expect DATA_LOSS, then the follower's status and journal head unchanged.
#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_snapshot_stream_is_refused_and_the_node_goes_on() {
    let test = TestCluster::start(node_bin!(), Spec::single_site(3)).await;
    let certs = test.cluster.certs.clone().unwrap();
    certs.issue(&certs.client("node-client"), "node-client", "node", (-1, 30)).unwrap();
    let admin = client_as(&test, "admin");
    must_create_accounts(&admin, vec![account("bank", "EUR"), account("target", "EUR")]).await;
    let leader = test.leader("primary").await;
    let follower = test.cluster.site_keys("primary").into_iter().find(|k| *k != leader).expect("a follower");
    let before = test.status(&follower).await;
    let mut peer = peer_client_as(&test, follower.1, "node-client");
    // A stream with a checkpoint body of 4 bytes whose crc32 (0) does not match it.
    let mut stream = b"LEDGER-SNAPSHOT-2\n".to_vec();
    stream.extend_from_slice(&4u64.to_le_bytes());
    stream.extend_from_slice(&0u32.to_le_bytes());
    stream.extend_from_slice(b"body");
    let vote = ledger_node::raft::types::Vote::new_committed(u64::MAX / 2, leader.1);
    let meta = ledger_node::raft::types::SnapshotMeta {
        last_log_id: None,
        last_membership: Default::default(),
        snapshot_id: "forged".into(),
    };
    let head: ledger_node::raft::network::SnapshotHead = (vote, meta, stream.len() as u64);
    let parts = vec![
        ledger_proto::v1::peer::SnapshotPart {
            request: Some(ledger_proto::v1::peer::RaftRequest {
                cluster: "primary".into(),
                from: leader.1,
                to: follower.1,
                payload: ledger_core::codec::encode(&head),
            }),
            data: vec![],
        },
        ledger_proto::v1::peer::SnapshotPart { request: None, data: stream },
    ];
    let refused = peer.stream_snapshot(tokio_stream::iter(parts)).await.expect_err("a damaged stream is refused");
    assert_eq!(refused.code(), Code::DataLoss, "{refused:?}");
    assert!(refused.message().contains("checkpoint checksum mismatch"), "{refused:?}");
    // Still serving, on the same state, and still following the same leader.
    admin.create_transfers(vec![transfer("after", "bank", "target", "1.00")], false).await.unwrap();
    test.wait_heads_equal(&test.cluster.site_keys("primary")).await;
    let after = test.status(&follower).await;
    assert_eq!(after.snapshot_index, before.snapshot_index, "nothing installed");
    assert!(after.applied_index > before.applied_index, "{before:?} -> {after:?}");
}

/// A client presenting `tls` (or none), one attempt at Status.
async fn status_with(addr: &str, tls: Option<tonic::transport::ClientTlsConfig>) -> Result<(), tonic::Status> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint = tonic::transport::Endpoint::from_shared(format!("{scheme}://{addr}")).unwrap();
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls).unwrap();
    }
    let channel = endpoint.connect_timeout(Duration::from_secs(2)).connect_lazy();
    let mut client = ledger_proto::v1::cluster_client::ClusterClient::new(channel);
    let mut request = tonic::Request::new(pb::StatusRequest {});
    request.set_timeout(Duration::from_secs(3));
    client.status(request).await.map(|_| ())
}

fn tls_with(ca: &Path, cert: Option<(&Path, &Path)>) -> tonic::transport::ClientTlsConfig {
    let mut tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(std::fs::read(ca).unwrap()))
        .domain_name("ledger-node");
    if let Some((cert, key)) = cert {
        tls = tls
            .identity(tonic::transport::Identity::from_pem(std::fs::read(cert).unwrap(), std::fs::read(key).unwrap()));
    }
    tls
}

/// A TLS 1.2-only handshake with a valid client certificate; returns whether it succeeded.
async fn tls12_handshake(addr: &str, certs: &CertsDir) -> Result<(), String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::ServerName;
    use rustls::pki_types::pem::PemObject;
    let files = certs.client("writer");
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(&files.ca).unwrap() {
        roots.add(ca.unwrap()).unwrap();
    }
    let chain: Vec<_> = CertificateDer::pem_file_iter(&files.cert).unwrap().map(|c| c.unwrap()).collect();
    let key = PrivateKeyDer::from_pem_file(&files.key).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from("ledger-node").unwrap();
    connector.connect(name, tcp).await.map(|_| ()).map_err(|e| e.to_string())
}

/// Goal: transport refusals. A client without a certificate, with one from another CA, with
/// an expired one, over plaintext, or speaking only TLS 1.2 is refused; the node with proper
/// credentials answers.
#[tokio::test(flavor = "multi_thread")]
async fn tls_refuses_strangers_and_old_protocols() {
    let test = TestCluster::start(node_bin!(), Spec::single_site(3)).await;
    let certs = test.cluster.certs.clone().unwrap();
    let addr = test.cluster.topology.site("primary").unwrap().nodes[0].client_addr.clone();
    let writer = certs.client("writer");
    status_with(&addr, Some(tls_with(&writer.ca, Some((&writer.cert, &writer.key)))))
        .await
        .expect("a proper client is served");

    let refused = |what: &str, result: Result<(), tonic::Status>| {
        let status = result.expect_err(what);
        assert_ne!(status.code(), Code::PermissionDenied, "{what}: refused at the handshake, not by a handler");
        eprintln!("{what}: {:?} {}", status.code(), status.message());
    };
    refused("no client certificate", status_with(&addr, Some(tls_with(&writer.ca, None))).await);
    refused("plaintext", status_with(&addr, None).await);

    let other = tempfile::tempdir().unwrap();
    let other_ca = CertsDir::new(other.path());
    other_ca.ensure_all(&[]).unwrap();
    let stranger = other_ca.client("writer");
    refused(
        "certificate from another CA",
        status_with(&addr, Some(tls_with(&writer.ca, Some((&stranger.cert, &stranger.key))))).await,
    );

    let expired = certs.client("expired-writer");
    certs.issue(&expired, "expired-writer", "writer", (-30, -1)).unwrap();
    refused(
        "expired certificate",
        status_with(&addr, Some(tls_with(&writer.ca, Some((&expired.cert, &expired.key))))).await,
    );

    let tls12 = tls12_handshake(&addr, &certs).await;
    assert!(tls12.is_err(), "a TLS 1.2-only client must be refused");
    eprintln!("TLS 1.2 only: {}", tls12.unwrap_err());
}

/// Every file under `dir` (recursively), as bytes.
fn files_under(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path, bytes));
        }
    }
    out
}

/// Goal: personal data is encrypted at rest and masked for roles that may not see it. A grep
/// of every file of every node (data dirs with their checkpoints and segment logs, logs) finds no plaintext; a reader and an
/// auditor see masks; a writer and an admin see the data. Key rotation needs two operators;
/// after it new data is sealed with the new key and old data still opens.
#[tokio::test(flavor = "multi_thread")]
async fn personal_data_encrypted_masked_and_rotated() {
    let spec = Spec::single_site(3).with_tweak(|_, config| {
        config.raft.snapshot_every_entries = 5;
        config.raft.keep_entries_after_snapshot = 2;
    });
    let mut test = TestCluster::start(node_bin!(), spec).await;
    let writer = client_as(&test, "writer");
    let pii = |name: &str, nid: &str, card: &str| pb::PersonalData {
        holder_name: Some(name.into()),
        national_id: Some(nid.into()),
        card_number: Some(card.into()),
    };
    let holder = pb::NewAccount {
        personal_data: Some(pii("Zebulon Quixote", "NID-7734-SECRET", "6222123456780123")),
        ..deposit_account("holder", "EUR")
    };
    must_create_accounts(&writer, vec![holder, account("bank", "EUR")]).await;
    for i in 0..10 {
        writer.create_transfers(vec![transfer(&format!("p-{i}"), "bank", "holder", "1.00")], false).await.unwrap();
    }

    let seen = |identity: &str| {
        let client = client_as(&test, identity);
        async move {
            let a = client
                .lookup_accounts(vec!["holder".into()], pb::ReadConsistency::Linearizable)
                .await
                .unwrap()
                .accounts;
            let pd = a[0].personal_data.clone().unwrap();
            (pd.holder_name.unwrap(), pd.national_id.unwrap(), pd.card_number.unwrap(), a[0].personal_data_masked)
        }
    };
    let masked =
        ("Z****** Q******".to_string(), "************RET".to_string(), "6222 **** **** 0123".to_string(), true);
    assert_eq!(seen("reader").await, masked);
    assert_eq!(seen("auditor").await, masked);
    let clear = ("Zebulon Quixote".to_string(), "NID-7734-SECRET".to_string(), "6222123456780123".to_string(), false);
    assert_eq!(seen("writer").await, clear);
    assert_eq!(seen("admin").await, clear);

    // Key rotation: add key 2 to the key file; one operator cannot make it current.
    let key_file = test.cluster.data_key_file();
    assert_eq!(ledger_node::security::pii::DataKeys::rotate_file(&key_file).unwrap(), 2);
    let rotate = pb::SiteOperationRequest {
        kind: pb::SiteOperationKind::RotateKey as i32,
        key_id: 2,
        request_id: "rot-1".into(),
        ..Default::default()
    };
    let sites = test.dr_sites("operator-1");
    ledger_cluster::dr::approve(&sites, &["primary".into()], "rot-1", "rotate_key").await.unwrap();
    let refused = sites.operate("primary", rotate.clone()).await.expect_err("one operator is not enough");
    assert!(refused.to_string().contains("dual control"), "{refused}");
    ledger_cluster::dr::approve(&test.dr_sites("operator-2"), &["primary".into()], "rot-1", "rotate_key")
        .await
        .unwrap();
    let rotated = sites.operate("primary", rotate).await.expect("rotation with two approvals");
    assert_eq!(rotated.site.unwrap().data_key_id, 2);
    let late = pb::NewAccount {
        personal_data: Some(pii("Yolanda Late", "NID-9911-LATER", "4111111111111111")),
        ..account("late", "EUR")
    };
    LocalCluster::poll("nodes to load key 2 and seal with it", DEADLINE, || async {
        writer.create_accounts(vec![late.clone()]).await.ok().filter(|r| codes(&r.results) == ["ok"])
    })
    .await
    .unwrap();
    let both = writer
        .lookup_accounts(vec!["holder".into(), "late".into()], pb::ReadConsistency::Linearizable)
        .await
        .unwrap()
        .accounts;
    assert_eq!(both[0].personal_data.clone().unwrap().card_number.unwrap(), "6222123456780123", "old key still opens");
    assert_eq!(
        both[1].personal_data.clone().unwrap().card_number.unwrap(),
        "4111111111111111",
        "new key seals and opens"
    );

    // Stop every node (flushes everything), then grep every byte on disk and in the logs.
    let root = test.root();
    test.cluster.stop_all();
    let secrets: [&[u8]; 6] =
        [b"Zebulon", b"Quixote", b"NID-7734-SECRET", b"6222123456780123", b"Yolanda", b"4111111111111111"];
    let files = files_under(&root);
    // State checkpoints (what snapshots are streamed from) and segment logs are among them.
    assert!(
        files.iter().any(|(p, _)| p.extension().is_some_and(|e| e == "ckpt")),
        "checkpoints were written and checked"
    );
    assert!(files.iter().any(|(p, _)| p.extension().is_some_and(|e| e == "seg")), "segment logs were checked");
    for (path, bytes) in &files {
        for secret in secrets {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret),
                "{} contains {:?} in plaintext",
                path.display(),
                String::from_utf8_lossy(secret)
            );
        }
    }
    eprintln!("{} files checked for plaintext personal data", files.len());
}

fn cli(test: &TestCluster, identity: &str, args: &[&str]) -> std::process::Output {
    let files = test.cluster.certs.as_ref().unwrap().client(identity);
    let endpoints = test.cluster.topology.site("primary").unwrap().endpoints().join(",");
    std::process::Command::new(env!("CARGO_BIN_EXE_ledger-test-cli"))
        .args(["--endpoints", &endpoints])
        .args([
            "--ca",
            files.ca.to_str().unwrap(),
            "--cert",
            files.cert.to_str().unwrap(),
            "--key",
            files.key.to_str().unwrap(),
        ])
        .args(args)
        .output()
        .expect("run the ledger CLI")
}

/// Goal: auditors verify the journal offline. `ledger journal export` writes JSON Lines;
/// `ledger journal verify` recomputes the chain from genesis (from a node and from the file),
/// replays the balances independently and compares them with the node, compares every node's
/// head, and, when one byte of one record was changed, names that record.
#[tokio::test(flavor = "multi_thread")]
async fn journal_export_verify_and_tamper_detection() {
    let test = TestCluster::start(node_bin!(), Spec::single_site(3)).await;
    let writer = client_as(&test, "writer");
    must_create_accounts(&writer, vec![account("bank", "EUR"), deposit_account("a", "EUR"), account("b", "EUR")]).await;
    writer.create_transfers(vec![transfer("t0", "bank", "a", "50.00")], false).await.unwrap();
    for i in 1..12 {
        writer
            .create_transfers(
                vec![transfer(&format!("t{i}"), "a", "b", "1.25"), pending(&format!("p{i}"), "a", "b", "0.50", 0)],
                false,
            )
            .await
            .unwrap();
    }

    let verified = cli(&test, "auditor", &["journal", "verify"]);
    let text = String::from_utf8_lossy(&verified.stdout);
    assert!(verified.status.success(), "verify from a node: {text}{}", String::from_utf8_lossy(&verified.stderr));
    assert!(text.contains("chain: OK") && text.contains("0 mismatches") && text.contains("VERIFIED"), "{text}");
    assert_eq!(text.matches("same head").count(), 3, "all three nodes hold the verified head: {text}");

    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("journal.jsonl");
    let exported = cli(&test, "auditor", &["journal", "export", "--out", export.to_str().unwrap()]);
    assert!(exported.status.success(), "{}", String::from_utf8_lossy(&exported.stderr));
    let from_file = cli(&test, "auditor", &["journal", "verify", "--file", export.to_str().unwrap()]);
    assert!(from_file.status.success(), "{}", String::from_utf8_lossy(&from_file.stdout));

    // Flip one byte (one hex digit of the canonical bytes) of the 7th record.
    let text = std::fs::read_to_string(&export).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let mut record: serde_json::Value = serde_json::from_str(&lines[6]).unwrap();
    let mut canonical = record["canonical"].as_str().unwrap().to_string();
    let at = canonical.len() - 10;
    let flipped = if &canonical[at..at + 1] == "0" { "1" } else { "0" };
    canonical.replace_range(at..at + 1, flipped);
    record["canonical"] = serde_json::Value::String(canonical);
    lines[6] = record.to_string();
    let tampered = dir.path().join("tampered.jsonl");
    std::fs::write(&tampered, lines.join("\n")).unwrap();
    let detected = cli(&test, "auditor", &["journal", "verify", "--file", tampered.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&detected.stdout);
    assert_eq!(detected.status.code(), Some(2), "{out}");
    assert!(out.contains("FAILED at record 7"), "names the altered record: {out}");
    assert!(out.contains("6 records before it verify"), "{out}");

    // A reader may not read the journal.
    let denied = cli(&test, "reader", &["journal", "verify"]);
    assert!(!denied.status.success());
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("PermissionDenied"),
        "{}",
        String::from_utf8_lossy(&denied.stderr)
    );
}
