//! Site operations (bootstrap, fence, promote, demote, resync, epoch fencing, approvals, key
//! rotation), admin events, and the re-application of journal records shipped from the
//! active site to a standby.
//!
//! Recording rule: every site operation and admin event is an entry in the site's own log. It
//! is also a journal record when the site is writable before or after it (an active site's
//! operations are part of the book); a standby's operations never are, or its journal would
//! stop being a prefix of the active site's. A fenced site journals nothing new, so that a
//! switchover can wait for the standby to hold every record.

use std::collections::BTreeSet;

use crate::command::AdminEvent;
use crate::command::Command;
use crate::command::Envelope;
use crate::command::Outcome;
use crate::command::Refusal;
use crate::journal::JournalRecord;
use crate::journal::SiteEvent;
use crate::journal::SiteLogEntry;
use crate::posting;
use crate::site::APPROVAL_WINDOW_MS;
use crate::site::APPROVALS_MAX;
use crate::site::Approval;
use crate::site::REQUEST_ID_BYTES_MAX;
use crate::site::SITE_NAME_BYTES_MAX;
use crate::site::SiteCommand;
use crate::site::SiteRole;
use crate::site::SiteState;
use crate::site::UPSTREAM_ENDPOINTS_MAX;
use crate::store::LedgerRead;
use crate::store::Overlay;

/// Operations an approval may be for, and which site commands each one allows.
pub const APPROVABLE_ACTIONS: &[&str] = &["switchover", "promote", "failback", "rotate_key"];

fn refuse(reason: impl Into<String>) -> Refusal {
    Refusal::SiteOperation { reason: reason.into() }
}

/// Dual control: `request_id` must carry approvals for one of `actions` from two different
/// callers within the approval window (in ledger time).
fn check_dual_control(
    site: &SiteState,
    operation: &str,
    request_id: &str,
    actions: &[&str],
    now_ms: u64,
) -> Result<(), Refusal> {
    if !site.dual_control {
        return Ok(());
    }
    if request_id.is_empty() {
        return Err(refuse(format!(
            "dual control: {operation} needs a request id approved by two different operators (ledger-cluster dr approve)"
        )));
    }
    let approvers: BTreeSet<&str> = site
        .approvals
        .iter()
        .filter(|a| a.request_id == request_id && actions.contains(&a.action.as_str()))
        .filter(|a| a.at_ms + APPROVAL_WINDOW_MS >= now_ms)
        .map(|a| a.caller.as_str())
        .collect();
    if approvers.len() < 2 {
        let names: Vec<&str> = approvers.into_iter().collect();
        return Err(refuse(format!(
            "dual control: {operation} of request {request_id:?} needs approvals by two different operators within {} minutes; approved by {}: {names:?}",
            APPROVAL_WINDOW_MS / 60_000,
            names.len()
        )));
    }
    Ok(())
}

fn check_upstream(upstream: &[String]) -> Result<(), Refusal> {
    if upstream.is_empty()
        || upstream.len() > UPSTREAM_ENDPOINTS_MAX
        || upstream.iter().any(|u| u.is_empty() || u.len() > 256)
    {
        return Err(refuse(format!("upstream needs 1 to {UPSTREAM_ENDPOINTS_MAX} endpoints")));
    }
    Ok(())
}

fn check_site_name(name: &str) -> Result<(), Refusal> {
    if name.is_empty() || name.len() > SITE_NAME_BYTES_MAX || crate::id::check_id(name).is_err() {
        return Err(refuse(format!("site name {name:?} must be a short id")));
    }
    Ok(())
}

