//! `ApiError`: every way an RPC can fail, and its single mapping to a gRPC status.
//!
//! Each status carries a stable [`ErrorCode`] in the `ledger-error-code` metadata key (after
//! TiKV's `error_code`); clients branch on it, never on message text. A refusal because the
//! site is not the active one also carries `ledger-active-site` and `ledger-active-epoch`,
//! which the client uses to follow the active site. docs/api.md prints the table.

use ledger_core::command::Refusal;
use ledger_proto::ErrorCode;
pub use ledger_proto::error_code::ACTIVE_EPOCH_KEY;
pub use ledger_proto::error_code::ACTIVE_SITE_KEY;
pub use ledger_proto::error_code::ERROR_CODE_KEY;
pub use ledger_proto::error_code::LEADER_ADDR_KEY;
use tonic::Code;
use tonic::Status;
use tonic::metadata::MetadataValue;

use crate::raft::error::MembershipError;
use crate::raft::error::ReadError;
use crate::raft::error::WriteError;
use crate::security::authz::Action;
use crate::security::authz::Caller;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    InvalidArgument { code: ErrorCode, message: String },
    #[error("{caller} (role {role}) may not {action}; that needs role {needed}")]
    PermissionDenied { caller: String, role: String, action: &'static str, needed: String },
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Refused(Refusal),
    /// A linearizable read at a site that is not the active one: its copy may miss writes the
    /// active site acknowledged. Carries the write refusal that names the active site.
    #[error(
        "linearizable reads are served by the active site only ({0}); ask for READ_CONSISTENCY_LOCAL to read this site's copy, labelled with its watermark"
    )]
    ReadNotActive(Refusal),
    #[error("{0}")]
    Write(#[from] WriteError),
    #[error("{0}")]
    Read(#[from] ReadError),
    #[error("{0}")]
    Membership(#[from] MembershipError),
    #[error("{0}")]
    NotFound(String),
    #[error("the site seals personal data with data key {key_id}, which this node's key file lacks")]
    DataKeyMissing { key_id: u32 },
    #[error(
        "the DR site lags {lag_ms} ms ({lag_records} records), within 10% of the {ceiling_ms} ms ceiling: writes are refused until it catches up"
    )]
    Throttled { lag_ms: u64, lag_records: u64, ceiling_ms: u64 },
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn invalid(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError::InvalidArgument { code, message: message.into() }
    }

    pub fn denied(caller: &Caller, action: Action) -> ApiError {
        let needed: Vec<&str> = action.roles_allowed().into_iter().map(|r| r.name()).collect();
        ApiError::PermissionDenied {
            caller: caller.name.clone(),
            role: caller.role.name().into(),
            action: action.name(),
            needed: needed.join(" or "),
        }
    }

    /// The stable error code and the gRPC code.
    pub fn codes(&self) -> (ErrorCode, Code) {
        match self {
            ApiError::InvalidArgument { code, .. } => (*code, Code::InvalidArgument),
            ApiError::PermissionDenied { .. } => (ErrorCode::PermissionDenied, Code::PermissionDenied),
            ApiError::Unauthenticated(_) => (ErrorCode::Unauthenticated, Code::Unauthenticated),
            ApiError::Refused(refusal) => match refusal {
                Refusal::SiteNotWritable { .. } => (ErrorCode::SiteNotWritable, Code::FailedPrecondition),
                Refusal::BatchSize { .. } => (ErrorCode::BatchSize, Code::InvalidArgument),
                Refusal::CommandTooLarge { .. } => (ErrorCode::BatchTooLarge, Code::InvalidArgument),
                Refusal::CallerInvalid => (ErrorCode::CallerInvalid, Code::InvalidArgument),
                Refusal::SiteOperation { .. } => (ErrorCode::SiteOperationRefused, Code::FailedPrecondition),
            },
            ApiError::ReadNotActive(_) => (ErrorCode::SiteNotActive, Code::FailedPrecondition),
            ApiError::Write(e) => match e {
                WriteError::NotLeader { .. } => (ErrorCode::NotLeader, Code::Unavailable),
                WriteError::NoLeader => (ErrorCode::NoLeader, Code::Unavailable),
                WriteError::QuorumLost { .. } => (ErrorCode::QuorumLost, Code::Unavailable),
                WriteError::LeaderUnreachable { .. } => (ErrorCode::LeaderUnreachable, Code::Unavailable),
                WriteError::Overloaded => (ErrorCode::Overloaded, Code::ResourceExhausted),
                WriteError::OutcomeUnknown { .. } => (ErrorCode::OutcomeUnknown, Code::DeadlineExceeded),
                WriteError::Shutdown => (ErrorCode::ShuttingDown, Code::Unavailable),
                WriteError::Internal(_) => (ErrorCode::Internal, Code::Internal),
            },
            ApiError::Read(e) => match e {
                ReadError::NoLeader => (ErrorCode::NoLeader, Code::Unavailable),
                ReadError::QuorumLost => (ErrorCode::QuorumLost, Code::Unavailable),
                ReadError::Timeout(_) => (ErrorCode::ReadTimeout, Code::DeadlineExceeded),
                ReadError::Shutdown => (ErrorCode::ShuttingDown, Code::Unavailable),
                ReadError::Peer(_) => (ErrorCode::PeerError, Code::Unavailable),
            },
            ApiError::Membership(e) => match e {
                MembershipError::NotLeader { .. } => (ErrorCode::NotLeader, Code::FailedPrecondition),
                MembershipError::Invalid(_) => (ErrorCode::MembershipInvalid, Code::FailedPrecondition),
                MembershipError::Timeout(_) => (ErrorCode::MembershipTimeout, Code::DeadlineExceeded),
                MembershipError::Raft(_) => (ErrorCode::RaftError, Code::Unavailable),
            },
            ApiError::NotFound(_) => (ErrorCode::NotFound, Code::NotFound),
            ApiError::DataKeyMissing { .. } => (ErrorCode::DataKeyMissing, Code::FailedPrecondition),
            ApiError::Throttled { .. } => (ErrorCode::DrLagCeiling, Code::Unavailable),
            ApiError::Internal(_) => (ErrorCode::Internal, Code::Internal),
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
        metadata.insert(ERROR_CODE_KEY, ascii(error_code.as_str()).expect("codes are ASCII"));
        match &error {
            ApiError::Refused(Refusal::SiteNotWritable { active_site, epoch, .. })
            | ApiError::ReadNotActive(Refusal::SiteNotWritable { active_site, epoch, .. }) => {
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
