//! The `ledger` command-line client (the `ledger` binary calls [`main`]). Accounts, transfers, history, the journal, status and
//! the `bench` load generator. Exit status: 0 success, 1 error, 2 an item was rejected.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use crate::ClientConfig;
use crate::LedgerClient;
use crate::audit;
use crate::bench;
use crate::proto as pb;
use anyhow::Context;
use anyhow::bail;
use clap::Args;
use clap::Parser;
use clap::Subcommand;
use serde_json::json;

#[derive(Parser, Debug)]
#[command(name = "ledger", version, about = "Client of the replicated bank ledger")]
struct Cli {
    /// Client endpoints (host:port), comma-separated, of any site.
    #[arg(
        long,
        env = "LEDGER_ENDPOINTS",
        value_delimiter = ',',
        default_value = "127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103",
        global = true
    )]
    endpoints: Vec<String>,
    /// CA certificate (PEM) that signed the nodes' certificates.
    #[arg(long, env = "LEDGER_CA", global = true)]
    ca: Option<PathBuf>,
    /// Client certificate (PEM); its role is the certificate's organizational unit.
    #[arg(long, env = "LEDGER_CERT", global = true)]
    cert: Option<PathBuf>,
    /// Client private key (PEM).
    #[arg(long, env = "LEDGER_KEY", global = true)]
    key: Option<PathBuf>,
    /// Plaintext, no client certificate (nodes started with `insecure = true`).
    #[arg(long, env = "LEDGER_INSECURE", global = true)]
    insecure: bool,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Open, read, freeze, unfreeze or close accounts.
    #[command(subcommand)]
    Account(AccountCmd),
    /// Post a transfer (single-phase or `--pending`), or `post`/`void`/`get` one.
    Transfer(TransferCmd),
    /// An account's history rows.
    History {
        account: String,
        /// First row (1-based).
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Rows per page.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Follow `next_index` until the end.
        #[arg(long)]
        all: bool,
    },
    /// The hash-chained journal.
    #[command(subcommand)]
    Journal(JournalCmd),
    /// Status of every endpoint.
    Status,
    /// Load generator: prints transfers/s and latency percentiles.
    Bench(BenchArgs),
}

#[derive(Subcommand, Debug)]
enum AccountCmd {
    /// Open an account.
    Create {
        id: String,
        #[arg(long)]
        currency: String,
        /// Debits may not exceed credits (plus the overdraft limit).
        #[arg(long)]
        debits_must_not_exceed_credits: bool,
        /// Credits may not exceed debits.
        #[arg(long)]
        credits_must_not_exceed_debits: bool,
        #[arg(long)]
        overdraft_limit: Option<String>,
        #[arg(long, default_value_t = 0)]
        code: u32,
        #[arg(long)]
        holder_name: Option<String>,
        #[arg(long)]
        national_id: Option<String>,
        #[arg(long)]
        card_number: Option<String>,
    },
    /// Read accounts.
    Get {
        ids: Vec<String>,
        /// Read this node's applied state instead of a linearizable read.
        #[arg(long)]
        local: bool,
    },
    Freeze {
        id: String,
    },
    Unfreeze {
        id: String,
    },
    Close {
        id: String,
    },
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
struct TransferCmd {
    #[command(subcommand)]
    action: Option<TransferAction>,
    #[command(flatten)]
    single: SingleTransfer,
}

#[derive(Args, Debug)]
struct SingleTransfer {
    /// Transfer id (idempotency key); generated if omitted.
    #[arg(long)]
    id: Option<String>,
    /// Debit account.
    #[arg(long)]
    from: Option<String>,
    /// Credit account.
    #[arg(long)]
    to: Option<String>,
    #[arg(long)]
    amount: Option<String>,
    #[arg(long)]
    currency: Option<String>,
    #[arg(long, default_value_t = 0)]
    code: u32,
    #[arg(long, default_value = "")]
    reference: String,
    /// Reserve the amount (two-phase) instead of posting it.
    #[arg(long)]
    pending: bool,
    /// With --pending: expire after this many ms of ledger time.
    #[arg(long, default_value_t = 0)]
    timeout_ms: u64,
}

#[derive(Subcommand, Debug)]
enum TransferAction {
    /// Post a pending transfer, in full or (`--amount`) in part.
    Post {
        pending_id: String,
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        amount: Option<String>,
    },
    /// Void a pending transfer.
    Void {
        pending_id: String,
        #[arg(long)]
        id: Option<String>,
    },
    /// Read transfers.
    Get {
        ids: Vec<String>,
        #[arg(long)]
        local: bool,
    },
}

#[derive(Subcommand, Debug)]
enum JournalCmd {
    /// The journal head (seq, hash, ledger time).
    Head,
    /// Print records.
    Tail {
        /// First seq (default: the last 10).
        #[arg(long)]
        from: Option<u64>,
        #[arg(long, default_value_t = 10)]
        limit: u64,
        /// Keep streaming new records.
        #[arg(long)]
        follow: bool,
    },
    /// Write records as JSON Lines (one per record, with its canonical bytes in hex).
    Export {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 1)]
        from: u64,
    },
    /// Recompute the hash chain from genesis (from a node's stream, or an exported file),
    /// replay the balances independently (and compare them with the node's), and compare
    /// the heads of other nodes and sites with the verified chain.
    Verify {
        #[arg(long)]
        file: Option<PathBuf>,
        /// Endpoints whose heads to compare (default: --endpoints).
        #[arg(long, value_delimiter = ',')]
        compare: Vec<String>,
    },
}

