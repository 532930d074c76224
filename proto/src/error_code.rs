//! `ErrorCode`: the stable machine-readable code every error status carries in the
//! `ledger-error-code` metadata key (after TiKV's `error_code`). The node maps each failure to
//! one of these; clients branch on them, never on message text. docs/api.md lists every code
//! with its gRPC status and retry advice, and a test checks that the two agree.

use std::fmt;

/// The metadata key that carries the code.
pub const ERROR_CODE_KEY: &str = "ledger-error-code";
/// With `site_not_writable` and `site_not_active`: the active site's name.
pub const ACTIVE_SITE_KEY: &str = "ledger-active-site";
/// With `site_not_writable` and `site_not_active`: the active site's epoch.
pub const ACTIVE_EPOCH_KEY: &str = "ledger-active-epoch";
/// With `not_leader` on membership operations: the leader's client address.
pub const LEADER_ADDR_KEY: &str = "ledger-leader-addr";

macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// Every stable error code. Codes are never renamed or reused; new ones are added.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &[ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as it travels in `ledger-error-code`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $name,)*
                }
            }

            /// The code named `name`, if it is one.
            pub fn from_name(name: &str) -> Option<ErrorCode> {
                match name {
                    $($name => Some(ErrorCode::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

error_codes! {
    /// The request body is not a valid protobuf message of the RPC's request type.
    MalformedRequest = "malformed_request",
    /// A batch with no items or more than the documented maximum.
    BatchSize = "batch_size",
    /// The command encodes to more than the size limit.
    BatchTooLarge = "batch_too_large",
    IdInvalid = "id_invalid",
    LimitInvalid = "limit_invalid",
    ConsistencyInvalid = "consistency_invalid",
    MemberInvalid = "member_invalid",
    RoleInvalid = "role_invalid",
    OperationInvalid = "operation_invalid",
    SiteMismatch = "site_mismatch",
    /// The caller identity (certificate name) is empty or too long.
    CallerInvalid = "caller_invalid",
    PermissionDenied = "permission_denied",
    Unauthenticated = "unauthenticated",
    /// This site takes no writes (standby, fenced, superseded); the active site is named in
    /// the metadata.
    SiteNotWritable = "site_not_writable",
    /// A linearizable read sent to a site that is not the active one; the active site is named
    /// in the metadata. A `LOCAL` read is served here.
    SiteNotActive = "site_not_active",
    SiteOperationRefused = "site_operation_refused",
    NotLeader = "not_leader",
    MembershipInvalid = "membership_invalid",
    /// This node's data key file lacks the key the site seals personal data with.
    DataKeyMissing = "data_key_missing",
    NotFound = "not_found",
    NoLeader = "no_leader",
    QuorumLost = "quorum_lost",
    LeaderUnreachable = "leader_unreachable",
    ShuttingDown = "shutting_down",
    PeerError = "peer_error",
    RaftError = "raft_error",
    DrLagCeiling = "dr_lag_ceiling",
    Overloaded = "overloaded",
    OutcomeUnknown = "outcome_unknown",
    ReadTimeout = "read_timeout",
    MembershipTimeout = "membership_timeout",
    Internal = "internal",
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: every code round-trips through its name and no two codes share one.
    #[test]
    fn codes_round_trip_and_are_unique() {
        let mut names = std::collections::BTreeSet::new();
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_name(code.as_str()), Some(*code));
            assert!(names.insert(code.as_str()), "{code} twice");
            assert!(code.as_str().bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        }
        assert_eq!(ErrorCode::from_name("no_such_code"), None);
    }
}
