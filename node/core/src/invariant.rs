//! Ledger invariants as reusable checks: the unit tests, the property tests, the node's
//! startup check and the chaos checker all call these.
//!
//! Sources: double-entry conservation (every transfer debits and credits the same amount),
//! the account flags of TigerBeetle's `state_machine.zig`, and at-most-once application of an
//! idempotency key.

use std::collections::BTreeMap;

use crate::account::Account;
use crate::account::Balance;
use crate::money::Currency;

/// A violated invariant, with enough context to find the cause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation(pub String);

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Sums every account's balance columns per currency.
pub fn sum_by_currency<'a>(accounts: impl IntoIterator<Item = &'a Account>) -> BTreeMap<Currency, Balance> {
    let mut sums: BTreeMap<Currency, Balance> = BTreeMap::new();
    for account in accounts {
        let sum = sums.entry(account.currency).or_default();
        sum.debits_posted += account.balance.debits_posted;
        sum.debits_pending += account.balance.debits_pending;
        sum.credits_posted += account.balance.credits_posted;
        sum.credits_pending += account.balance.credits_pending;
    }
    sums
}

/// Money is conserved: per currency, the sum of all debits equals the sum of all credits, for
/// posted and for pending amounts.
pub fn check_conservation<'a>(accounts: impl IntoIterator<Item = &'a Account>) -> Result<(), Violation> {
    for (currency, sum) in sum_by_currency(accounts) {
        if sum.debits_posted != sum.credits_posted {
            return Err(Violation(format!(
                "{currency}: posted debits {} != posted credits {}",
                sum.debits_posted, sum.credits_posted
            )));
        }
        if sum.debits_pending != sum.credits_pending {
            return Err(Violation(format!(
                "{currency}: pending debits {} != pending credits {}",
                sum.debits_pending, sum.credits_pending
            )));
        }
    }
    Ok(())
}

/// No account violates its balance flags or has a negative column.
pub fn check_constraints<'a>(accounts: impl IntoIterator<Item = &'a Account>) -> Result<(), Violation> {
    for account in accounts {
        if !account.constraints_hold() {
            return Err(Violation(format!("account {} violates its constraints: {:?}", account.id, account.balance)));
        }
    }
    Ok(())
}

/// The per-currency totals kept by the ledger equal the sums over accounts.
pub fn check_totals<'a>(
    accounts: impl IntoIterator<Item = &'a Account>,
    totals: &BTreeMap<Currency, Balance>,
) -> Result<(), Violation> {
    let sums = sum_by_currency(accounts);
    let currencies: std::collections::BTreeSet<&Currency> = sums.keys().chain(totals.keys()).collect();
    for currency in currencies {
        let sum = sums.get(currency).copied().unwrap_or_default();
        let kept = totals.get(currency).copied().unwrap_or_default();
        let same = kept.debits_posted == sum.debits_posted
            && kept.credits_posted == sum.credits_posted
            && kept.debits_pending == sum.debits_pending
            && kept.credits_pending == sum.credits_pending;
        if !same {
            return Err(Violation(format!("{currency}: kept totals {kept:?} != sum over accounts {sum:?}")));
        }
    }
    Ok(())
}
