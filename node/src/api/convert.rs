//! Conversions between protobuf messages and ledger values. The ledger never sees prost types.

use ledger_core::account::Account;
use ledger_core::account::AccountAction;
use ledger_core::account::AccountFlags;
use ledger_core::account::AccountStatus;
use ledger_core::account::AccountUpdate;
use ledger_core::account::NewAccount;
use ledger_core::codec;
use ledger_core::id::AccountId;
use ledger_core::id::TransferId;
use ledger_core::journal::JournalHead;
use ledger_core::journal::JournalRecord;
use ledger_core::journal::SiteEvent;
use ledger_core::journal::SiteLogEntry;
use ledger_core::pii;
use ledger_core::pii::AccountPii;
use ledger_core::reject::ResultCode;
use ledger_core::transfer::HistoryEffect;
use ledger_core::transfer::HistoryEntry;
use ledger_core::transfer::NewTransfer;
use ledger_core::transfer::Side;
use ledger_core::transfer::Transfer;
use ledger_core::transfer::TransferKind;
use ledger_core::transfer::TransferState;
use ledger_proto::v1 as pb;
use rust_decimal::Decimal;

use crate::security::pii::DataKeys;
use crate::security::pii::Field;

/// Parses a plain decimal (`-?digits[.digits]`), exactly; `None` for anything else (exponents,
/// spaces, signs other than a leading minus, more than 28 digits).
pub fn parse_decimal(text: &str) -> Option<Decimal> {
    let body = text.strip_prefix('-').unwrap_or(text);
    let mut parts = body.splitn(2, '.');
    let int = parts.next().unwrap_or("");
    let frac = parts.next();
    let digits_ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits_ok(int) || frac.is_some_and(|f| !digits_ok(f)) {
        return None;
    }
    Decimal::from_str_exact(text).ok()
}

pub fn result_code(code: ResultCode) -> i32 {
    let proto = pb::ResultCode::try_from(code as i32).expect("every ledger result code exists in ledger.proto");
    proto as i32
}

/// A proto account request into a ledger one, sealing personal data. `Err` is the item's code.
/// `key_id`: the site's sealing key (0: the newest in the key file).
pub fn new_account(p: &pb::NewAccount, keys: &DataKeys, key_id: u32) -> Result<NewAccount, ResultCode> {
    let id = AccountId::new(p.id.clone());
    if id.check().is_err() {
        return Err(ResultCode::IdInvalid);
    }
    let overdraft_limit = if p.overdraft_limit.is_empty() {
        None
    } else {
        Some(parse_decimal(&p.overdraft_limit).ok_or(ResultCode::OverdraftLimitInvalid)?)
    };
    let flags = p.flags.unwrap_or_default();
    let data = p.personal_data.clone().unwrap_or_default();
    let seal = |field: Field, value: &Option<String>| -> Result<Option<Box<ledger_core::pii::Sealed>>, ResultCode> {
        match value {
            None => Ok(None),
            Some(text) if text.len() > ledger_core::limits::PII_BYTES_MAX => Err(ResultCode::PersonalDataTooLong),
            Some(text) => Ok(Some(Box::new(keys.seal_with(key_id, id.as_str(), field, text)))),
        }
    };
    let pii = AccountPii {
        holder_name: seal(Field::HolderName, &data.holder_name)?,
        national_id: seal(Field::NationalId, &data.national_id)?,
        card_number: seal(Field::CardNumber, &data.card_number)?,
    };
    Ok(NewAccount {
        id,
        currency: p.currency.clone(),
        flags: AccountFlags {
            debits_must_not_exceed_credits: flags.debits_must_not_exceed_credits,
            credits_must_not_exceed_debits: flags.credits_must_not_exceed_debits,
        },
        overdraft_limit,
        code: p.code,
        pii,
    })
}

pub fn account_update(p: &pb::AccountUpdate) -> Result<AccountUpdate, ResultCode> {
    let id = AccountId::new(p.id.clone());
    if id.check().is_err() {
        return Err(ResultCode::IdInvalid);
    }
    let action = match pb::AccountAction::try_from(p.action) {
        Ok(pb::AccountAction::Freeze) => AccountAction::Freeze,
        Ok(pb::AccountAction::Unfreeze) => AccountAction::Unfreeze,
        Ok(pb::AccountAction::Close) => AccountAction::Close,
        _ => return Err(ResultCode::KindInvalid),
    };
    Ok(AccountUpdate { id, action })
}

