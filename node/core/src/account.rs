//! Accounts: currency, balance flags, status, personal data and the four balance columns.

use rust_decimal::Decimal;
use serde::Deserialize;
use serde::Serialize;

use crate::id::AccountId;
use crate::money::Currency;
use crate::pii::AccountPii;

/// Balance constraints. At most one may be set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountFlags {
    /// Debits (posted plus pending) may not exceed posted credits plus the overdraft limit:
    /// a customer deposit account.
    pub debits_must_not_exceed_credits: bool,
    /// Credits (posted plus pending) may not exceed posted debits: e.g. a loan account.
    pub credits_must_not_exceed_debits: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountStatus {
    #[default]
    Open,
    /// No new transfers and no posting of pending ones; voids and expiries still release.
    Frozen,
    /// Final: zero balance, nothing pending, no further transfers.
    Closed,
}

impl AccountStatus {
    pub fn name(self) -> &'static str {
        match self {
            AccountStatus::Open => "open",
            AccountStatus::Frozen => "frozen",
            AccountStatus::Closed => "closed",
        }
    }
}

/// The four balance columns, all at the account currency's scale.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    #[serde(with = "crate::codec::decimal")]
    pub debits_posted: Decimal,
    #[serde(with = "crate::codec::decimal")]
    pub debits_pending: Decimal,
    #[serde(with = "crate::codec::decimal")]
    pub credits_posted: Decimal,
    #[serde(with = "crate::codec::decimal")]
    pub credits_pending: Decimal,
}

impl Balance {
    /// Posted credits minus posted debits: what a customer would call the balance of a
    /// deposit account.
    pub fn net_credit(&self) -> Decimal {
        self.credits_posted - self.debits_posted
    }
}

/// A request to open an account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAccount {
    pub id: AccountId,
    /// ISO 4217 code as sent by the client; checked against the currency table.
    pub currency: String,
    pub flags: AccountFlags,
    /// Only with `debits_must_not_exceed_credits`: how far debits may exceed credits.
    #[serde(with = "crate::codec::decimal::option")]
    pub overdraft_limit: Option<Decimal>,
    /// A chart-of-accounts code chosen by the client.
    pub code: u32,
    pub pii: AccountPii,
}

/// An account as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: AccountId,
    pub currency: Currency,
    pub flags: AccountFlags,
    #[serde(with = "crate::codec::decimal::option")]
    pub overdraft_limit: Option<Decimal>,
    pub code: u32,
    pub pii: AccountPii,
    pub status: AccountStatus,
    pub balance: Balance,
    pub created_at_ms: u64,
    /// Journal sequence of the command that created it.
    pub created_seq: u64,
    /// Number of rows in its history; the next row gets `history_len + 1`.
    pub history_len: u64,
}

impl Account {
    /// Whether a replayed `NewAccount` describes this account (idempotent create).
    pub fn matches(&self, new: &NewAccount) -> bool {
        self.id == new.id
            && self.currency.code() == new.currency
            && self.flags == new.flags
            && self.overdraft_limit == new.overdraft_limit
            && self.code == new.code
            && self.pii == new.pii
    }

    /// Checks the account's own balance constraints; used after every change.
    pub fn constraints_hold(&self) -> bool {
        let b = &self.balance;
        let non_negative = !b.debits_posted.is_sign_negative()
            && !b.debits_pending.is_sign_negative()
            && !b.credits_posted.is_sign_negative()
            && !b.credits_pending.is_sign_negative();
        let debits_ok = !self.flags.debits_must_not_exceed_credits
            || b.debits_posted + b.debits_pending <= b.credits_posted + self.overdraft_limit.unwrap_or_default();
        let credits_ok =
            !self.flags.credits_must_not_exceed_debits || b.credits_posted + b.credits_pending <= b.debits_posted;
        non_negative && debits_ok && credits_ok
    }
}

/// What an update does to an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountAction {
    Freeze,
    Unfreeze,
    Close,
}

/// A request to change an account's status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountUpdate {
    pub id: AccountId,
    pub action: AccountAction,
}
