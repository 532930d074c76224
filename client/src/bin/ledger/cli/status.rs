//! `ledger status`: one line (or JSON object) per endpoint: its Raft role, term, leader,
//! indexes, journal head and site. Exit status 1 if an endpoint did not answer; an endpoint
//! that refused us (our certificate, our role) also ends the command with that error.

use std::time::Duration;

use serde_json::json;

use super::Context;
use super::output::hex;

/// How long each endpoint gets to answer.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn run(context: &Context) -> anyhow::Result<i32> {
    let client = &context.client;
    let mut statuses = Vec::new();
    for addr in client.endpoints() {
        let single = client.for_endpoint(&addr)?;
        let status = single.status_once(STATUS_TIMEOUT).await;
        statuses.push((addr, status));
    }
    for (addr, status) in &statuses {
        match status {
            Ok(s) => {
                let head = s.journal_head.clone().unwrap_or_default();
                let site = s.site.clone().unwrap_or_default();
                if context.json {
                    println!(
                        "{}",
                        json!({"endpoint": addr, "node_id": s.node_id, "zone": s.zone, "raft_role": s.raft_role, "term": s.raft_term,
                            "leader_id": s.leader_id, "commit_index": s.commit_index, "applied_index": s.applied_index,
                            "journal_seq": head.seq, "journal_hash": hex(&head.hash), "site": site.name,
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
                        &hex(&head.hash)[..16.min(head.hash.len() * 2)],
                        site.name,
                        site.role,
                        site.epoch
                    );
                }
            }
            Err(e) if context.json => println!("{}", json!({"endpoint": addr, "error": e.to_string()})),
            Err(e) => println!("{addr} unreachable: {e}"),
        }
    }
    if let Some(refusal) = statuses.iter().find_map(|(_, s)| s.as_ref().err().filter(|e| e.is_final())) {
        return Err(refusal.clone().into());
    }
    Ok(if statuses.iter().all(|(_, s)| s.is_ok()) { 0 } else { 1 })
}