/// A proto transfer into a ledger one. `Err` is the item's code.
pub fn new_transfer(p: &pb::NewTransfer) -> Result<NewTransfer, ResultCode> {
    let id = TransferId::new(p.id.clone());
    if id.check().is_err() {
        return Err(ResultCode::IdInvalid);
    }
    let kind = pb::TransferKind::try_from(p.kind).map_err(|_| ResultCode::KindInvalid)?;
    let amount =
        if p.amount.is_empty() { Decimal::ZERO } else { parse_decimal(&p.amount).ok_or(ResultCode::AmountInvalid)? };
    let pending_id = TransferId::new(p.pending_id.clone());
    let kind = match kind {
        pb::TransferKind::Posted | pb::TransferKind::Pending if !p.pending_id.is_empty() => {
            return Err(ResultCode::KindInvalid);
        }
        pb::TransferKind::Posted if p.timeout_ms != 0 => return Err(ResultCode::TimeoutInvalid),
        pb::TransferKind::Posted => TransferKind::Posted,
        pb::TransferKind::Pending => TransferKind::Pending { timeout_ms: (p.timeout_ms > 0).then_some(p.timeout_ms) },
        pb::TransferKind::PostPending | pb::TransferKind::VoidPending if p.timeout_ms != 0 => {
            return Err(ResultCode::TimeoutInvalid);
        }
        pb::TransferKind::PostPending => TransferKind::PostPending { pending_id },
        pb::TransferKind::VoidPending => TransferKind::VoidPending { pending_id },
    };
    Ok(NewTransfer {
        id,
        debit_account_id: AccountId::new(p.debit_account_id.clone()),
        credit_account_id: AccountId::new(p.credit_account_id.clone()),
        amount,
        currency: (!p.currency.is_empty()).then(|| p.currency.clone()),
        code: p.code,
        reference: p.reference.clone(),
        kind,
    })
}

pub fn new_transfer_to_proto(t: &NewTransfer) -> pb::NewTransfer {
    let (kind, pending_id, timeout_ms) = match &t.kind {
        TransferKind::Posted => (pb::TransferKind::Posted, String::new(), 0),
        TransferKind::Pending { timeout_ms } => (pb::TransferKind::Pending, String::new(), timeout_ms.unwrap_or(0)),
        TransferKind::PostPending { pending_id } => (pb::TransferKind::PostPending, pending_id.as_str().to_string(), 0),
        TransferKind::VoidPending { pending_id } => (pb::TransferKind::VoidPending, pending_id.as_str().to_string(), 0),
    };
    pb::NewTransfer {
        id: t.id.as_str().to_string(),
        debit_account_id: t.debit_account_id.as_str().to_string(),
        credit_account_id: t.credit_account_id.as_str().to_string(),
        amount: if t.amount.is_zero() { String::new() } else { t.amount.to_string() },
        currency: t.currency.clone().unwrap_or_default(),
        code: t.code,
        reference: t.reference.clone(),
        kind: kind as i32,
        pending_id,
        timeout_ms,
    }
}

/// An account for a response: personal data in clear if `reveal`, masked otherwise.
pub fn account_to_proto(a: &Account, keys: &DataKeys, reveal: bool) -> pb::Account {
    let open = |field: Field, sealed: Option<&pii::Sealed>, mask: fn(&str) -> String| -> Option<String> {
        let sealed = sealed?;
        Some(match keys.open(a.id.as_str(), field, sealed) {
            Ok(text) if reveal => text,
            Ok(text) => mask(&text),
            Err(e) => {
                tracing::warn!(account = %a.id, key_id = sealed.key_id, error = %e, "personal data does not open");
                "<sealed>".to_string()
            }
        })
    };
    let status = match a.status {
        AccountStatus::Open => pb::AccountStatus::Open,
        AccountStatus::Frozen => pb::AccountStatus::Frozen,
        AccountStatus::Closed => pb::AccountStatus::Closed,
    };
    pb::Account {
        id: a.id.as_str().to_string(),
        currency: a.currency.code().to_string(),
        flags: Some(pb::AccountFlags {
            debits_must_not_exceed_credits: a.flags.debits_must_not_exceed_credits,
            credits_must_not_exceed_debits: a.flags.credits_must_not_exceed_debits,
        }),
        overdraft_limit: a.overdraft_limit.map(|d| d.to_string()).unwrap_or_default(),
        code: a.code,
        status: status as i32,
        debits_posted: a.balance.debits_posted.to_string(),
        debits_pending: a.balance.debits_pending.to_string(),
        credits_posted: a.balance.credits_posted.to_string(),
        credits_pending: a.balance.credits_pending.to_string(),
        created_at_ms: a.created_at_ms,
        created_seq: a.created_seq,
        history_len: a.history_len,
        personal_data: Some(pb::PersonalData {
            holder_name: open(Field::HolderName, a.pii.holder_name.as_deref(), pii::mask_name),
            national_id: open(Field::NationalId, a.pii.national_id.as_deref(), pii::mask_national_id),
            card_number: open(Field::CardNumber, a.pii.card_number.as_deref(), pii::mask_card_number),
        }),
        personal_data_masked: !reveal,
    }
}

