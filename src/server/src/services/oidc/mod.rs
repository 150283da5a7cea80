//! Portcullis as a minimal, standards-correct OpenID Connect provider
//! (after Gafaelfawr's OIDCService): discovery, JWKS, authorization codes
//! with PKCE, the token endpoint, userinfo, RFC 7662 introspection and
//! RFC 7009 revocation. The access token is an opaque `oidc` child of the
//! user's session; the ID token is an RS256 JWT.

pub mod authorize;
pub mod clients;
pub mod provider;
pub mod redeem;

pub use clients::{Client, NewClient, OidcClients};
pub use provider::{
    AuthorizeOutcome, AuthorizeRequest, Introspection, OidcProvider, TokenRequest, TokenResponse,
};

use crate::random::RandomError;
use crate::services::TokenError;
use crate::storage::StorageError;

/// Longest life of an authorization code (RFC 6749 §4.1.2: at most 10
/// minutes).
pub const CODE_LIFETIME: u64 = 5 * 60;

/// The OpenID scopes this provider understands; others are ignored, as
/// OpenID Connect Core §3.1.2.1 asks.
pub const SUPPORTED_SCOPES: [&str; 3] = ["openid", "profile", "email"];

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("client authentication failed")]
    InvalidClient,
    #[error("too many failed authentications for this client; try again in {0} s")]
    TooManyAttempts(u64),
    #[error("{0}")]
    InvalidGrant(&'static str),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("grant_type must be authorization_code")]
    UnsupportedGrantType,
    #[error("{0}")]
    UnauthorizedClient(&'static str),
    /// A bad access token at userinfo.
    #[error("{0}")]
    InvalidToken(&'static str),
    #[error("permission denied: {0}")]
    PermissionDenied(&'static str),
    #[error("an OpenID Connect client {0:?} already exists")]
    DuplicateClient(String),
    #[error(transparent)]
    Random(#[from] RandomError),
    #[error("cannot sign the ID token: {0}")]
    Signing(String),
    #[error(transparent)]
    Token(TokenError),
    #[error(transparent)]
    Storage(StorageError),
}

impl From<StorageError> for OidcError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::DuplicateClient(id) => OidcError::DuplicateClient(id),
            other => OidcError::Storage(other),
        }
    }
}

impl From<TokenError> for OidcError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Storage(s) => s.into(),
            other => OidcError::Token(other),
        }
    }
}

/// SHA-256: how codes, poll secrets and client secrets are kept, and the
/// base of PKCE S256 and `at_hash`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// The PKCE S256 challenge of a verifier (RFC 7636 §4.2).
pub fn pkce_s256(verifier: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha256(verifier.as_bytes()))
}
