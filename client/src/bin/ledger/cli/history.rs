//! `ledger history`: an account's history rows, one page or (`--all`) every page.

use clap::Args;
use ledger_client::proto as pb;
use serde_json::json;

use super::Context;

#[derive(Args, Debug)]
pub struct HistoryArgs {
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
}

pub async fn run(context: &Context, args: &HistoryArgs) -> anyhow::Result<i32> {
    let mut next = args.from;
    let mut rows = Vec::new();
    loop {
        let page =
            context.client.account_history(&args.account, next, args.limit, pb::ReadConsistency::Linearizable).await?;
        rows.extend(page.rows);
        if !args.all || page.next_index == 0 {
            break;
        }
        next = page.next_index;
    }
    for row in &rows {
        let effect = pb::HistoryEffect::try_from(row.effect).map(|e| e.as_str_name()).unwrap_or("?");
        if context.json {
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