pub fn transfer_to_proto(t: &Transfer) -> pb::Transfer {
    let (state, posted_amount, resolved_by) = match &t.state {
        TransferState::Posted => (pb::TransferState::Posted, String::new(), String::new()),
        TransferState::Pending => (pb::TransferState::Pending, String::new(), String::new()),
        TransferState::PendingPosted { posted_amount, by } => {
            (pb::TransferState::PendingPosted, posted_amount.to_string(), by.to_string())
        }
        TransferState::PendingVoided { by } => (pb::TransferState::PendingVoided, String::new(), by.to_string()),
        TransferState::PendingExpired => (pb::TransferState::PendingExpired, String::new(), String::new()),
        TransferState::Rejected => (pb::TransferState::Rejected, String::new(), String::new()),
    };
    pb::Transfer {
        request: Some(new_transfer_to_proto(&t.request)),
        result: result_code(t.result),
        state: state as i32,
        debit_account_id: t.debit_account_id.as_str().to_string(),
        credit_account_id: t.credit_account_id.as_str().to_string(),
        currency: t.currency.map(|c| c.code().to_string()).unwrap_or_default(),
        amount: t.amount.to_string(),
        ledger_time_ms: t.ledger_time_ms,
        journal_seq: t.journal_seq,
        expires_at_ms: t.expires_at_ms.unwrap_or(0),
        posted_amount,
        resolved_by,
    }
}

pub fn history_to_proto(h: &HistoryEntry) -> pb::HistoryRow {
    let effect = match h.effect {
        HistoryEffect::Posted => pb::HistoryEffect::Posted,
        HistoryEffect::Reserved => pb::HistoryEffect::Reserved,
        HistoryEffect::PendingPosted => pb::HistoryEffect::PendingPosted,
        HistoryEffect::Voided => pb::HistoryEffect::Voided,
        HistoryEffect::Expired => pb::HistoryEffect::Expired,
    };
    pb::HistoryRow {
        index: h.index,
        transfer_id: h.transfer_id.as_str().to_string(),
        journal_seq: h.journal_seq,
        ledger_time_ms: h.ledger_time_ms,
        side: match h.side {
            Side::Debit => "debit".into(),
            Side::Credit => "credit".into(),
        },
        effect: effect as i32,
        amount: h.amount.to_string(),
        debits_posted: h.balance.debits_posted.to_string(),
        debits_pending: h.balance.debits_pending.to_string(),
        credits_posted: h.balance.credits_posted.to_string(),
        credits_pending: h.balance.credits_pending.to_string(),
    }
}

pub fn journal_record_to_proto(r: &JournalRecord) -> pb::JournalRecord {
    pb::JournalRecord {
        seq: r.seq,
        ledger_time_ms: r.ledger_time_ms,
        origin_site: r.origin.site.clone(),
        origin_epoch: r.origin.epoch,
        origin_raft_index: r.origin.raft_index,
        caller: r.caller.clone(),
        command_type: r.command.name().to_string(),
        prev_hash: r.prev_hash.0.to_vec(),
        hash: r.hash.0.to_vec(),
        canonical: codec::encode(r),
    }
}

pub fn site_log_to_proto(e: &SiteLogEntry) -> pb::SiteLogEntry {
    let (event, detail) = match &e.event {
        SiteEvent::Site(command) => (command.name().to_string(), format!("{command:?}")),
        SiteEvent::Admin(event) => ("admin".to_string(), format!("{event:?}")),
    };
    pb::SiteLogEntry {
        seq: e.seq,
        ledger_time_ms: e.ledger_time_ms,
        caller: e.caller.clone(),
        event,
        detail,
        journal_seq: e.journal_seq,
        prev_hash: e.prev_hash.0.to_vec(),
        hash: e.hash.0.to_vec(),
        canonical: codec::encode(e),
    }
}

pub fn journal_head_to_proto(h: &JournalHead) -> pb::JournalHead {
    pb::JournalHead { seq: h.seq, hash: h.hash.0.to_vec(), ledger_time_ms: h.ledger_time_ms }
}

impl From<Decimal> for DecimalText {
    fn from(d: Decimal) -> Self {
        DecimalText(d.to_string())
    }
}

/// A decimal rendered for the API.
pub struct DecimalText(pub String);

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[test]
    fn decimals_parse_strictly() {
        assert_eq!(parse_decimal("10.50"), Some(Decimal::from_str("10.50").unwrap()));
        assert_eq!(parse_decimal("-3"), Some(Decimal::from(-3)));
        for bad in ["", "1e5", " 1", "1 ", "+1", "1.", ".5", "1.2.3", "abc", "0x10", "99999999999999999999999999999999"]
        {
            assert_eq!(parse_decimal(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn every_result_code_is_in_the_proto() {
        for code in ResultCode::ALL {
            let proto = pb::ResultCode::try_from(*code as i32).expect("code in proto");
            assert_eq!(proto.as_str_name(), format!("RESULT_CODE_{}", code.name().to_uppercase()));
        }
    }
}
