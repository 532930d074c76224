//! The ledger's entry point: `apply(store, envelope, time, raft_index) -> Outcome`, one
//! dispatcher over the posting rules (`posting`) and the site operations (`site_ops`).
//!
//! Deterministic and IO-free: the same commands at the same ledger times give the same bytes
//! on every replica of both sites. Every applied command is exactly one journal record
//! (site operations: also or only a site log entry, see `site_ops`); a refused one is none.

use crate::command::Command;
use crate::command::Envelope;
use crate::command::Outcome;
use crate::posting;
pub use crate::posting::atomic_refused_up_front;
pub use crate::posting::check_envelope;
pub use crate::posting::next_expiry;
pub use crate::posting::validate_new_account;
pub use crate::posting::validate_transfer;
pub use crate::posting::write_refusal;
use crate::site_ops;
use crate::store::Overlay;

/// Applies one command at the proposer's time. Returns its outcome; unless the command was
/// refused, it is recorded: a ledger command as one journal record; a site operation or an
/// admin event in the site log, and also in the journal when the site was or becomes writable
/// by it (see `site_ops`).
///
/// `proposed_time_ms` is the leader's clock when it proposed the entry; the ledger clock is
/// `max(previous ledger time, proposed_time_ms)`, so it never goes backwards.
pub fn apply(store: &mut Overlay<'_>, envelope: &Envelope, proposed_time_ms: u64, raft_index: u64) -> Outcome {
    let ledger_time_ms = store.meta_ref().clock_ms().max(proposed_time_ms);
    if let Some(refusal) = check_envelope(envelope) {
        return Outcome::Refused(refusal);
    }
    match &envelope.command {
        Command::Site(command) => {
            return site_ops::apply_site(store, envelope, command, ledger_time_ms, raft_index);
        }
        Command::Admin(event) => {
            return site_ops::apply_admin(store, envelope, event, ledger_time_ms, raft_index);
        }
        _ => {}
    }
    let meta = store.meta_ref();
    if let Some(refusal) = write_refusal(&meta.site) {
        return Outcome::Refused(refusal);
    }
    let seq = meta.journal.seq + 1;
    let outcome = posting::execute(store, &envelope.command, ledger_time_ms, seq);
    let journaled = store.journal_command(envelope, outcome.clone(), ledger_time_ms, raft_index);
    assert_eq!(journaled, seq, "one journal record per applied command");
    outcome
}
