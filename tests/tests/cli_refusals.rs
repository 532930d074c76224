//! Refusals end every command-line command at once (issue 9, defect 7): each `ledger` and
//! `ledger-cluster` subcommand that talks to a node, run with an identity whose role may not
//! do it, exits non-zero within a few seconds and says on stderr which role it needed; an
//! explicit `--as` beats `LEDGER_CA`/`LEDGER_CERT`/`LEDGER_KEY` in the environment; and every
//! `ledger-cluster` subcommand honours `--json`. Real clusters, the real binaries.

use std::time::Duration;

use ledger_tests::CliRun;
use ledger_tests::DEADLINE;
use ledger_tests::Spec;
use ledger_tests::TestCluster;
use ledger_tests::node_bin;

const CLI: &str = env!("CARGO_BIN_EXE_ledger-test-cli");
const CLUSTER: &str = env!("CARGO_BIN_EXE_ledger-test-cluster");

/// What "at once" means: a refusal takes one round trip; this leaves room for a loaded CI
/// machine and none for a retry loop (the client's retry deadline is 30 s).
const REFUSAL_LIMIT: Duration = Duration::from_secs(10);

/// Runs a command-line tool off the async runtime (the cluster's tasks keep running).
async fn run(program: &'static str, args: Vec<String>, env: Vec<(&'static str, String)>) -> CliRun {
    tokio::task::spawn_blocking(move || ledger_tests::run_cli_within(program, &args, &env, REFUSAL_LIMIT))
        .await
        .expect("the command runner does not panic")
}

/// The command failed, within the limit, with a permission refusal that names `role` among
/// the roles it needed.
fn must_be_refused(what: &str, run: &CliRun, role: &str) {
    assert!(!run.success, "{what}: a refusal exits non-zero: {run:#?}");
    assert!(run.elapsed < REFUSAL_LIMIT, "{what}: took {:?}", run.elapsed);
    assert!(run.stderr.contains("PermissionDenied"), "{what}: says it was refused: {run:#?}");
    let needed = run
        .stderr
        .split_once("needs role")
        .map(|(_, rest)| rest.lines().next().unwrap_or(""))
        .unwrap_or_else(|| panic!("{what}: names the role it needed (\"needs role ...\"): {run:#?}"));
    assert!(needed.contains(role), "{what}: needed {role}, the message says \"needs role{needed}\"");
}

/// The command failed, within the limit, saying `reason`.
fn must_fail_with(what: &str, run: &CliRun, reason: &str) {
    assert!(!run.success, "{what}: exits non-zero: {run:#?}");
    assert!(run.elapsed < REFUSAL_LIMIT, "{what}: took {:?}", run.elapsed);
    assert!(run.stderr.contains(reason), "{what}: says {reason:?}: {run:#?}");
}

fn must_succeed(what: &str, run: &CliRun) {
    assert!(run.success, "{what}: {run:#?}");
}

