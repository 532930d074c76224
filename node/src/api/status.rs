//! `ApiError`: every way an RPC can fail, and its single mapping to a gRPC status.
//!
//! Each status carries a stable machine-readable code in the `ledger-error-code` metadata key
//! (after TiKV's `error_code`); clients branch on it, never on message text. A refusal because
//! the site is not writable also carries `ledger-active-site` and `ledger-active-epoch`, which
//! the client uses to follow the active site.

use ledger_core::command::Refusal;
use tonic::Code;
use tonic::Status;
use tonic::metadata::MetadataValue;

use crate::raft::replica::MembershipError;
use crate::raft::replica::ReadError;
use crate::raft::replica::WriteError;
use crate::security::authz::Action;
use crate::security::authz::Caller;

pub const ERROR_CODE_KEY: &str = "ledger-error-code";
pub const ACTIVE_SITE_KEY: &str = "ledger-active-site";
pub const ACTIVE_EPOCH_KEY: &str = "ledger-active-epoch";
pub const LEADER_ADDR_KEY: &str = "ledger-leader-addr";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    InvalidArgument { code: &'static str, message: String },
    #[error("{caller} (role {role}) may not {action}")]
    PermissionDenied { caller: String, role: String, action: &'static str },
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Refused(Refusal),
    #[error("{0}")]
    Write(#[from] WriteError),
    #[error("{0}")]
    Read(#[from] ReadError),
    #[error("{0}")]
    Membership(#[from] MembershipError),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Throttled(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::InvalidArgument { code, message: message.into() }
    }

    pub fn denied(caller: &Caller, action: Action) -> ApiError {
        ApiError::PermissionDenied {
            caller: caller.name.clone(),
            role: caller.role.name().into(),
            action: action.name(),
        }
    }

    /// The stable error code and the gRPC code.
    pub fn codes(&self) -> (&'static str, Code) {
        match self {
            ApiError::InvalidArgument { code, .. } => (code, Code::InvalidArgument),
            ApiError::PermissionDenied { .. } => ("permission_denied", Code::PermissionDenied),
            ApiError::Unauthenticated(_) => ("unauthenticated", Code::Unauthenticated),
            ApiError::Refused(refusal) => match refusal {
                Refusal::SiteNotWritable { .. } => ("site_not_writable", Code::FailedPrecondition),
                Refusal::BatchSize { .. } => ("batch_size", Code::InvalidArgument),
                Refusal::CommandTooLarge { .. } => ("batch_too_large", Code::InvalidArgument),
                Refusal::CallerInvalid => ("caller_invalid", Code::InvalidArgument),
                Refusal::SiteOperation { .. } => ("site_operation_refused", Code::FailedPrecondition),
            },
            ApiError::Write(e) => match e {
                WriteError::NotLeader { .. } => ("not_leader", Code::Unavailable),
                WriteError::NoLeader => ("no_leader", Code::Unavailable),
                WriteError::QuorumLost { .. } => ("quorum_lost", Code::Unavailable),
                WriteError::LeaderUnreachable { .. } => ("leader_unreachable", Code::Unavailable),
                WriteError::Overloaded => ("overloaded", Code::ResourceExhausted),
                WriteError::OutcomeUnknown { .. } => ("outcome_unknown", Code::DeadlineExceeded),
                WriteError::Shutdown => ("shutting_down", Code::Unavailable),
                WriteError::Internal(_) => ("internal", Code::Internal),
            },
            ApiError::Read(e) => match e {
                ReadError::NoLeader => ("no_leader", Code::Unavailable),
                ReadError::QuorumLost => ("quorum_lost", Code::Unavailable),
                ReadError::Timeout(_) => ("read_timeout", Code::DeadlineExceeded),
                ReadError::Shutdown => ("shutting_down", Code::Unavailable),
                ReadError::Peer(_) => ("peer_error", Code::Unavailable),
            },
            ApiError::Membership(e) => match e {
                MembershipError::NotLeader { .. } => ("not_leader", Code::FailedPrecondition),
                MembershipError::Invalid(_) => ("membership_invalid", Code::FailedPrecondition),
                MembershipError::Timeout(_) => ("membership_timeout", Code::DeadlineExceeded),
                MembershipError::Raft(_) => ("raft_error", Code::Unavailable),
            },
            ApiError::NotFound(_) => ("not_found", Code::NotFound),
            ApiError::FailedPrecondition(_) => ("failed_precondition", Code::FailedPrecondition),
            ApiError::Throttled(_) => ("dr_lag_ceiling", Code::Unavailable),
            ApiError::Internal(_) => ("internal", Code::Internal),
        }
    }
}

fn ascii(value: &str) -> Option<MetadataValue<tonic::metadata::Ascii>> {
    value.parse().ok()
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Status {
        let (error_code, code) = error.codes();
        let mut status = Status::new(code, error.to_string());
        let metadata = status.metadata_mut();
        metadata.insert(ERROR_CODE_KEY, ascii(error_code).expect("codes are ASCII"));
        match &error {
            ApiError::Refused(Refusal::SiteNotWritable { active_site, epoch, .. }) => {
                if let Some(site) = ascii(active_site) {
                    metadata.insert(ACTIVE_SITE_KEY, site);
                }
                if let Some(epoch) = ascii(&epoch.to_string()) {
                    metadata.insert(ACTIVE_EPOCH_KEY, epoch);
                }
            }
            ApiError::Membership(MembershipError::NotLeader { leader_addr, .. }) => {
                if let Some(addr) = ascii(leader_addr) {
                    metadata.insert(LEADER_ADDR_KEY, addr);
                }
            }
            _ => {}
        }
        status
    }
}

pub type ApiResult<T> = Result<tonic::Response<T>, Status>;

macro_rules! status_via_api_error {
    ($($error:ty),*) => {$(
        impl From<$error> for Status {
            fn from(error: $error) -> Status {
                ApiError::from(error).into()
            }
        }
    )*};
}

status_via_api_error!(WriteError, ReadError, MembershipError);