/// The site after `command`, or why the command does not fit the site now.
fn transition(
    site: &SiteState,
    command: &SiteCommand,
    caller: &str,
    now_ms: u64,
    next_seq: u64,
) -> Result<SiteState, Refusal> {
    let mut next = site.clone();
    if site.role == SiteRole::Uninitialized && !matches!(command, SiteCommand::Bootstrap { .. }) {
        return Err(refuse("the site is not bootstrapped"));
    }
    match command {
        SiteCommand::Bootstrap { name, role, epoch, upstream, dual_control } => {
            if site.role != SiteRole::Uninitialized {
                return Err(refuse(format!("site {} is already bootstrapped", site.name)));
            }
            check_site_name(name)?;
            if *role == SiteRole::Uninitialized || *epoch == 0 {
                return Err(refuse("bootstrap needs a site name (an id), a role and an epoch >= 1"));
            }
            if upstream.len() > UPSTREAM_ENDPOINTS_MAX {
                return Err(refuse("too many upstream endpoints"));
            }
            if *role == SiteRole::Standby {
                check_upstream(upstream)?;
            }
            next = SiteState {
                name: name.clone(),
                role: *role,
                epoch: *epoch,
                active_site: if *role == SiteRole::Active { name.clone() } else { String::new() },
                active_epoch: *epoch,
                upstream: upstream.clone(),
                epoch_changed_at_seq: next_seq,
                dual_control: *dual_control,
                ..SiteState::default()
            };
        }
        SiteCommand::Fence => {
            if site.role != SiteRole::Active {
                return Err(refuse(format!(
                    "site {} is {}; only an active site can be fenced",
                    site.name,
                    site.role.name()
                )));
            }
            next.fenced = true;
        }
        SiteCommand::Unfence => {
            if site.role != SiteRole::Active {
                return Err(refuse(format!(
                    "site {} is {}; only an active site can be unfenced",
                    site.name,
                    site.role.name()
                )));
            }
            if site.active_epoch > site.epoch {
                return Err(refuse(format!(
                    "site {} knows that {} is active at epoch {}; it cannot take writes at epoch {}",
                    site.name, site.active_site, site.active_epoch, site.epoch
                )));
            }
            next.fenced = false;
        }
        SiteCommand::Promote { epoch, forced: _, request_id } => {
            if site.role != SiteRole::Standby {
                return Err(refuse(format!(
                    "site {} is {}; only a standby can be promoted",
                    site.name,
                    site.role.name()
                )));
            }
            if *epoch <= site.epoch_seen() {
                return Err(refuse(format!(
                    "epoch {epoch} must be higher than every epoch seen ({})",
                    site.epoch_seen()
                )));
            }
            check_dual_control(site, "promote", request_id, &["promote", "switchover"], now_ms)?;
            // A halt concerned shipping into this standby; as the active site it ships nothing.
            next.watermark.halted = None;
            next.role = SiteRole::Active;
            next.epoch = *epoch;
            next.active_site = site.name.clone();
            next.active_epoch = *epoch;
            next.fenced = false;
            next.epoch_changed_at_seq = next_seq;
            next.approvals.retain(|a| a.request_id != *request_id);
        }
        SiteCommand::Demote { active_site, epoch, upstream, request_id } => {
            if site.role != SiteRole::Active {
                return Err(refuse(format!(
                    "site {} is {}; only an active site can be demoted",
                    site.name,
                    site.role.name()
                )));
            }
            check_site_name(active_site)?;
            check_upstream(upstream)?;
            if site.writable() {
                return Err(refuse(format!("site {} still takes writes: fence it first", site.name)));
            }
            if *epoch <= site.epoch || *epoch < site.epoch_seen() {
                return Err(refuse(format!(
                    "the new active site's epoch {epoch} must be above ours ({}) and at least every epoch seen ({})",
                    site.epoch,
                    site.epoch_seen()
                )));
            }
            check_dual_control(site, "demote", request_id, &["switchover"], now_ms)?;
            next.watermark.halted = None;
            next.role = SiteRole::Standby;
            next.fenced = false;
            next.active_site = active_site.clone();
            next.active_epoch = *epoch;
            next.upstream = upstream.clone();
            next.epoch_changed_at_seq = next_seq;
            next.approvals.retain(|a| a.request_id != *request_id);
        }
        SiteCommand::Resync { active_site, epoch, upstream, request_id } => {
            check_site_name(active_site)?;
            check_upstream(upstream)?;
            if *active_site == site.name {
                return Err(refuse("a site cannot resync from itself"));
            }
            if site.writable() {
                return Err(refuse(format!(
                    "site {} still takes writes: fence it (or record the new epoch) before discarding its journal",
                    site.name
                )));
            }
            if *epoch < site.epoch_seen() || (*epoch == site.epoch && site.role == SiteRole::Active) {
                return Err(refuse(format!(
                    "the active site's epoch {epoch} must be at least every epoch seen ({}) and above our own",
                    site.epoch_seen()
                )));
            }
            check_dual_control(site, "resync", request_id, &["failback"], now_ms)?;
            next.role = SiteRole::Standby;
            next.fenced = false;
            next.active_site = active_site.clone();
            next.active_epoch = *epoch;
            next.upstream = upstream.clone();
            next.watermark = Default::default();
            next.epoch_changed_at_seq = 1;
            next.approvals.retain(|a| a.request_id != *request_id);
        }
        SiteCommand::ObserveEpoch { active_site, epoch } => {
            check_site_name(active_site)?;
            if *epoch <= site.epoch_seen() {
                return Err(refuse(format!(
                    "epoch {epoch} is not higher than every epoch seen ({})",
                    site.epoch_seen()
                )));
            }
            next.active_site = active_site.clone();
            next.active_epoch = *epoch;
        }
        SiteCommand::Approve { request_id, action } => {
            if request_id.is_empty()
                || request_id.len() > REQUEST_ID_BYTES_MAX
                || crate::id::check_id(request_id).is_err()
            {
                return Err(refuse(format!("request id must be an id of at most {REQUEST_ID_BYTES_MAX} bytes")));
            }
            if !APPROVABLE_ACTIONS.contains(&action.as_str()) {
                return Err(refuse(format!("{action:?} is not an approvable action ({APPROVABLE_ACTIONS:?})")));
            }
            next.approvals.retain(|a| a.at_ms + APPROVAL_WINDOW_MS >= now_ms);
            next.approvals.push(Approval {
                request_id: request_id.clone(),
                action: action.clone(),
                caller: caller.to_string(),
                at_ms: now_ms,
            });
            let excess = next.approvals.len().saturating_sub(APPROVALS_MAX);
            next.approvals.drain(..excess);
        }
        SiteCommand::RotateKey { key_id, request_id } => {
            if *key_id == 0 {
                return Err(refuse("key ids start at 1"));
            }
            check_dual_control(site, "key rotation", request_id, &["rotate_key"], now_ms)?;
            next.data_key_id = *key_id;
            next.approvals.retain(|a| a.request_id != *request_id);
        }
    }
    Ok(next)
}

