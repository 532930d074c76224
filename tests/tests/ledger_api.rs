//! The client API against a real 3-node cluster: two-phase transfers and expiry, atomic
//! batches, every rejection of bad input (with "changes nothing" checked), linearizable reads
//! on followers, history paging, the journal stream, health and metrics.

use std::io::Read;
use std::io::Write;
use std::time::Duration;

use ledger_client::LedgerClient;
use ledger_client::proto as pb;
use ledger_cluster::launcher::LocalCluster;
use ledger_tests::*;

async fn head(client: &LedgerClient) -> pb::JournalHead {
    client.journal_head().await.expect("journal head")
}

async fn transfer_state(client: &LedgerClient, id: &str) -> (String, String) {
    let response = client.lookup_transfers(vec![id.into()], pb::ReadConsistency::Linearizable).await.expect("lookup");
    let t = response.transfers.first().unwrap_or_else(|| panic!("transfer {id} not found"));
    let state = pb::TransferState::try_from(t.state)
        .unwrap()
        .as_str_name()
        .trim_start_matches("TRANSFER_STATE_")
        .to_lowercase();
    (state, t.amount.clone())
}

/// Goal: the whole two-phase lifecycle through the API: a pending transfer reserves funds; a
/// partial post moves part and releases the rest; a void releases; a pending transfer with a
/// timeout expires in ledger time (the leader's timer proposes it) and can no longer be
/// posted; an atomic batch with one failing transfer changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn two_phase_expiry_and_atomic_batches() {
    let test = TestCluster::start(node_bin!(), Spec::single_site(3)).await;
    let c = test.client();
    must_create_accounts(&c, vec![account("bank", "EUR"), deposit_account("alice", "EUR"), account("shop", "EUR")])
        .await;
    let r = c.create_transfers(vec![transfer("fund", "bank", "alice", "100.00")], false).await.unwrap();
    assert_eq!(codes(&r.results), ["ok"]);

    // Pending, then a partial post: 30 reserved, 12.50 posted, the rest released.
    let r = c.create_transfers(vec![pending("p1", "alice", "shop", "30.00", 0)], false).await.unwrap();
    assert_eq!(codes(&r.results), ["ok"]);
    let b = balances(&c, &["alice".into()]).await;
    assert_eq!(b["alice"], ["0.00".to_string(), "30.00".into(), "100.00".into(), "0.00".into()]);
    // More than is free: 100 - 30 reserved leaves 70.
    let r = c.create_transfers(vec![transfer("too-much", "alice", "shop", "70.01")], false).await.unwrap();
    assert_eq!(codes(&r.results), ["exceeds_credits"]);
    let r = c.create_transfers(vec![post("p1-post", "p1", "12.50")], false).await.unwrap();
    assert_eq!(codes(&r.results), ["ok"]);
    assert_eq!(transfer_state(&c, "p1").await.0, "pending_posted");
    let b = balances(&c, &["alice".into(), "shop".into()]).await;
    assert_eq!(b["alice"], ["12.50".to_string(), "0.00".into(), "100.00".into(), "0.00".into()]);
    assert_eq!(b["shop"], ["0.00".to_string(), "0.00".into(), "12.50".into(), "0.00".into()]);
    let r = c.create_transfers(vec![post("p1-post-again", "p1", "")], false).await.unwrap();
    assert_eq!(codes(&r.results), ["pending_transfer_already_posted"]);

    // Void releases everything.
    c.create_transfers(vec![pending("p2", "alice", "shop", "20.00", 0)], false).await.unwrap();
    let r = c.create_transfers(vec![void("p2-void", "p2")], false).await.unwrap();
    assert_eq!(codes(&r.results), ["ok"]);
    assert_eq!(transfer_state(&c, "p2").await.0, "pending_voided");
    let r = c.create_transfers(vec![post("p2-post", "p2", "")], false).await.unwrap();
    assert_eq!(codes(&r.results), ["pending_transfer_already_voided"]);

    // Expiry in ledger time, with no further traffic: the leader's timer expires it.
    c.create_transfers(vec![pending("p3", "alice", "shop", "5.00", 1500)], false).await.unwrap();
    LocalCluster::poll("p3 to expire", DEADLINE, || async {
        (transfer_state(&c, "p3").await.0 == "pending_expired").then_some(())
    })
    .await
    .unwrap();
    let b = balances(&c, &["alice".into()]).await;
    assert_eq!(b["alice"][1], "0.00", "the expired reservation is released");
    let r = c.create_transfers(vec![post("p3-post", "p3", "")], false).await.unwrap();
    assert_eq!(codes(&r.results), ["pending_transfer_expired"]);

    // An atomic batch rolls back as a whole when one transfer fails.
    let before = balances(&c, &["alice".into(), "shop".into(), "bank".into()]).await;
    let r = c
        .create_transfers(
            vec![
                transfer("a1", "bank", "alice", "1.00"),
                transfer("a2", "alice", "shop", "1000.00"),
                transfer("a3", "bank", "shop", "1.00"),
            ],
            true,
        )
        .await
        .unwrap();
    assert_eq!(codes(&r.results), ["linked_event_failed", "exceeds_credits", "linked_event_failed"]);
    assert_eq!(balances(&c, &["alice".into(), "shop".into(), "bank".into()]).await, before);
    // The same chain that fits is applied as a whole.
    let r = c
        .create_transfers(vec![transfer("b1", "bank", "alice", "1.00"), transfer("b2", "alice", "shop", "2.00")], true)
        .await
        .unwrap();
    assert_eq!(codes(&r.results), ["ok", "ok"]);
}