#[derive(Args, Debug)]
struct BenchArgs {
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Transfers per request.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Seconds.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    #[arg(long, default_value_t = 1000)]
    accounts: usize,
    #[arg(long, default_value = "EUR")]
    currency: String,
    /// Id prefix; unique per run by default.
    #[arg(long)]
    run_id: Option<String>,
    /// Offered load in transfers/s: pace the workers instead of running closed-loop, and
    /// measure latency from each request's scheduled send time.
    #[arg(long)]
    rate: Option<f64>,
}

fn unique_id(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{prefix}-{nanos:x}-{}", std::process::id())
}

fn client(cli: &Cli) -> anyhow::Result<LedgerClient> {
    Ok(LedgerClient::new(client_config(cli)?)?)
}

fn client_config(cli: &Cli) -> anyhow::Result<ClientConfig> {
    let mut config = ClientConfig::insecure(cli.endpoints.clone());
    match (&cli.ca, &cli.cert, &cli.key) {
        (Some(ca), Some(cert), Some(key)) => {
            config.tls = Some(crate::tls::client_tls(ca, cert, key)?);
        }
        (None, None, None) if cli.insecure => {
            eprintln!("warning: --insecure: plaintext, no client certificate");
        }
        (None, None, None) => bail!("pass --ca, --cert and --key (or --insecure for a plaintext cluster)"),
        _ => bail!("--ca, --cert and --key go together"),
    }
    Ok(config)
}

fn code_name(code: i32) -> String {
    pb::ResultCode::try_from(code)
        .map(|c| c.as_str_name().trim_start_matches("RESULT_CODE_").to_lowercase())
        .unwrap_or_else(|_| format!("code_{code}"))
}

/// Prints item results; returns whether all were ok.
fn print_results(cli: &Cli, results: &[pb::ItemResult], commit: Option<&pb::CommitInfo>) -> bool {
    let all_ok = results.iter().all(|r| r.code == pb::ResultCode::Ok as i32);
    if cli.json {
        let items: Vec<_> = results
            .iter()
            .map(|r| json!({"index": r.index, "id": r.id, "result": code_name(r.code), "replayed": r.replayed}))
            .collect();
        let commit = commit.map(
            |c| json!({"journal_seq": c.journal_seq, "ledger_time_ms": c.ledger_time_ms, "raft_index": c.raft_index}),
        );
        println!("{}", json!({"results": items, "commit": commit}));
    } else {
        for r in results {
            let replayed = if r.replayed { " (replayed)" } else { "" };
            println!("{} {}{replayed}", r.id, code_name(r.code));
        }
        if let Some(c) = commit
            && c.journal_seq > 0
        {
            println!(
                "journal seq {} at ledger time {} ms (raft index {})",
                c.journal_seq, c.ledger_time_ms, c.raft_index
            );
        }
    }
    all_ok
}

