//! The `ledger.v1` protobuf API and the tonic/prost code generated from it.
//!
//! `ledger.v1` holds the client services (`Ledger`, `Cluster`, `Audit`); `ledger.v1.peer`
//! holds the node-to-node `RaftPeer` service, served on a separate port. Generated types stop
//! at the node's `api/` and `raft/` modules and at the client crate: the ledger never sees them.

#![allow(clippy::all, missing_docs)]

pub mod v1 {
    tonic::include_proto!("ledger.v1");

    pub mod peer {
        tonic::include_proto!("ledger.v1.peer");
    }
}

/// Encoded `FileDescriptorSet` of every service, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("ledger_descriptor");

pub mod codec;
pub mod error_code;

pub use error_code::ErrorCode;
