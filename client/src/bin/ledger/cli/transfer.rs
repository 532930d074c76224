//! `ledger transfer`: post a transfer (single-phase, or `--pending` to reserve the amount),
//! post or void a pending one, or read transfers.

use anyhow::bail;
use clap::Args;
use clap::Subcommand;
use ledger_client::proto as pb;
use serde_json::json;

use super::Context;
use super::output;
use super::unique_id;

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct TransferCmd {
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

pub async fn run(context: &Context, cmd: &TransferCmd) -> anyhow::Result<i32> {
    let client = &context.client;
    let transfer = match &cmd.action {
        Some(TransferAction::Get { ids, local }) => {
            let consistency = if *local { pb::ReadConsistency::Local } else { pb::ReadConsistency::Linearizable };
            let response = client.lookup_transfers(ids.clone(), consistency).await?;
            let transfers: Vec<_> = response.transfers.iter().map(output::transfer_json).collect();
            if context.json {
                println!("{}", json!({"transfers": transfers, "not_found": response.not_found}));
            } else {
                for t in &transfers {
                    println!("{}", serde_json::to_string_pretty(t)?);
                }
                for id in &response.not_found {
                    println!("{id}: not found");
                }
            }
            return Ok(output::exit_status(response.not_found.is_empty()));
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
    Ok(output::exit_status(output::print_results(context.json, &response.results, response.commit.as_ref())))
}