fn json_of(what: &str, run: &CliRun) -> serde_json::Value {
    must_succeed(what, run);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{what}: prints JSON ({e}): {run:#?}"))
}

/// An active primary and a standby DR site of three nodes each, no fault proxies.
fn primary_and_dr() -> Spec {
    Spec { proxied_sites: false, ..Spec::primary_and_dr() }
}

/// Goal: "refusals: a wrong role ends every command at once, naming the role it needs".
/// Method: every `ledger` subcommand that talks to a node, as an identity whose role may not
/// run it (an operator for customer data, a writer for the journal), and every
/// `ledger-cluster` one as the writer; each must exit non-zero within the limit and print the
/// role it needed. The two calls every role may make (status, the journal head) are refused
/// for a certificate without a known role. Nothing the refused commands asked for happened.
#[tokio::test(flavor = "multi_thread")]
async fn refusals_end_every_command_at_once() {
    let test = TestCluster::start(node_bin!(), primary_and_dr()).await;
    let writer = test.client();
    ledger_tests::must_create_accounts(
        &writer,
        vec![ledger_tests::account("bank", "EUR"), ledger_tests::account("alice", "EUR")],
    )
    .await;
    writer
        .create_transfers(vec![ledger_tests::pending("p1", "bank", "alice", "1.00", 600_000)], false)
        .await
        .expect("a pending transfer");
    let journal_before = writer.journal_head().await.expect("journal head");

    let ledger = |identity: &str, args: &[&str]| run(CLI, test.ledger_cli_args(identity, args), Vec::new());
    let ledger_cases: &[(&str, &[&str], &str)] = &[
        ("operator-1", &["account", "create", "carol", "--currency", "EUR"], "writer"),
        ("operator-1", &["account", "get", "alice"], "reader"),
        ("operator-1", &["account", "freeze", "alice"], "writer"),
        ("operator-1", &["account", "unfreeze", "alice"], "writer"),
        ("operator-1", &["account", "close", "alice"], "writer"),
        ("operator-1", &["transfer", "--id", "t1", "--from", "bank", "--to", "alice", "--amount", "1"], "writer"),
        ("operator-1", &["transfer", "post", "p1", "--id", "p1-post"], "writer"),
        ("operator-1", &["transfer", "void", "p1", "--id", "p1-void"], "writer"),
        ("operator-1", &["transfer", "get", "p1"], "reader"),
        ("operator-1", &["history", "alice"], "reader"),
        (
            "operator-1",
            &["bench", "--duration", "1", "--accounts", "2", "--concurrency", "1", "--batch", "1"],
            "writer",
        ),
        ("writer", &["journal", "tail"], "auditor"),
        ("writer", &["journal", "tail", "--from", "1"], "auditor"),
        ("writer", &["journal", "verify"], "auditor"),
    ];
    for (identity, args, role) in ledger_cases {
        let what = format!("ledger {} as {identity}", args.join(" "));
        must_be_refused(&what, &ledger(identity, args).await, role);
    }
    let export = test.root().join("export.jsonl");
    let args = ["journal", "export", "--out", export.to_str().unwrap()];
    must_be_refused("ledger journal export as writer", &ledger("writer", &args).await, "auditor");

    let cluster = |args: &[&str]| run(CLUSTER, test.cluster_cli_args(args), Vec::new());
    let report_dir = test.root().join("reconciliation");
    let report_dir = report_dir.to_str().unwrap();
    let cluster_cases: &[&[&str]] = &[
        &[
            "add-node",
            "--site",
            "primary",
            "--id",
            "9",
            "--zone",
            "z",
            "--client-addr",
            "127.0.0.1:9",
            "--peer-addr",
            "127.0.0.1:9",
        ],
        &["remove-node", "--site", "primary", "--id", "3"],
        &["transfer-leader", "--site", "primary", "--to", "2"],
        &["keys", "rotate", "--key-id", "1", "--request-id", "r-keys"],
        &["site-log", "--site", "primary"],
        &["dr", "fence", "--site", "primary"],
        &["dr", "unfence", "--site", "primary"],
        &["dr", "approve", "--request-id", "r-approve", "--action", "switchover"],
        &["dr", "switchover", "--request-id", "r-switchover"],
        &["dr", "promote", "--force", "--site", "dr", "--request-id", "r-promote"],
        &[
            "dr",
            "failback",
            "--old",
            "dr",
            "--active",
            "primary",
            "--request-id",
            "r-failback",
            "--report-dir",
            report_dir,
        ],
    ];
    for args in cluster_cases {
        let mut all = vec!["--as", "writer"];
        all.extend_from_slice(args);
        must_be_refused(&format!("ledger-cluster {}", all.join(" ")), &cluster(&all).await, "operator");
    }

    // Every role may read the status and the journal head: a certificate with no known role
    // may not. Issued by the cluster's CA, so the TLS handshake succeeds and the node refuses.
    let certs = test.cluster.certs.clone().unwrap();
    certs.issue(&certs.client("nobody"), "nobody", "nobody", (-1, 30)).expect("issue a certificate");
    for args in [&["status"][..], &["journal", "head"]] {
        let what = format!("ledger {} as nobody", args.join(" "));
        must_fail_with(&what, &ledger("nobody", args).await, "unknown role");
    }
    must_fail_with("ledger-cluster status as nobody", &cluster(&["--as", "nobody", "status"]).await, "unknown role");
    must_succeed("ledger-cluster status as the writer", &cluster(&["--as", "writer", "status"]).await);
    must_succeed("ledger status as the writer", &ledger("writer", &["status"]).await);

    // A certificate from another CA is refused at the handshake (which a gRPC call sees only
    // as a broken connection): final, not retried.
    let stranger = tempfile::tempdir().unwrap();
    let other = ledger_cluster::certs::CertsDir::new(stranger.path());
    other.ensure_all(&[]).expect("another CA");
    let other_writer = other.client("writer");
    let mut args = test.ledger_cli_args("writer", &["account", "get", "alice"]);
    let cert_at = args.iter().position(|a| a == "--cert").unwrap() + 1;
    args[cert_at] = other_writer.cert.display().to_string();
    args[cert_at + 2] = other_writer.key.display().to_string();
    let what = "ledger account get with another CA's certificate";
    must_fail_with(what, &run(CLI, args, Vec::new()).await, "TLS handshake refused");
    let ca = test.cluster.certs.as_ref().unwrap().ca_path().display().to_string();
    let files = [("LEDGER_CA", ca), ("LEDGER_CERT", other_writer.cert.display().to_string())];
    let mut env: Vec<(&'static str, String)> = files.to_vec();
    env.push(("LEDGER_KEY", other_writer.key.display().to_string()));
    let stranger_status = run(CLUSTER, test.cluster_cli_args(&["status"]), env).await;
    must_fail_with("ledger-cluster status with another CA's certificate", &stranger_status, "TLS handshake refused");

    let site = test.status(&test.leader("primary").await).await.site.unwrap();
    assert!(site.role == "active" && !site.fenced, "nothing a refused command asked for happened: {site:?}");
    assert_eq!(writer.journal_head().await.unwrap(), journal_before, "no refused command wrote a record");
}

/// Goal: "identity: an explicit --as beats LEDGER_CA/LEDGER_CERT/LEDGER_KEY" (the reported
/// hang). Method: with the writer's identity in the environment, as README has a shell set
/// it, `ledger-cluster --as operator-2 dr approve` records operator-2's approval; without
/// `--as` the environment's writer is used and refused at once, and the message says which
/// certificate was presented; `--as` with `--cert` flags is an error; the `ledger` CLI refuses
/// a `--cert` flag paired with another identity's `LEDGER_KEY`.
#[tokio::test(flavor = "multi_thread")]
async fn explicit_as_beats_the_environment() {
    let test = TestCluster::start(node_bin!(), Spec::single_site(3)).await;
    let writer_env = test.identity_env("writer");
    let cluster = |args: &[&str], env: Vec<(&'static str, String)>| run(CLUSTER, test.cluster_cli_args(args), env);

    let approve = ["dr", "approve", "--request-id", "env-1", "--action", "switchover"];
    let mut args = vec!["--json", "--as", "operator-2"];
    args.extend_from_slice(&approve);
    let approved =
        json_of("--as operator-2 with the writer in the environment", &cluster(&args, writer_env.clone()).await);
    assert_eq!(approved["identity"], "operator-2", "{approved}");
    assert_eq!(approved["sites"], serde_json::json!(["primary"]), "{approved}");
    let site_log = test.client().read_site_log(1, 1000).await.expect("site log");
    assert!(
        site_log.entries.iter().any(|e| e.caller == "operator-2"),
        "operator-2's approval is recorded: {:?}",
        site_log.entries
    );

    let refused = cluster(&approve, writer_env.clone()).await;
    must_be_refused("dr approve with the writer in the environment", &refused, "operator");
    assert!(refused.stderr.contains("LEDGER_CERT"), "says where the identity came from: {refused:#?}");

    let files = test.cluster.certs.as_ref().unwrap().client("operator-1");
    let mut args = vec!["--as", "operator-2", "--cert"];
    args.push(files.cert.to_str().unwrap());
    args.extend_from_slice(&["--key", files.key.to_str().unwrap(), "--ca", files.ca.to_str().unwrap(), "status"]);
    must_fail_with("--as with --cert flags", &cluster(&args, Vec::new()).await, "--as operator-2 and --");

    let operator = test.cluster.certs.as_ref().unwrap().client("operator-1");
    let mut args = test.ledger_cli_args("reader", &["account", "get", "x"]);
    args.retain(|a| a != "--key" && !a.ends_with("reader.key"));
    args.retain(|a| a != "--cert" && !a.ends_with("reader.pem"));
    args.extend(["--cert".to_string(), operator.cert.display().to_string()]);
    let env = vec![("LEDGER_KEY", test.identity_env("writer")[2].1.clone())];
    must_fail_with("ledger --cert with another identity's LEDGER_KEY", &run(CLI, args, env).await, "go together");
}

/// Goal: "--json: every ledger-cluster subcommand prints JSON". Method: a 4-node site with 3
/// bootstrapped; add node 4, move the leadership to it, remove node 1, add a data key,
/// approve and rotate to it, fence and unfence, make certificates, read the status and the
/// site log, each with `--json`, parsing what each prints.
#[tokio::test(flavor = "multi_thread")]
async fn every_cluster_command_prints_json() {
    let mut test = TestCluster::start_partial(node_bin!(), Spec::single_site(4), 3).await;
    let new_key = test.key("primary", 4);
    test.cluster.start(&new_key).expect("start node 4");
    test.cluster.wait_serving(std::slice::from_ref(&new_key), DEADLINE).await.expect("node 4 serves");
    let spec = test.cluster.topology.site("primary").unwrap().node(4).unwrap().clone();
    let base = test.cluster_cli_args(&["--json"]);
    let cluster = |args: &[&str]| {
        let mut all = base.clone();
        all.extend(args.iter().map(|a| a.to_string()));
        tokio::task::spawn_blocking(move || ledger_tests::run_cli_within(CLUSTER, &all, &[], DEADLINE))
    };
    let json = |what: &str, run: Result<CliRun, tokio::task::JoinError>| json_of(what, &run.expect("runner"));

    let added = json(
        "add-node",
        cluster(&[
            "add-node",
            "--site",
            "primary",
            "--id",
            "4",
            "--zone",
            &spec.zone,
            "--client-addr",
            &spec.client_addr,
            "--peer-addr",
            &spec.peer_addr,
        ])
        .await,
    );
    assert_eq!(added["node_id"], 4, "{added}");
    assert!(added["members"].as_array().unwrap().iter().any(|m| m["node_id"] == 4 && m["voter"] == true), "{added}");
    test.wait_heads_equal(&test.cluster.site_keys("primary")).await;
    let moved = json("transfer-leader", cluster(&["transfer-leader", "--site", "primary", "--to", "4"]).await);
    assert_eq!(moved["new_leader_id"], 4, "{moved}");
    let removed = json("remove-node", cluster(&["remove-node", "--site", "primary", "--id", "1"]).await);
    assert_eq!(removed["node_id"], 1, "{removed}");
    assert!(!removed["members"].as_array().unwrap().iter().any(|m| m["node_id"] == 1), "{removed}");
    test.cluster.stop(&test.key("primary", 1));

    let added_key = json("keys add", cluster(&["keys", "add"]).await);
    let key_id = added_key["key_id"].as_u64().expect("a key id");
    assert_eq!(added_key["file"], test.cluster.data_key_file().display().to_string(), "{added_key}");
    for operator in ["operator-1", "operator-2"] {
        let approved = json(
            "dr approve",
            cluster(&["--as", operator, "dr", "approve", "--request-id", "rot-json", "--action", "rotate_key"]).await,
        );
        assert_eq!(approved["identity"], operator, "{approved}");
        assert_eq!(approved["sites"], serde_json::json!(["primary"]), "{approved}");
    }
    let key_arg = key_id.to_string();
    let rotated =
        json("keys rotate", cluster(&["keys", "rotate", "--key-id", &key_arg, "--request-id", "rot-json"]).await);
    assert_eq!(rotated["sites"][0]["data_key_id"], key_id, "{rotated}");

    let fenced = json("dr fence", cluster(&["dr", "fence", "--site", "primary"]).await);
    assert_eq!((fenced["site"].as_str(), fenced["fenced"].as_bool()), (Some("primary"), Some(true)), "{fenced}");
    let unfenced = json("dr unfence", cluster(&["dr", "unfence", "--site", "primary"]).await);
    assert_eq!(unfenced["fenced"], false, "{unfenced}");

    let out = test.root().join("more-certs");
    let certs = json("certs", cluster(&["certs", "--out", out.to_str().unwrap()]).await);
    assert!(certs["ca"].as_str().unwrap().ends_with("ca.pem"), "{certs}");
    assert_eq!(certs["nodes"].as_array().unwrap().len(), 4, "{certs}");

    let status = json("status", cluster(&["status"]).await);
    assert_eq!(status["sites"][0]["role"], "active", "{status}");
    let log = cluster(&["site-log", "--site", "primary"]).await.expect("runner");
    must_succeed("site-log", &log);
    let events: Vec<serde_json::Value> =
        log.stdout.lines().map(|l| serde_json::from_str(l).expect("a JSON line per entry")).collect();
    assert!(events.iter().any(|e| e["caller"] == "operator-2"), "{}", log.stdout);
}
