//! Who is calling, and may they: every handler starts with `auth.authorize(&request, action)`.

use tonic::Request;

use crate::api::status::ApiError;
use crate::security::authz::Action;
use crate::security::authz::Caller;

/// How callers are identified.
#[derive(Clone, Debug)]
pub enum Auth {
    /// `--insecure`: no TLS; every caller is `insecure` with the admin role.
    Insecure,
}

impl Auth {
    /// The caller, if it may perform `action`; `PERMISSION_DENIED` otherwise.
    pub fn authorize<T>(&self, request: &Request<T>, action: Action) -> Result<Caller, ApiError> {
        let caller = self.identify(request)?;
        if !caller.may(action) {
            tracing::warn!(caller = %caller.name, role = %caller.role, action = action.name(), "permission denied");
            return Err(ApiError::denied(&caller, action));
        }
        Ok(caller)
    }

    pub fn identify<T>(&self, _request: &Request<T>) -> Result<Caller, ApiError> {
        match self {
            Auth::Insecure => Ok(Caller::insecure()),
        }
    }
}