/// Records `event` in the site log (after the journal record, if there is one).
fn log(store: &mut Overlay<'_>, caller: &str, event: SiteEvent, time: u64, journal_seq: u64) {
    let meta = store.meta();
    let entry = SiteLogEntry::seal(
        meta.site_log.seq + 1,
        time,
        caller.to_string(),
        event,
        meta.site.clone(),
        journal_seq,
        meta.site_log.hash,
    );
    store.append_site_log(entry);
}

pub(crate) fn apply_site(
    store: &mut Overlay<'_>,
    envelope: &Envelope,
    command: &SiteCommand,
    time: u64,
    raft_index: u64,
) -> Outcome {
    let before = store.meta();
    let next = match transition(&before.site, command, &envelope.caller, time, before.journal.seq + 1) {
        Ok(next) => next,
        Err(refusal) => return Outcome::Refused(refusal),
    };
    let resync = matches!(command, SiteCommand::Resync { .. });
    assert!(next.epoch_seen() >= before.site.epoch_seen(), "the highest epoch seen never goes down");
    assert!(next.epoch >= before.site.epoch, "a site's own epoch never goes down");
    assert!(resync || next.watermark.seq >= before.site.watermark.seq, "the watermark goes down only on a resync");
    if resync {
        store.reset();
    }
    let mut meta = store.meta();
    meta.site = next.clone();
    store.put_meta(meta);
    let outcome = Outcome::Site(next.clone());
    let journaled = before.site.writable() || next.writable();
    let journal_seq = if journaled { store.journal_command(envelope, outcome.clone(), time, raft_index) } else { 0 };
    let seq_base = if resync { 0 } else { before.journal.seq };
    assert_eq!(store.meta().journal.seq, seq_base + u64::from(journaled), "one journal record at most per command");
    log(store, &envelope.caller, SiteEvent::Site(command.clone()), time, journal_seq);
    assert_eq!(store.meta().site_log.seq, before.site_log.seq + 1, "one site log entry per site operation");
    outcome
}

pub(crate) fn apply_admin(
    store: &mut Overlay<'_>,
    envelope: &Envelope,
    event: &AdminEvent,
    time: u64,
    raft_index: u64,
) -> Outcome {
    let meta = store.meta();
    if meta.site.role == SiteRole::Uninitialized {
        return Outcome::Refused(posting::write_refusal(&meta.site).expect("an uninitialized site is not writable"));
    }
    let journal_seq =
        if meta.site.writable() { store.journal_command(envelope, Outcome::Recorded, time, raft_index) } else { 0 };
    assert_eq!(store.meta().journal.seq, meta.journal.seq + u64::from(meta.site.writable()));
    log(store, &envelope.caller, SiteEvent::Admin(event.clone()), time, journal_seq);
    assert_eq!(store.meta().site_log.seq, meta.site_log.seq + 1, "one site log entry per admin event");
    Outcome::Recorded
}

