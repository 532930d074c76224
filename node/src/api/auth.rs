//! Who is calling, and may they: every handler starts with `auth.authorize(&request, action)`.

use tonic::Request;

use crate::api::status::ApiError;
use crate::security::authz::Action;
use crate::security::authz::Caller;
use crate::security::authz::Role;

/// How callers are identified.
#[derive(Clone, Debug)]
pub enum Auth {
    /// `insecure = true`: no TLS; every caller is `insecure` with the admin role.
    Insecure,
    /// Mutual TLS: the caller is named by its certificate (see `security::tls`).
    Tls,
}

impl Auth {
    /// The caller, if it may perform `action`; `PERMISSION_DENIED` otherwise.
    pub fn authorize<T>(&self, request: &Request<T>, action: Action) -> Result<Caller, ApiError> {
        let caller = self.identify(request)?;
        if !caller.may(action) {
            tracing::warn!(caller = %caller.name, role = %caller.role, action = action.name(), "permission denied");
            metrics::counter!("ledger_permission_denied_total", "action" => action.name()).increment(1);
            return Err(ApiError::denied(&caller, action));
        }
        Ok(caller)
    }

    pub fn identify<T>(&self, request: &Request<T>) -> Result<Caller, ApiError> {
        match self {
            Auth::Insecure => Ok(Caller::insecure()),
            Auth::Tls => {
                let certs =
                    request.peer_certs().ok_or_else(|| ApiError::Unauthenticated("no client certificate".into()))?;
                crate::security::tls::caller_from_certs(&certs).map_err(ApiError::Unauthenticated)
            }
        }
    }

    /// For the peer port: only other nodes.
    pub fn require_node<T>(&self, request: &Request<T>) -> Result<Caller, ApiError> {
        let caller = self.identify(request)?;
        if caller.role != Role::Node && !matches!(self, Auth::Insecure) {
            return Err(ApiError::PermissionDenied {
                caller: caller.name,
                role: caller.role.name().into(),
                action: "use the peer (Raft) service",
                needed: Role::Node.name().into(),
            });
        }
        Ok(caller)
    }
}
