//! Chaos engineering for the ledger: workloads that record every acknowledgement, the
//! invariant checker, fault injection and the drills that combine them into RPO/RTO reports.

pub mod drill;
pub mod invariants;
pub mod proxy;
pub mod rpo;
pub mod workload;
