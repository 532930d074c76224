//! Security: who the caller is (mutual TLS identities), what each role may do, and the
//! sealing of personal data at rest.

pub mod authz;
pub mod pii;
pub mod tls;
