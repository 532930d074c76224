//! Running the ledger: the topology file, a local launcher of node processes, the status
//! table, and the operator commands (membership, DR). `ledger-cluster` is its binary.

pub mod certs;
pub mod cli;
pub mod dr;
pub mod launcher;
pub mod process;
pub mod reconcile;
pub mod status;
pub mod topology;