fn account_json(a: &pb::Account) -> serde_json::Value {
    let flags = a.flags.unwrap_or_default();
    let pd = a.personal_data.clone().unwrap_or_default();
    json!({
        "id": a.id, "currency": a.currency, "status": pb::AccountStatus::try_from(a.status).map(|s| s.as_str_name()).unwrap_or("?"),
        "debits_must_not_exceed_credits": flags.debits_must_not_exceed_credits,
        "credits_must_not_exceed_debits": flags.credits_must_not_exceed_debits,
        "overdraft_limit": a.overdraft_limit, "code": a.code,
        "debits_posted": a.debits_posted, "debits_pending": a.debits_pending,
        "credits_posted": a.credits_posted, "credits_pending": a.credits_pending,
        "created_at_ms": a.created_at_ms, "created_seq": a.created_seq, "history_len": a.history_len,
        "holder_name": pd.holder_name, "national_id": pd.national_id, "card_number": pd.card_number,
        "personal_data_masked": a.personal_data_masked,
    })
}

fn transfer_json(t: &pb::Transfer) -> serde_json::Value {
    let r = t.request.clone().unwrap_or_default();
    json!({
        "id": r.id, "kind": pb::TransferKind::try_from(r.kind).map(|k| k.as_str_name()).unwrap_or("?"),
        "state": pb::TransferState::try_from(t.state).map(|s| s.as_str_name()).unwrap_or("?"),
        "result": code_name(t.result), "debit_account_id": t.debit_account_id, "credit_account_id": t.credit_account_id,
        "amount": t.amount, "currency": t.currency, "pending_id": r.pending_id, "code": r.code, "reference": r.reference,
        "ledger_time_ms": t.ledger_time_ms, "journal_seq": t.journal_seq, "expires_at_ms": t.expires_at_ms,
        "posted_amount": t.posted_amount, "resolved_by": t.resolved_by,
    })
}

fn record_json(r: &pb::JournalRecord) -> serde_json::Value {
    json!({
        "seq": r.seq, "ledger_time_ms": r.ledger_time_ms, "origin_site": r.origin_site, "origin_epoch": r.origin_epoch,
        "origin_raft_index": r.origin_raft_index, "caller": r.caller, "command_type": r.command_type,
        "prev_hash": hex::encode(&r.prev_hash), "hash": hex::encode(&r.hash), "canonical": hex::encode(&r.canonical),
    })
}

