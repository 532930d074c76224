//! The ledger node: Raft (openraft) on sled, the gRPC services, and the wiring between them.
//! See ARCHITECTURE.md at the repository root for the map and its invariants.
//!
//! - `store/`: the only module that imports sled (log store, state machine, snapshots);
//! - `raft/`: openraft types, the peer network, the batcher and the replica handle;
//! - `api/`: the gRPC services; prost types stop here and in `raft/network.rs`;
//! - `security/`: roles, authorization, personal-data sealing;
//! - `runtime.rs`: wiring and graceful shutdown; `main.rs` only parses flags and calls it.

pub mod api;
pub mod cli;
pub mod config;
pub mod dr;
pub mod failpoint;
pub mod metrics;
pub mod raft;
pub mod runtime;
pub mod security;
pub mod store;
pub mod transport;
