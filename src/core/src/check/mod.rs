//! The check protocol between the filter (or Envoy's `ext_authz`) and the
//! companion: `GET /ingress/auth?scope=..&satisfy=..` answered by a
//! [`CheckAnswer`] body and `X-Auth-Request-*` headers.

use serde::{Deserialize, Serialize};

/// Path of the check endpoint on the companion.
pub const CHECK_PATH: &str = "/ingress/auth";

/// Path of the companion's feed of revoked and changed token keys.
pub const CHANGES_PATH: &str = "/ingress/changes";

/// One page of that feed: keys whose cached answers must go, and where the
/// next poll starts. `reset`: drop every cached answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Changes {
    pub cursor: i64,
    pub keys: Vec<crate::TokenKey>,
    pub reset: bool,
}

/// The header in which Envoy's `ext_authz` (by `headers_to_add`) tells the
/// companion what to require; a client's copy must never reach it.
pub const EXT_AUTHZ_CHECK_HEADER: &str = "x-portcullis-check";

/// Identity headers set for the upstream. Every request header with
/// [`headers::PREFIX`] that a client sends is removed first, so none can be
/// forged.
pub mod headers {
    pub const PREFIX: &str = "x-auth-request-";
    pub const USER: &str = "x-auth-request-user";
    pub const EMAIL: &str = "x-auth-request-email";
    pub const TOKEN_SCOPES: &str = "x-auth-request-token-scopes";
    /// The delegated token, when the route asks for one.
    pub const TOKEN: &str = "x-auth-request-token";
    pub const UID: &str = "x-auth-request-uid";
    pub const GID: &str = "x-auth-request-gid";
    /// Group names, comma-separated.
    pub const GROUPS: &str = "x-auth-request-groups";
    /// The service an internal token was delegated to.
    pub const SERVICE: &str = "x-auth-request-service";
}

/// The `&'static` name of a header that [`CheckAnswer::upstream_headers`]
/// may set, or `None` for any other name.
pub fn upstream_header_name(name: &str) -> Option<&'static str> {
    use headers::*;
    [
        USER,
        EMAIL,
        UID,
        GID,
        GROUPS,
        SERVICE,
        TOKEN_SCOPES,
        TOKEN,
        "authorization",
    ]
    .into_iter()
    .find(|known| *known == name)
}

mod answer;
mod request;

pub use answer::{CheckAnswer, DelegatedToken};
pub use request::{
    service_name, AuthType, CheckQueryError, CheckRequest, Delegation, DelegationConflict,
    MAX_MINIMUM_LIFETIME,
};