async fn run(cli: Cli) -> anyhow::Result<i32> {
    let client = client(&cli)?;
    let consistency = |local: bool| if local { pb::ReadConsistency::Local } else { pb::ReadConsistency::Linearizable };
    match &cli.command {
        Command::Account(cmd) => match cmd {
            AccountCmd::Create {
                id,
                currency,
                debits_must_not_exceed_credits,
                credits_must_not_exceed_debits,
                overdraft_limit,
                code,
                holder_name,
                national_id,
                card_number,
            } => {
                let account = pb::NewAccount {
                    id: id.clone(),
                    currency: currency.clone(),
                    flags: Some(pb::AccountFlags {
                        debits_must_not_exceed_credits: *debits_must_not_exceed_credits,
                        credits_must_not_exceed_debits: *credits_must_not_exceed_debits,
                    }),
                    overdraft_limit: overdraft_limit.clone().unwrap_or_default(),
                    code: *code,
                    personal_data: Some(pb::PersonalData {
                        holder_name: holder_name.clone(),
                        national_id: national_id.clone(),
                        card_number: card_number.clone(),
                    }),
                };
                let response = client.create_accounts(vec![account]).await?;
                Ok(if print_results(&cli, &response.results, response.commit.as_ref()) { 0 } else { 2 })
            }
            AccountCmd::Get { ids, local } => {
                let response = client.lookup_accounts(ids.clone(), consistency(*local)).await?;
                if cli.json {
                    let accounts: Vec<_> = response.accounts.iter().map(account_json).collect();
                    println!("{}", json!({"accounts": accounts, "not_found": response.not_found}));
                } else {
                    for a in &response.accounts {
                        println!("{}", serde_json::to_string_pretty(&account_json(a))?);
                    }
                    for id in &response.not_found {
                        println!("{id}: not found");
                    }
                }
                Ok(if response.not_found.is_empty() { 0 } else { 2 })
            }
            AccountCmd::Freeze { id } | AccountCmd::Unfreeze { id } | AccountCmd::Close { id } => {
                let action = match cmd {
                    AccountCmd::Freeze { .. } => pb::AccountAction::Freeze,
                    AccountCmd::Unfreeze { .. } => pb::AccountAction::Unfreeze,
                    _ => pb::AccountAction::Close,
                };
                let response =
                    client.update_accounts(vec![pb::AccountUpdate { id: id.clone(), action: action as i32 }]).await?;
                Ok(if print_results(&cli, &response.results, response.commit.as_ref()) { 0 } else { 2 })
            }
        },
        Command::Transfer(cmd) => {
            let transfer = match &cmd.action {
                Some(TransferAction::Get { ids, local }) => {
                    let response = client.lookup_transfers(ids.clone(), consistency(*local)).await?;
                    let transfers: Vec<_> = response.transfers.iter().map(transfer_json).collect();
                    if cli.json {
                        println!("{}", json!({"transfers": transfers, "not_found": response.not_found}));
                    } else {
                        for t in &transfers {
                            println!("{}", serde_json::to_string_pretty(t)?);
                        }
                        for id in &response.not_found {
                            println!("{id}: not found");
                        }
                    }
                    return Ok(if response.not_found.is_empty() { 0 } else { 2 });
                }
                Some(TransferAction::Post { pending_id, id, amount }) => pb::NewTransfer {
                    id: id.clone().unwrap_or_else(|| unique_id("post")),
                    amount: amount.clone().unwrap_or_default(),
                    kind: pb::TransferKind::PostPending as i32,
                    pending_id: pending_id.clone(),
                    ..Default::default()
                },
                Some(TransferAction::Void { pending_id, id }) => pb::NewTransfer {
                    id: id.clone().unwrap_or_else(|| unique_id("void")),
                    kind: pb::TransferKind::VoidPending as i32,
                    pending_id: pending_id.clone(),
                    ..Default::default()
                },
                None => {
                    let s = &cmd.single;
                    let (Some(from), Some(to), Some(amount)) = (&s.from, &s.to, &s.amount) else {
                        bail!("a transfer needs --from, --to and --amount (or a post/void/get subcommand)");
                    };
                    pb::NewTransfer {
                        id: s.id.clone().unwrap_or_else(|| unique_id("cli")),
                        debit_account_id: from.clone(),
                        credit_account_id: to.clone(),
                        amount: amount.clone(),
                        currency: s.currency.clone().unwrap_or_default(),
                        code: s.code,
                        reference: s.reference.clone(),
                        kind: if s.pending { pb::TransferKind::Pending } else { pb::TransferKind::Posted } as i32,
                        pending_id: String::new(),
                        timeout_ms: s.timeout_ms,
                    }
                }
            };
            let response = client.create_transfers(vec![transfer], false).await?;
            Ok(if print_results(&cli, &response.results, response.commit.as_ref()) { 0 } else { 2 })
        }
        Command::History { account, from, limit, all } => {
            let mut next = *from;
            let mut rows = Vec::new();
            loop {
                let page = client.account_history(account, next, *limit, pb::ReadConsistency::Linearizable).await?;
                rows.extend(page.rows);
                if !all || page.next_index == 0 {
                    break;
                }
                next = page.next_index;
            }
            for row in &rows {
                let effect = pb::HistoryEffect::try_from(row.effect).map(|e| e.as_str_name()).unwrap_or("?");
                if cli.json {
                    println!(
                        "{}",
                        json!({"index": row.index, "transfer_id": row.transfer_id, "journal_seq": row.journal_seq,
                            "ledger_time_ms": row.ledger_time_ms, "side": row.side, "effect": effect, "amount": row.amount,
                            "debits_posted": row.debits_posted, "debits_pending": row.debits_pending,
                            "credits_posted": row.credits_posted, "credits_pending": row.credits_pending})
                    );
                } else {
                    println!(
                        "{:>6} {:<24} {:<6} {:<28} {:>14}  dp={} dq={} cp={} cq={}",
                        row.index,
                        row.transfer_id,
                        row.side,
                        effect,
                        row.amount,
                        row.debits_posted,
                        row.debits_pending,
                        row.credits_posted,
                        row.credits_pending
                    );
                }
            }
            Ok(0)
        }
        Command::Journal(cmd) => journal(&cli, &client, cmd).await,
        Command::Status => {
            let mut statuses = Vec::new();
            for addr in client.endpoints() {
                let single = client.for_endpoint(&addr)?;
                match single.status_once(Duration::from_secs(2)).await {
                    Ok(s) => statuses.push((addr, Ok(s))),
                    Err(e) => statuses.push((addr, Err(e.to_string()))),
                }
            }
            for (addr, status) in &statuses {
                match status {
                    Ok(s) => {
                        let head = s.journal_head.clone().unwrap_or_default();
                        let site = s.site.clone().unwrap_or_default();
                        if cli.json {
                            println!(
                                "{}",
                                json!({"endpoint": addr, "node_id": s.node_id, "zone": s.zone, "raft_role": s.raft_role, "term": s.raft_term,
                                    "leader_id": s.leader_id, "commit_index": s.commit_index, "applied_index": s.applied_index,
                                    "journal_seq": head.seq, "journal_hash": hex::encode(&head.hash), "site": site.name,
                                    "site_role": site.role, "epoch": site.epoch})
                            );
                        } else {
                            println!(
                                "{addr} node {} zone {} {} term {} leader {} commit {} applied {} journal {} {} site {} {} epoch {}",
                                s.node_id,
                                s.zone,
                                s.raft_role,
                                s.raft_term,
                                s.leader_id,
                                s.commit_index,
                                s.applied_index,
                                head.seq,
                                &hex::encode(&head.hash)[..16.min(head.hash.len() * 2)],
                                site.name,
                                site.role,
                                site.epoch
                            );
                        }
                    }
                    Err(e) => println!("{addr} unreachable: {e}"),
                }
            }
            Ok(if statuses.iter().all(|(_, s)| s.is_ok()) { 0 } else { 1 })
        }
        Command::Bench(args) => {
            let config = bench::BenchConfig {
                concurrency: args.concurrency,
                batch: args.batch,
                duration: Duration::from_secs(args.duration),
                accounts: args.accounts,
                currency: args.currency.clone(),
                run_id: args.run_id.clone().unwrap_or_else(|| unique_id("bench")),
                rate: args.rate,
            };
            if config.accounts < 2 || config.concurrency == 0 || config.batch == 0 {
                bail!("bench needs --accounts >= 2, --concurrency >= 1, --batch >= 1");
            }
            if config.rate.is_some_and(|rate| !(rate.is_finite() && rate > 0.0)) {
                bail!("bench --rate must be a positive number of transfers per second");
            }
            eprintln!("opening {} accounts ...", config.accounts);
            bench::open_accounts(&client, &config).await?;
            eprintln!("running {} workers x batch {} for {} s ...", config.concurrency, config.batch, args.duration);
            let report = bench::run(&client, &config).await;
            if cli.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!(
                    "transfers/s {:.0}  requests/s {:.0}  ok {}  rejected {}  errors {}",
                    report.transfers_per_s,
                    report.requests_per_s,
                    report.transfers_ok,
                    report.transfers_rejected,
                    report.request_errors
                );
                let l = &report.latency;
                println!(
                    "request latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p999 {:.2}  max {:.2}  mean {:.2}",
                    l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms, l.mean_ms
                );
            }
            Ok(if report.request_errors == 0 { 0 } else { 1 })
        }
    }
}