/// What happened to one shipped record.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Shipped {
    /// Re-applied; the journal grew by it.
    Applied,
    /// Already held (a resend after a leader change), with the same hash.
    Duplicate,
    /// Not for this site now (not a standby, or shipping halted): ignored.
    Ignored(String),
    /// The record did not follow our head or did not reproduce its hash: shipping halts.
    Halted(String),
}

fn halt(store: &mut Overlay<'_>, reason: String) -> Shipped {
    let mut meta = store.meta();
    meta.site.watermark.halted = Some(reason.clone());
    let time = meta.clock_ms();
    store.put_meta(meta);
    log(store, "journal-shipper", SiteEvent::Admin(AdminEvent::ShippingHalted { reason: reason.clone() }), time, 0);
    Shipped::Halted(reason)
}

/// Re-applies one journal record shipped from the active site on this standby, and checks
/// that it reproduces the record bit for bit (same hash). A record past our head + 1 is
/// ignored (a stale batch); one that does not follow our head, or reproduces a different hash,
/// halts shipping: the sites have diverged and an
/// operator must look, never a silent continuation.
pub fn ship(store: &mut Overlay<'_>, record: &JournalRecord) -> Shipped {
    let meta = store.meta();
    if meta.site.role != SiteRole::Standby {
        return Shipped::Ignored(format!("site {} is {}, not a standby", meta.site.name, meta.site.role.name()));
    }
    if let Some(reason) = &meta.site.watermark.halted {
        return Shipped::Ignored(format!("shipping is halted: {reason}"));
    }
    let head = meta.journal;
    // A record must carry its own hash: anything altered in transit is refused before it is
    // compared with what we hold or re-applied.
    let stored = record.compute_hash();
    if stored != record.hash {
        return halt(store, format!("shipped seq {} does not match its own hash: altered in transit", record.seq));
    }
    if record.outcome.is_refused() {
        return halt(store, format!("shipped seq {} carries a refused outcome, which is never journaled", record.seq));
    }
    if record.seq <= head.seq {
        return match store.journal_record(record.seq) {
            Some(ours) if ours.hash == record.hash => Shipped::Duplicate,
            _ => halt(store, format!("shipped seq {} differs from ours: the sites diverged", record.seq)),
        };
    }
    // A gap is a batch built from a stale view of our head (the shipper read it before a
    // resync or a leader change was applied; it checks the stream's own continuity), not a
    // lost record: apply nothing, halt nothing, and let the shipper restart from our head.
    if record.seq != head.seq + 1 {
        return Shipped::Ignored(format!(
            "gap: shipped seq {} after our seq {}; shipping restarts from our head",
            record.seq, head.seq
        ));
    }
    if record.prev_hash != head.hash {
        return halt(
            store,
            format!("shipped seq {} does not follow our seq {}: the sites diverged", record.seq, head.seq),
        );
    }
    if record.ledger_time_ms < head.ledger_time_ms {
        return halt(store, format!("shipped seq {} goes back in ledger time", record.seq));
    }
    // Re-apply in a child overlay, kept only if the record reproduces exactly.
    let (rebuilt, changes) = {
        let mut child = Overlay::new(store);
        let outcome = match &record.command {
            // Site operations and admin events of the active site are facts about that site:
            // they are copied, not re-run against this one.
            Command::Site(_) | Command::Admin(_) => record.outcome.clone(),
            command => posting::execute(&mut child, command, record.ledger_time_ms, record.seq),
        };
        let rebuilt = JournalRecord::seal(
            record.seq,
            record.ledger_time_ms,
            record.origin.clone(),
            record.caller.clone(),
            record.command.clone(),
            outcome,
            head.hash,
        );
        (rebuilt, child.into_changes())
    };
    if rebuilt.hash != record.hash {
        return halt(
            store,
            format!(
                "shipped seq {} re-applied to a different result (hash {} here, {} shipped)",
                record.seq, rebuilt.hash, record.hash
            ),
        );
    }
    store.merge(changes);
    store.append_journal(rebuilt);
    let mut meta = store.meta();
    assert_eq!(meta.journal.seq, record.seq, "a shipped record extends our journal by one");
    assert!(record.seq > meta.site.watermark.seq, "the watermark only goes up while shipping");
    meta.site.watermark.seq = record.seq;
    meta.site.watermark.ledger_time_ms = record.ledger_time_ms;
    if record.origin.epoch >= meta.site.active_epoch {
        meta.site.active_epoch = record.origin.epoch;
        meta.site.active_site = record.origin.site.clone();
    }
    store.put_meta(meta);
    Shipped::Applied
}
