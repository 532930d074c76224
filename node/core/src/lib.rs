//! The pure ledger: domain types, posting rules, the journal hash chain and the invariants.
//!
//! This crate owns the bank's book of record and nothing else. It does no IO: no async, no
//! sled, no tonic, no clock, no randomness (architecture invariant, checked by the `tidy` test).
//! Every replica of both sites feeds it the same commands stamped with the same ledger time and
//! reaches the same bytes, which is what lets the journal hash chain prove replicas identical.
//!
//! Entry point: [`ledger::apply`] executes one [`command::Envelope`] against a [`store::Overlay`]
//! and appends one [`journal::JournalRecord`].

pub mod account;
pub mod codec;
pub mod command;
pub mod id;
pub mod invariant;
pub mod journal;
pub mod ledger;
pub mod limits;
pub mod money;
pub mod pii;
pub mod posting;
pub mod reject;
pub mod site;
pub mod site_ops;
pub mod store;
pub mod transfer;

pub use rust_decimal::Decimal;
