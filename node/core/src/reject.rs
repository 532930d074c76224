//! Result codes: one stable number per outcome of one item (account, update or transfer).
//!
//! A business rejection is a value, replicated and journaled like any success. Numbers never
//! change once released; new codes are appended. Codes are ordered by precedence: when several
//! rules fail, the item gets the lowest-numbered one, on every replica. One exception: a post or
//! void first locates its pending transfer (47-51), since that is where its accounts come from,
//! and only then applies the account rules (43-46) and the rest in order.

use std::fmt;

use serde::Deserialize;
use serde::Serialize;

macro_rules! result_codes {
    ($( $(#[$doc:meta])* $name:ident = $value:literal => $text:literal, )*) => {
        /// Outcome of one item. `Ok` is 0; every other value is a rejection.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[repr(u32)]
        pub enum ResultCode {
            $( $(#[$doc])* $name = $value, )*
        }

        impl ResultCode {
            /// Every code, in numeric order.
            pub const ALL: &'static [ResultCode] = &[ $( ResultCode::$name, )* ];

            /// The stable snake_case name, as used in the API, reports and metrics.
            pub fn name(self) -> &'static str {
                match self { $( ResultCode::$name => $text, )* }
            }

            pub fn from_u32(value: u32) -> Option<ResultCode> {
                match value { $( $value => Some(ResultCode::$name), )* _ => None }
            }
        }
    };
}

result_codes! {
    /// The item was applied (or, on a replay, was applied before).
    Ok = 0 => "ok",
    /// Another item of the same atomic batch failed, so this one was not applied.
    LinkedEventFailed = 1 => "linked_event_failed",
    /// The id is empty, longer than 64 bytes, or has a character outside `[A-Za-z0-9._:-]`.
    IdInvalid = 2 => "id_invalid",
    /// The id already exists with a different body (idempotency key reused for another item).
    IdConflict = 3 => "id_conflict",
    /// The same id appears twice in one batch.
    IdDuplicateInBatch = 4 => "id_duplicate_in_batch",

    /// The currency is not a known ISO 4217 code.
    CurrencyUnknown = 10 => "currency_unknown",
    /// Both balance flags are set; an account may have at most one.
    FlagsMutuallyExclusive = 11 => "flags_mutually_exclusive",
    /// The overdraft limit is negative, too precise for the currency, too large, or given
    /// without `debits_must_not_exceed_credits`.
    OverdraftLimitInvalid = 12 => "overdraft_limit_invalid",
    /// A personal-data field is longer than allowed.
    PersonalDataTooLong = 13 => "personal_data_too_long",

    /// The debit account id is malformed.
    DebitAccountIdInvalid = 20 => "debit_account_id_invalid",
    /// The credit account id is malformed.
    CreditAccountIdInvalid = 21 => "credit_account_id_invalid",
    /// Debit and credit accounts are the same.
    AccountsMustBeDifferent = 22 => "accounts_must_be_different",
    /// The pending id of a post or void is malformed.
    PendingIdInvalid = 23 => "pending_id_invalid",
    /// A post or void refers to itself.
    PendingIdMustBeDifferent = 24 => "pending_id_must_be_different",
    /// The amount is zero or negative.
    AmountNotPositive = 25 => "amount_not_positive",
    /// The amount has more decimal places than the currency allows.
    AmountTooPrecise = 26 => "amount_too_precise",
    /// The amount is above the per-transfer maximum.
    AmountTooLarge = 27 => "amount_too_large",
    /// The reference is longer than allowed.
    ReferenceTooLong = 28 => "reference_too_long",
    /// A pending timeout is zero or above one year, or a timeout was sent (API) for a transfer
    /// that is not pending.
    TimeoutInvalid = 29 => "timeout_invalid",
    /// The amount is not a decimal number (set by the API when parsing).
    AmountInvalid = 30 => "amount_invalid",
    /// The transfer kind is unknown, or a pending id was given for a kind without one (set by
    /// the API when parsing).
    KindInvalid = 31 => "kind_invalid",

    /// The debit account does not exist.
    DebitAccountNotFound = 40 => "debit_account_not_found",
    /// The credit account does not exist.
    CreditAccountNotFound = 41 => "credit_account_not_found",
    /// The accounts, or the transfer and its accounts, are in different currencies.
    CurrencyMismatch = 42 => "currency_mismatch",
    /// The debit account is closed.
    DebitAccountClosed = 43 => "debit_account_closed",
    /// The credit account is closed.
    CreditAccountClosed = 44 => "credit_account_closed",
    /// The debit account is frozen.
    DebitAccountFrozen = 45 => "debit_account_frozen",
    /// The credit account is frozen.
    CreditAccountFrozen = 46 => "credit_account_frozen",
    /// The pending transfer named by a post or void does not exist.
    PendingTransferNotFound = 47 => "pending_transfer_not_found",
    /// The transfer named by a post or void is not a two-phase pending transfer.
    PendingTransferNotPending = 48 => "pending_transfer_not_pending",
    /// The pending transfer was already posted.
    PendingTransferAlreadyPosted = 49 => "pending_transfer_already_posted",
    /// The pending transfer was already voided.
    PendingTransferAlreadyVoided = 50 => "pending_transfer_already_voided",
    /// The pending transfer's timeout has passed (in ledger time).
    PendingTransferExpired = 51 => "pending_transfer_expired",
    /// A post or void names accounts or a currency different from its pending transfer.
    PendingTransferMismatch = 52 => "pending_transfer_mismatch",
    /// A post asks for more than the pending amount.
    PostAmountExceedsPending = 53 => "post_amount_exceeds_pending",
    /// The debit would take the account past its credits plus overdraft limit.
    ExceedsCredits = 54 => "exceeds_credits",
    /// The credit would take the account past its debits.
    ExceedsDebits = 55 => "exceeds_debits",
    /// A balance would overflow.
    BalanceOverflow = 56 => "balance_overflow",

    /// The account named by an update does not exist.
    AccountNotFound = 70 => "account_not_found",
    /// The account is closed; closed accounts cannot be frozen or reopened.
    AccountClosed = 71 => "account_closed",
    /// The account still has pending amounts; void or post them before closing.
    AccountHasPending = 72 => "account_has_pending",
    /// The account's posted balance is not zero; move the money out before closing.
    AccountBalanceNotZero = 73 => "account_balance_not_zero",
}

impl ResultCode {
    pub fn is_ok(self) -> bool {
        self == ResultCode::Ok
    }
}

impl fmt::Display for ResultCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for code in ResultCode::ALL {
            assert!(seen.insert(*code as u32), "duplicate number for {code}");
            assert_eq!(ResultCode::from_u32(*code as u32), Some(*code));
        }
        assert!(ResultCode::ALL.windows(2).all(|w| (w[0] as u32) < (w[1] as u32)));
        // Released numbers: changing one is a breaking change for every client and report.
        assert_eq!(ResultCode::Ok as u32, 0);
        assert_eq!(ResultCode::IdConflict as u32, 3);
        assert_eq!(ResultCode::ExceedsCredits as u32, 54);
        assert_eq!(ResultCode::AccountBalanceNotZero as u32, 73);
    }
}