fn status_code(e: &ledger_client::ClientError) -> (Option<tonic::Code>, String) {
    (e.grpc_code(), e.error_code().to_string())
}

/// Goal: every kind of bad input gets a precise per-item code or gRPC status and changes
/// nothing (not even the journal) when it is refused before proposing.
#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_and_changes_nothing() {
    let test = TestCluster::start(node_bin!(), Spec::single_site(3)).await;
    let c = test.client();
    must_create_accounts(&c, vec![account("a", "EUR"), account("b", "EUR"), account("yen", "JPY")]).await;
    let start = head(&c).await;

    // Accounts: each malformed item gets its code; nothing is proposed.
    let long = "x".repeat(65);
    let r = c
        .create_accounts(vec![
            account("", "EUR"),
            account(&long, "EUR"),
            account("bad id", "EUR"),
            account("c1", "XXX"),
            pb::NewAccount {
                flags: Some(pb::AccountFlags {
                    debits_must_not_exceed_credits: true,
                    credits_must_not_exceed_debits: true,
                }),
                ..account("c2", "EUR")
            },
            pb::NewAccount { overdraft_limit: "-5".into(), ..deposit_account("c3", "EUR") },
            pb::NewAccount { overdraft_limit: "5".into(), ..account("c4", "EUR") },
            pb::NewAccount { overdraft_limit: "1.001".into(), ..deposit_account("c5", "EUR") },
            pb::NewAccount { overdraft_limit: "lots".into(), ..deposit_account("c6", "EUR") },
            pb::NewAccount {
                personal_data: Some(pb::PersonalData { holder_name: Some("n".repeat(129)), ..Default::default() }),
                ..account("c7", "EUR")
            },
        ])
        .await
        .unwrap();
    assert_eq!(
        codes(&r.results),
        [
            "id_invalid",
            "id_invalid",
            "id_invalid",
            "currency_unknown",
            "flags_mutually_exclusive",
            "overdraft_limit_invalid",
            "overdraft_limit_invalid",
            "overdraft_limit_invalid",
            "overdraft_limit_invalid",
            "personal_data_too_long",
        ]
    );
    assert_eq!(head(&c).await, start, "nothing was journaled");

    // Transfers: each malformed item gets its code.
    let t = |id: &str, amount: &str| transfer(id, "a", "b", amount);
    let r = c
        .create_transfers(
            vec![
                t("", "1.00"),
                t(&long, "1.00"),
                transfer("t1", "", "b", "1.00"),
                transfer("t2", "a", "bad/id", "1.00"),
                transfer("t3", "a", "a", "1.00"),
                t("t4", "-1.00"),
                t("t5", "0"),
                pb::NewTransfer { currency: "EUR".into(), ..t("t6", "1.001") },
                t("t7", "1000000000000000.01"),
                t("t8", "99999999999999999999999999999999"),
                t("t9", "1e3"),
                t("t10", "abc"),
                pb::NewTransfer { reference: "r".repeat(129), ..t("t11", "1.00") },
                pb::NewTransfer { currency: "XXX".into(), ..t("t12", "1.00") },
                pb::NewTransfer { kind: 99, ..t("t13", "1.00") },
                pb::NewTransfer { timeout_ms: 5, ..t("t14", "1.00") },
                pb::NewTransfer { pending_id: "x".into(), ..t("t15", "1.00") },
                pending("t16", "a", "b", "1.00", 400 * 24 * 3600 * 1000),
                post("t17", "t17", ""),
                post("t18", "bad id", ""),
            ],
            false,
        )
        .await
        .unwrap();
    assert_eq!(
        codes(&r.results),
        [
            "id_invalid",
            "id_invalid",
            "debit_account_id_invalid",
            "credit_account_id_invalid",
            "accounts_must_be_different",
            "amount_not_positive",
            "amount_not_positive",
            "amount_too_precise",
            "amount_too_large",
            "amount_invalid",
            "amount_invalid",
            "amount_invalid",
            "reference_too_long",
            "currency_unknown",
            "kind_invalid",
            "timeout_invalid",
            "kind_invalid",
            "timeout_invalid",
            "pending_id_must_be_different",
            "pending_id_invalid",
        ]
    );
    assert_eq!(head(&c).await, start, "nothing was journaled");

    // An atomic batch with one malformed item: nothing proposed, the rest linked_event_failed.
    let r = c.create_transfers(vec![t("u1", "1.00"), t("u2", "0"), t("u3", "1.00")], true).await.unwrap();
    assert_eq!(codes(&r.results), ["linked_event_failed", "amount_not_positive", "linked_event_failed"]);
    assert_eq!(r.commit.unwrap().journal_seq, 0);
    assert_eq!(head(&c).await, start, "nothing was journaled");

    // A non-atomic batch applies its good items only.
    let r = c.create_transfers(vec![t("v1", "1.00"), t("v2", "0"), t("v3", "2.00")], false).await.unwrap();
    assert_eq!(codes(&r.results), ["ok", "amount_not_positive", "ok"]);

    // State-dependent rejections are applied (and journaled) results.
    let r = c
        .create_transfers(
            vec![
                transfer("w1", "a", "nobody", "1.00"),
                transfer("w2", "nobody", "b", "1.00"),
                transfer("w3", "a", "yen", "1.00"),
                transfer("w4", "yen", "a", "1"),
                transfer("w5", "b", "yen", "0.5"),
                post("w6", "no-such-pending", ""),
                post("w7", "v1", ""),
            ],
            false,
        )
        .await
        .unwrap();
    assert_eq!(
        codes(&r.results),
        [
            "credit_account_not_found",
            "debit_account_not_found",
            "currency_mismatch",
            "currency_mismatch",
            "currency_mismatch",
            "pending_transfer_not_found",
            "pending_transfer_not_pending",
        ]
    );
    // Idempotency: same id, different body.
    let r = c.create_transfers(vec![t("v1", "9.00")], false).await.unwrap();
    assert_eq!(codes(&r.results), ["id_conflict"]);

    // Whole-request refusals are gRPC statuses with stable codes, and change nothing.
    let before = head(&c).await;
    let e = c.create_transfers(vec![], false).await.unwrap_err();
    assert_eq!(status_code(&e), (Some(tonic::Code::InvalidArgument), "batch_size".into()), "{e}");
    let many: Vec<_> = (0..501).map(|i| t(&format!("m{i}"), "1.00")).collect();
    let e = c.create_transfers(many, false).await.unwrap_err();
    assert_eq!(status_code(&e), (Some(tonic::Code::InvalidArgument), "batch_size".into()), "{e}");
    let fat: Vec<_> =
        (0..500).map(|i| pb::NewTransfer { reference: "r".repeat(128), ..t(&format!("f{i}"), "1.00") }).collect();
    let e = c.create_transfers(fat, false).await.unwrap_err();
    assert_eq!(status_code(&e), (Some(tonic::Code::InvalidArgument), "batch_too_large".into()), "{e}");
    let e = c.create_accounts(vec![]).await.unwrap_err();
    assert_eq!(status_code(&e), (Some(tonic::Code::InvalidArgument), "batch_size".into()));
    let e = c.update_accounts(vec![]).await.unwrap_err();
    assert_eq!(status_code(&e), (Some(tonic::Code::InvalidArgument), "batch_size".into()));
    let e = c.lookup_accounts(vec![], pb::ReadConsistency::Linearizable).await.unwrap_err();
    assert_eq!(status_code(&e), (Some(tonic::Code::InvalidArgument), "batch_size".into()));
    let e = c.account_history("bad id", 1, 10, pb::ReadConsistency::Linearizable).await.unwrap_err();
    assert_eq!(status_code(&e), (Some(tonic::Code::InvalidArgument), "id_invalid".into()));
    let e = c.account_history("a", 1, 1001, pb::ReadConsistency::Linearizable).await.unwrap_err();
    assert_eq!(status_code(&e), (Some(tonic::Code::InvalidArgument), "limit_invalid".into()));
    let e = c.account_history("nobody", 1, 10, pb::ReadConsistency::Linearizable).await.unwrap_err();
    assert_eq!(status_code(&e), (Some(tonic::Code::NotFound), "not_found".into()));
    let r = c.update_accounts(vec![pb::AccountUpdate { id: "a".into(), action: 0 }]).await.unwrap();
    assert_eq!(codes(&r.results), ["kind_invalid"]);
    assert_eq!(head(&c).await, before, "whole-request refusals journal nothing");
}

