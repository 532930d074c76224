//! The gRPC services. Prost types stop here (and at `raft/network.rs`): handlers convert
//! requests into ledger commands, and ledger values back into responses.
//!
//! - `ledger.rs`: accounts and transfers (clients);
//! - `cluster.rs`: status, bootstrap, membership, leadership (operators);
//! - `audit.rs`: the journal (auditors, the DR site);
//! - `peer.rs`: Raft RPCs and write forwarding (peers only, on the peer port);
//! - `health.rs`: gRPC health per service name, and reflection of the client port;
//! - `status.rs`: the one `ApiError -> tonic::Status` mapping with stable error codes;
//! - `convert.rs`: proto <-> domain conversions.

pub mod audit;
pub mod auth;
pub mod cluster;
pub mod convert;
pub mod health;
pub mod ledger;
pub mod peer;
pub mod status;
