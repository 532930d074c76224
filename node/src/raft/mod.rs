//! openraft glue: the type configuration, the gRPC network between peers, the batcher that
//! groups commands into entries, and the replica handle that the API calls.

pub mod batcher;
pub mod clock;
pub mod error;
pub mod network;
pub mod replica;
pub mod types;
