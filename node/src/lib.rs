//! The ledger node. See ARCHITECTURE.md at the repository root for the map.

pub mod config;
pub mod raft;
pub mod security;
pub mod store;
pub mod transport;