/// Goal: linearizable reads on any node see every write acknowledged before they started,
/// on followers too (read index from the leader).
#[tokio::test(flavor = "multi_thread")]
async fn follower_reads_are_linearizable() {
    let test = TestCluster::start(node_bin!(), Spec::single_site(3)).await;
    let keys = test.cluster.site_keys("primary");
    let writer = test.node_client(&keys[0]);
    must_create_accounts(&writer, vec![account("x", "EUR"), account("y", "EUR")]).await;
    for i in 0..20 {
        let r = writer.create_transfers(vec![transfer(&format!("lin-{i}"), "x", "y", "1.00")], false).await.unwrap();
        assert_eq!(codes(&r.results), ["ok"]);
        let reader = test.node_client(&keys[(i % 2) + 1]);
        let seen = reader.lookup_transfers(vec![format!("lin-{i}")], pb::ReadConsistency::Linearizable).await.unwrap();
        assert_eq!(seen.transfers.len(), 1, "node {:?} missed an acknowledged write", keys[(i % 2) + 1]);
        let read = seen.read.unwrap();
        assert!(read.journal_seq >= r.commit.as_ref().unwrap().journal_seq);
    }
}

/// Goal: history pages follow `next_index`; the journal streams in order and verifies; head,
/// status, gRPC health and Prometheus metrics answer.
#[tokio::test(flavor = "multi_thread")]
async fn history_journal_status_health_metrics() {
    let test = TestCluster::start(node_bin!(), Spec::single_site(3)).await;
    let c = test.client();
    must_create_accounts(&c, vec![account("h1", "EUR"), account("h2", "EUR")]).await;
    for batch in 0..5 {
        let transfers = (0..30).map(|i| transfer(&format!("h-{batch}-{i}"), "h1", "h2", "0.01")).collect();
        c.create_transfers(transfers, false).await.unwrap();
    }
    let mut rows = Vec::new();
    let mut next = 1;
    loop {
        let page = c.account_history("h1", next, 40, pb::ReadConsistency::Linearizable).await.unwrap();
        rows.extend(page.rows);
        if page.next_index == 0 {
            break;
        }
        next = page.next_index;
    }
    assert_eq!(rows.len(), 150);
    assert!(rows.iter().enumerate().all(|(i, r)| r.index == i as u64 + 1 && r.side == "debit"));
    assert_eq!(rows.last().unwrap().debits_posted, "1.50");

    // The journal streams from seq 1, chained, and its head matches GetJournalHead.
    let mut stream = c.read_journal(1, 0, false).await.unwrap();
    let mut verifier = ledger_client::audit::ChainVerifier::default();
    while let Some(record) = stream.message().await.unwrap() {
        let decoded = ledger_client::audit::decode_record(verifier.records, &record).unwrap();
        verifier.push(&decoded).unwrap();
    }
    let head = c.journal_head().await.unwrap();
    assert_eq!(verifier.head.seq, head.seq);
    assert_eq!(verifier.head.hash.0.to_vec(), head.hash);

    // Status names the node, its zone, role, leader and the site.
    let leader = test.leader("primary").await;
    let status = test.status(&leader).await;
    assert_eq!(status.raft_role, "leader");
    assert_eq!(status.members.len(), 3);
    assert!(status.commit_index >= status.applied_index.saturating_sub(1));
    let site = status.site.unwrap();
    assert_eq!((site.name.as_str(), site.role.as_str(), site.epoch), ("primary", "active", 1));

    // gRPC health.
    let spec = test.cluster.topology.site("primary").unwrap().node(leader.1).unwrap().clone();
    let tls = test.cluster.client_config_as("reader", vec![]).unwrap().tls.expect("the test cluster runs TLS");
    let channel = tonic::transport::Endpoint::from_shared(format!("https://{}", spec.client_addr))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    // Health follows the node every 250 ms: poll until the leader says it takes writes.
    let health = tonic_health::pb::health_client::HealthClient::new(channel);
    let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
    LocalCluster::poll("the leader's health says it takes writes", DEADLINE, || {
        let mut health = health.clone();
        async move {
            let answer = health
                .check(tonic_health::pb::HealthCheckRequest { service: "ledger.v1.Ledger".into() })
                .await
                .ok()?
                .into_inner();
            (answer.status == serving).then_some(())
        }
    })
    .await
    .unwrap();

    // Prometheus metrics over plain HTTP.
    let body = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(&spec.metrics_addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(stream, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut body = String::new();
        stream.read_to_string(&mut body).unwrap();
        body
    })
    .await
    .unwrap();
    for metric in [
        "ledger_raft_term",
        "ledger_raft_commit_index",
        "ledger_journal_seq",
        "ledger_transfer_results_total",
        "ledger_request_duration_seconds_bucket",
    ] {
        assert!(body.contains(metric), "metrics lack {metric}");
    }
}
