//! Transfers: single-phase, and two-phase (pending, then post in full or part, void, or
//! expiry by ledger time). Also the per-account history rows that transfers write.

use rust_decimal::Decimal;
use serde::Deserialize;
use serde::Serialize;

use crate::id::AccountId;
use crate::id::TransferId;
use crate::money::Currency;
use crate::reject::ResultCode;

/// What a transfer does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferKind {
    /// Moves the amount at once.
    Posted,
    /// Reserves the amount (pending columns) until posted, voided or expired.
    /// `timeout_ms` is relative to the ledger time at which it is applied; `None` never expires.
    Pending { timeout_ms: Option<u64> },
    /// Posts a pending transfer: the transfer's `amount` is zero for the full pending amount,
    /// or a part of it (the rest is released).
    PostPending { pending_id: TransferId },
    /// Releases a pending transfer.
    VoidPending { pending_id: TransferId },
}

impl TransferKind {
    pub fn name(&self) -> &'static str {
        match self {
            TransferKind::Posted => "posted",
            TransferKind::Pending { .. } => "pending",
            TransferKind::PostPending { .. } => "post_pending",
            TransferKind::VoidPending { .. } => "void_pending",
        }
    }

    pub fn pending_id(&self) -> Option<&TransferId> {
        match self {
            TransferKind::PostPending { pending_id } | TransferKind::VoidPending { pending_id } => Some(pending_id),
            _ => None,
        }
    }
}

/// A transfer as the client submits it. For `PostPending` and `VoidPending`, the accounts,
/// amount and currency may be left empty: they come from the pending transfer, and if given
/// they must match it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTransfer {
    pub id: TransferId,
    pub debit_account_id: AccountId,
    pub credit_account_id: AccountId,
    /// For `Posted` and `Pending`: the amount. For `PostPending`: zero to post the full pending
    /// amount, or the part to post. For `VoidPending`: zero, or exactly the pending amount.
    #[serde(with = "crate::codec::decimal")]
    pub amount: Decimal,
    /// Optional ISO 4217 code; when given it must equal both accounts' currency.
    pub currency: Option<String>,
    /// A transaction code chosen by the client (e.g. payment scheme).
    pub code: u32,
    pub reference: String,
    pub kind: TransferKind,
}

impl NewTransfer {
    /// A single-phase transfer of `amount` in the accounts' currency, with no code or reference.
    pub fn posted(id: &str, debit: &str, credit: &str, amount: Decimal) -> NewTransfer {
        NewTransfer {
            id: TransferId::new(id),
            debit_account_id: AccountId::new(debit),
            credit_account_id: AccountId::new(credit),
            amount,
            currency: None,
            code: 0,
            reference: String::new(),
            kind: TransferKind::Posted,
        }
    }
}

/// Where a transfer stands. Rejected transfers are stored too, so that a replay of the same id
/// returns the original result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferState {
    /// A single-phase transfer, or a post/void that was applied.
    Posted,
    /// A pending transfer still holding its reservation.
    Pending,
    /// A pending transfer that was posted, with the amount actually posted.
    PendingPosted {
        #[serde(with = "crate::codec::decimal")]
        posted_amount: Decimal,
        by: TransferId,
    },
    /// A pending transfer released by a void.
    PendingVoided { by: TransferId },
    /// A pending transfer released by expiry.
    PendingExpired,
    /// Rejected with the stored result code.
    Rejected,
}

impl TransferState {
    pub fn name(&self) -> &'static str {
        match self {
            TransferState::Posted => "posted",
            TransferState::Pending => "pending",
            TransferState::PendingPosted { .. } => "pending_posted",
            TransferState::PendingVoided { .. } => "pending_voided",
            TransferState::PendingExpired => "pending_expired",
            TransferState::Rejected => "rejected",
        }
    }
}

/// A transfer as stored: the request as submitted (for idempotency), its resolved accounts,
/// amount and currency, its result and its state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    pub request: NewTransfer,
    pub result: ResultCode,
    pub state: TransferState,
    /// Resolved accounts and currency (from the pending transfer for post/void). Empty ids and
    /// `None` currency for rejections that happened before they were known.
    pub debit_account_id: AccountId,
    pub credit_account_id: AccountId,
    pub currency: Option<Currency>,
    /// The amount that moved or was reserved (canonical scale); zero for rejections.
    #[serde(with = "crate::codec::decimal")]
    pub amount: Decimal,
    pub ledger_time_ms: u64,
    pub journal_seq: u64,
    /// For a pending transfer with a timeout: ledger time after which it expires.
    pub expires_at_ms: Option<u64>,
}

/// How a history row changed an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HistoryEffect {
    /// Posted amount added to the debit or credit column.
    Posted,
    /// Amount reserved in a pending column.
    Reserved,
    /// A pending reservation turned into a posted amount (`amount` posted, rest released).
    PendingPosted,
    /// A pending reservation released (void).
    Voided,
    /// A pending reservation released (expiry).
    Expired,
}

/// Which side of the transfer the account was on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Side {
    Debit,
    Credit,
}

/// One row of an account's history, keyed by (account, `index`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// 1-based, contiguous per account.
    pub index: u64,
    pub transfer_id: TransferId,
    pub journal_seq: u64,
    pub ledger_time_ms: u64,
    pub side: Side,
    pub effect: HistoryEffect,
    /// Amount posted (for `Posted`/`PendingPosted`) or reserved/released.
    #[serde(with = "crate::codec::decimal")]
    pub amount: Decimal,
    /// Balances after the row.
    pub balance: crate::account::Balance,
}