async fn journal(cli: &Cli, client: &LedgerClient, cmd: &JournalCmd) -> anyhow::Result<i32> {
    match cmd {
        JournalCmd::Head => {
            let head = client.journal_head().await?;
            if cli.json {
                println!(
                    "{}",
                    json!({"seq": head.seq, "hash": hex::encode(&head.hash), "ledger_time_ms": head.ledger_time_ms})
                );
            } else {
                println!("seq {} hash {} ledger time {} ms", head.seq, hex::encode(&head.hash), head.ledger_time_ms);
            }
            Ok(0)
        }
        JournalCmd::Tail { from, limit, follow } => {
            let from = match from {
                Some(from) => *from,
                None => client.journal_head().await?.seq.saturating_sub(limit.saturating_sub(1)).max(1),
            };
            let mut stream = client.read_journal(from, if *follow { 0 } else { *limit }, *follow).await?;
            let mut position = 0;
            while let Some(record) = stream.message().await? {
                let decoded = audit::decode_record(position, &record)?;
                position += 1;
                if cli.json {
                    println!("{}", record_json(&record));
                } else {
                    println!(
                        "{:>8} t={} {}/{}#{} {:<16} by {:<16} {:?} -> {:?} hash {}",
                        decoded.seq,
                        decoded.ledger_time_ms,
                        decoded.origin.site,
                        decoded.origin.epoch,
                        decoded.origin.raft_index,
                        decoded.command.name(),
                        decoded.caller,
                        summarize_command(&decoded.command),
                        summarize_outcome(&decoded.outcome),
                        &decoded.hash.to_hex()[..16]
                    );
                }
            }
            Ok(0)
        }
        JournalCmd::Export { out, from } => {
            let mut stream = client.read_journal(*from, 0, false).await?;
            let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
            let mut writer = std::io::BufWriter::new(file);
            let mut n = 0u64;
            while let Some(record) = stream.message().await? {
                audit::decode_record(n, &record)?;
                writeln!(writer, "{}", record_json(&record))?;
                n += 1;
            }
            writer.flush()?;
            eprintln!("exported {n} records to {}", out.display());
            Ok(0)
        }
        JournalCmd::Verify { file, compare } => {
            let mut verifier = audit::verify::Verifier::default();
            match file {
                Some(path) => {
                    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                    for (i, line) in text.lines().enumerate() {
                        let record = match audit::verify::parse_export_line(line) {
                            Ok(record) => record,
                            Err(reason) => {
                                verifier.report.first_bad =
                                    Some(audit::verify::BadRecord { position: i as u64, seq: None, reason });
                                break;
                            }
                        };
                        if !verifier.push(i as u64, &record) {
                            break;
                        }
                    }
                    verifier.finish();
                }
                None => {
                    // Read to the end, check balances at that point; if the node moved on
                    // meanwhile, read the rest and check again (a few rounds at most).
                    let mut position = 0u64;
                    for _ in 0..5 {
                        let mut stream = client.read_journal(position + 1, 0, false).await?;
                        while let Some(record) = stream.message().await? {
                            if !verifier.push(position, &record) {
                                break;
                            }
                            position += 1;
                        }
                        verifier.finish();
                        if verifier.report.first_bad.is_some() || verifier.check_balances(client).await? {
                            break;
                        }
                    }
                }
            }
            let endpoints = if compare.is_empty() { client.endpoints() } else { compare.clone() };
            let config = client_config(cli)?;
            verifier.compare_heads(&config, &endpoints).await;
            let report = &verifier.report;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(report)?);
            } else {
                match &report.first_bad {
                    None => println!(
                        "chain: OK, {} records from genesis, head seq {} {}",
                        report.records, report.head_seq, report.head_hash
                    ),
                    Some(bad) => println!(
                        "chain: FAILED at record {} (line {}{}): {}\n       {} records before it verify",
                        bad.position + 1,
                        bad.position + 1,
                        bad.seq.map(|s| format!(", seq {s}")).unwrap_or_default(),
                        bad.reason,
                        report.records
                    ),
                }
                for line in &report.conservation {
                    println!("replay: {line}");
                }
                if file.is_none() {
                    println!(
                        "balances: {} accounts replayed, {} checked against the node, {} mismatches",
                        report.accounts_replayed,
                        report.balances_checked,
                        report.balance_mismatches.len()
                    );
                    for m in report.balance_mismatches.iter().take(20) {
                        println!("  MISMATCH {m}");
                    }
                }
                for node in &report.nodes {
                    println!(
                        "head {:<22} {:<8} {:<8} seq {:<8} {}",
                        node.endpoint, node.site, node.role, node.seq, node.verdict
                    );
                }
                println!("{}", if report.ok() { "VERIFIED" } else { "NOT VERIFIED" });
            }
            Ok(if report.ok() { 0 } else { 2 })
        }
    }
}

fn summarize_command(command: &ledger_core::command::Command) -> String {
    use ledger_core::command::Command as C;
    match command {
        C::CreateAccounts(a) => format!("{} accounts", a.len()),
        C::UpdateAccounts(u) => format!("{} updates", u.len()),
        C::CreateTransfers { transfers, atomic } => {
            format!("{} transfers{}", transfers.len(), if *atomic { " atomic" } else { "" })
        }
        C::ExpirePending => "expire".into(),
        C::Site(s) => s.name().into(),
        C::Admin(a) => format!("{a:?}"),
    }
}

fn summarize_outcome(outcome: &ledger_core::command::Outcome) -> String {
    use ledger_core::command::Outcome as O;
    match outcome {
        O::Items(items) => {
            let ok = items.iter().filter(|i| i.code.is_ok()).count();
            format!("{ok}/{} ok", items.len())
        }
        O::Expired(ids) => format!("{} expired", ids.len()),
        O::Site(site) => format!("site {} {} epoch {}", site.name, site.role.name(), site.epoch),
        O::Recorded => "recorded".into(),
        O::Refused(r) => format!("refused: {r}"),
    }
}

/// Runs the `ledger` CLI with the process arguments and exits.
pub fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("LEDGER_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}
