//! Currencies (ISO 4217 with their minor-unit scale) and the rules for amounts.

use std::fmt;

use rust_decimal::Decimal;
use serde::Deserialize;
use serde::Deserializer;
use serde::Serialize;
use serde::Serializer;

use crate::limits::AMOUNT_MAX_MAJOR_UNITS;

/// ISO 4217 alphabetic codes this ledger accepts, with their minor-unit scale (digits after the
/// decimal point). Sorted by code so lookup is a binary search. A currency outside this table is
/// rejected rather than guessed at: a wrong scale would silently misstate money.
const CURRENCIES: &[(&str, u32)] = &[
    ("AED", 2),
    ("AUD", 2),
    ("BHD", 3),
    ("BRL", 2),
    ("CAD", 2),
    ("CHF", 2),
    ("CLP", 0),
    ("CNY", 2),
    ("CZK", 2),
    ("DKK", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("HKD", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("ISK", 0),
    ("JOD", 3),
    ("JPY", 0),
    ("KRW", 0),
    ("KWD", 3),
    ("MXN", 2),
    ("MYR", 2),
    ("NOK", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PHP", 2),
    ("PLN", 2),
    ("RON", 2),
    ("SAR", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("THB", 2),
    ("TND", 3),
    ("TRY", 2),
    ("TWD", 2),
    ("USD", 2),
    ("VND", 0),
    ("ZAR", 2),
];

/// A currency known to the ledger: three upper-case ASCII letters from [`CURRENCIES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Currency([u8; 3]);

impl Currency {
    /// Parses a known ISO 4217 code; `None` for anything not in the table.
    pub fn parse(code: &str) -> Option<Currency> {
        let index = CURRENCIES.binary_search_by(|(c, _)| c.cmp(&code)).ok()?;
        let bytes = CURRENCIES[index].0.as_bytes();
        Some(Currency([bytes[0], bytes[1], bytes[2]]))
    }

    pub fn code(&self) -> &'static str {
        CURRENCIES[self.index()].0
    }

    /// Digits after the decimal point in this currency's minor unit.
    pub fn scale(&self) -> u32 {
        CURRENCIES[self.index()].1
    }

    /// Its row in [`CURRENCIES`]: a binary search on the code's three bytes as one integer
    /// (the same order as the codes), cheaper than comparing strings on every posting.
    fn index(&self) -> usize {
        let key = |code: &[u8]| u32::from_be_bytes([0, code[0], code[1], code[2]]);
        let wanted = key(&self.0);
        CURRENCIES
            .binary_search_by_key(&wanted, |(code, _)| key(code.as_bytes()))
            .expect("a Currency is always in the table")
    }

    pub fn all() -> impl Iterator<Item = Currency> {
        CURRENCIES.iter().map(|(c, _)| Currency::parse(c).expect("table entry"))
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        Currency::parse(&code).ok_or_else(|| serde::de::Error::custom(format!("unknown currency {code:?}")))
    }
}

/// Why an amount is not acceptable for a currency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AmountError {
    NotPositive,
    TooPrecise,
    TooLarge,
}

/// The largest amount of one transfer.
pub fn amount_max() -> Decimal {
    Decimal::from(AMOUNT_MAX_MAJOR_UNITS)
}

/// Checks a transfer amount against a scale: positive, at most `scale` significant decimal
/// places (trailing zeros do not count), and at most [`amount_max`].
pub fn check_amount(amount: Decimal, scale: u32) -> Result<(), AmountError> {
    if amount.is_sign_negative() || amount.is_zero() {
        return Err(AmountError::NotPositive);
    }
    if amount.normalize().scale() > scale {
        return Err(AmountError::TooPrecise);
    }
    if amount > amount_max() {
        return Err(AmountError::TooLarge);
    }
    Ok(())
}

/// The canonical form of an amount: exactly the currency's scale, so that "10.5" and "10.50"
/// are stored, hashed and shown the same way. Only call on a checked amount.
pub fn canonical(amount: Decimal, currency: Currency) -> Decimal {
    let mut value = amount;
    value.rescale(currency.scale());
    assert_eq!(value, amount, "rescaling a checked amount must not change its value");
    value
}

/// Zero at a currency's scale.
pub fn zero(currency: Currency) -> Decimal {
    Decimal::new(0, currency.scale())
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[test]
    fn table_is_sorted_and_parses() {
        assert!(CURRENCIES.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(Currency::parse("EUR").unwrap().scale(), 2);
        assert_eq!(Currency::parse("JPY").unwrap().scale(), 0);
        assert_eq!(Currency::parse("KWD").unwrap().scale(), 3);
        assert_eq!(Currency::parse("eur"), None);
        assert_eq!(Currency::parse("XXX"), None);
        assert_eq!(Currency::all().count(), CURRENCIES.len());
    }

    #[test]
    fn amounts_are_checked() {
        let d = |s: &str| Decimal::from_str(s).unwrap();
        assert_eq!(check_amount(d("10.25"), 2), Ok(()));
        assert_eq!(check_amount(d("10.250"), 2), Ok(()));
        assert_eq!(check_amount(d("10.251"), 2), Err(AmountError::TooPrecise));
        assert_eq!(check_amount(d("0"), 2), Err(AmountError::NotPositive));
        assert_eq!(check_amount(d("-1"), 2), Err(AmountError::NotPositive));
        assert_eq!(check_amount(d("1.5"), 0), Err(AmountError::TooPrecise));
        assert_eq!(check_amount(d("1000000000000000"), 2), Ok(()));
        assert_eq!(check_amount(d("1000000000000000.01"), 2), Err(AmountError::TooLarge));
        let eur = Currency::parse("EUR").unwrap();
        assert_eq!(canonical(d("10.5"), eur).to_string(), "10.50");
    }
}
