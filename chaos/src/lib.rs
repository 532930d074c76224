//! Chaos engineering for the ledger: workloads that record every acknowledgement, the
//! invariant checker, fault injection, the drills that combine them into RPO/RTO reports, and
//! the seeded whole-cluster simulator (`sim`).

pub mod drill;
pub mod invariants;
pub mod proxy;
pub mod rpo;
pub mod sim;
pub mod workload;
