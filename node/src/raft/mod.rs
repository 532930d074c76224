//! openraft glue: the type configuration, the network between peers (over a
//! [`wire::PeerWire`]: gRPC, or the simulator's), the batcher that
//! groups commands into entries, and the replica handle that the API calls.

pub mod batcher;
pub mod clock;
pub mod error;
pub mod network;
pub mod replica;
pub mod types;
pub mod wire;
