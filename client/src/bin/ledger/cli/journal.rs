//! `ledger journal`: the hash-chained journal: its head, its last records, an export as JSON
//! Lines, and verification (the chain from genesis, an independent replay of the balances,
//! and the heads of other nodes and sites).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use ledger_client::audit;
use serde_json::json;

use super::Context;
use super::output;
use super::output::hex;

#[derive(Subcommand, Debug)]
pub enum JournalCmd {
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

pub async fn run(context: &Context, cmd: &JournalCmd) -> anyhow::Result<i32> {
    let client = &context.client;
    match cmd {
        JournalCmd::Head => {
            let head = client.journal_head().await?;
            if context.json {
                println!(
                    "{}",
                    json!({"seq": head.seq, "hash": hex(&head.hash), "ledger_time_ms": head.ledger_time_ms})
                );
            } else {
                println!("seq {} hash {} ledger time {} ms", head.seq, hex(&head.hash), head.ledger_time_ms);
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
                if context.json {
                    println!("{}", output::record_json(&record));
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
                writeln!(writer, "{}", output::record_json(&record))?;
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
            verifier.compare_heads(&context.config, &endpoints).await;
            let report = &verifier.report;
            if context.json {
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
