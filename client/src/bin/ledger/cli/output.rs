//! What several subcommands print: item results, accounts, transfers and journal records as
//! text or JSON.

use ledger_client::proto as pb;
use serde_json::json;

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A result code's name without its prefix: `ok`, `exceeds_credits`, ...
pub fn code_name(code: i32) -> String {
    pb::ResultCode::try_from(code)
        .map(|c| c.as_str_name().trim_start_matches("RESULT_CODE_").to_lowercase())
        .unwrap_or_else(|_| format!("code_{code}"))
}

/// Prints item results; returns whether all were ok.
pub fn print_results(json: bool, results: &[pb::ItemResult], commit: Option<&pb::CommitInfo>) -> bool {
    let all_ok = results.iter().all(|r| r.code == pb::ResultCode::Ok as i32);
    if json {
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

/// The exit status of a batch: 0 if every item is ok, 2 otherwise.
pub fn exit_status(all_ok: bool) -> i32 {
    if all_ok { 0 } else { 2 }
}

pub fn account_json(a: &pb::Account) -> serde_json::Value {
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

pub fn transfer_json(t: &pb::Transfer) -> serde_json::Value {
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

pub fn record_json(r: &pb::JournalRecord) -> serde_json::Value {
    json!({
        "seq": r.seq, "ledger_time_ms": r.ledger_time_ms, "origin_site": r.origin_site, "origin_epoch": r.origin_epoch,
        "origin_raft_index": r.origin_raft_index, "caller": r.caller, "command_type": r.command_type,
        "prev_hash": hex(&r.prev_hash), "hash": hex(&r.hash), "canonical": hex(&r.canonical),
    })
}
