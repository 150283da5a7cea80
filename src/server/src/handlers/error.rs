//! The one place where errors become HTTP replies: RFC 6750 challenges for
//! authentication, and the stable JSON body `{"error", "error_description"}`
//! for everything.

use axum::http::header::{CACHE_CONTROL, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use portcullis_core::challenge::{self, Challenge, ErrorCode};
use portcullis_core::AuthType;
use serde::Serialize;

use super::page;
use crate::services::authenticate::NOT_VALID;
use crate::services::check::LIFETIME_TOO_SHORT;
use crate::services::cli_login::CliLoginError;
use crate::services::login::LoginError;
use crate::services::oidc::OidcError;
use crate::services::{AuthError, CheckError, TokenError};

/// A failed authentication, for the ingress and the API alike. A route
/// whose callers use Basic auth gets a Basic challenge, so that browsers
/// and tools prompt for it.
pub fn auth_error(e: &AuthError, realm: &str, auth_type: AuthType) -> Response {
    let (status, code, error) = match e {
        AuthError::Unavailable(cause) => {
            return unavailable(cause, "authentication");
        }
        // RFC 6750 §3.1: no error code when no credential was presented.
        AuthError::NoCredential => (StatusCode::UNAUTHORIZED, "authentication_required", None),
        // The challenge carries only fixed descriptions; the detail, which
        // may echo the request, goes in the JSON body, safely escaped.
        AuthError::InvalidRequest(_) => {
            let code = ErrorCode::InvalidRequest;
            (
                status_of(code),
                code.as_str(),
                Some((code, "Malformed request")),
            )
        }
        AuthError::InvalidToken(why) => {
            let code = ErrorCode::InvalidToken;
            (status_of(code), code.as_str(), Some((code, *why)))
        }
    };
    let challenge = match auth_type {
        AuthType::Bearer => Challenge {
            realm,
            error,
            scope: None,
        }
        .to_string(),
        AuthType::Basic => challenge::basic(realm),
    };
    reply(status, Some(challenge), code, &e.to_string())
}

pub fn check_error(e: CheckError, realm: &str, auth_type: AuthType) -> Response {
    match e {
        CheckError::Auth(auth) => auth_error(&auth, realm, auth_type),
        CheckError::InsufficientScope(scopes) => {
            let code = ErrorCode::InsufficientScope;
            let description = "Token lacks a required scope";
            let challenge = Challenge {
                realm,
                error: Some((code, description)),
                scope: Some(&scopes),
            };
            reply(
                status_of(code),
                Some(challenge.to_string()),
                code.as_str(),
                description,
            )
        }
        CheckError::Delegation(TokenError::InsufficientLifetime) => auth_error(
            &AuthError::InvalidToken(LIFETIME_TOO_SHORT),
            realm,
            auth_type,
        ),
        // Revoked between its check and the delegation: it is not valid.
        CheckError::Delegation(TokenError::ParentRevoked) => {
            auth_error(&AuthError::InvalidToken(NOT_VALID), realm, auth_type)
        }
        CheckError::Delegation(TokenError::Storage(cause)) => unavailable(&cause, "delegation"),
        CheckError::Delegation(other) => {
            tracing::error!(error = %other, "delegation failed");
            reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                "internal_error",
                "Cannot delegate a token",
            )
        }
    }
}

/// A failed API request, after authentication.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("not found")]
    NotFound,
    /// A write authenticated by the session cookie without the session's
    /// CSRF token.
    #[error("X-CSRF-Token is missing or does not match the session")]
    InvalidCsrf,
    #[error("this path does not take that method")]
    MethodNotAllowed,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            ApiError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::InvalidCsrf => (StatusCode::FORBIDDEN, "invalid_csrf"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            // Every variant named: a new one must be given its status.
            ApiError::Token(e) => match e {
                TokenError::PermissionDenied(_) => (StatusCode::FORBIDDEN, "permission_denied"),
                TokenError::DuplicateName { .. } => (StatusCode::CONFLICT, "duplicate_token_name"),
                TokenError::UnknownScope(_) | TokenError::ScopesNotHeld(_) => {
                    (StatusCode::BAD_REQUEST, "invalid_scope")
                }
                TokenError::Storage(cause) => {
                    return unavailable(cause, "API request");
                }
                TokenError::Random(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
                TokenError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
                TokenError::InvalidUsername(_)
                | TokenError::ServiceNeedsBotName
                | TokenError::BotNameNeedsService
                | TokenError::InvalidEmail
                | TokenError::InvalidName(_)
                | TokenError::InvalidGroup(_)
                | TokenError::NameRequired
                | TokenError::ExpiresTooSoon
                | TokenError::ExpiresTooLate
                | TokenError::WrongTokenType(_)
                | TokenError::InsufficientLifetime
                | TokenError::ParentRevoked => (StatusCode::BAD_REQUEST, "invalid_request"),
            },
        };
        reply(status, None, code, &self.to_string())
    }
}

/// 429 with `Retry-After`, for a limit a client reached.
fn too_many(code: &str, description: &str, retry_after: u64) -> Response {
    let mut response = reply(StatusCode::TOO_MANY_REQUESTS, None, code, description);
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(retry_after));
    response
}

/// 503 for a request that failed because a store did not answer, with
/// the cause logged (never sent: it may name hosts).
fn unavailable(cause: &dyn std::fmt::Display, during: &str) -> Response {
    log_unavailable(cause, during);
    reply(
        StatusCode::SERVICE_UNAVAILABLE,
        None,
        "temporarily_unavailable",
        "Token storage is unavailable",
    )
}

fn log_unavailable(cause: &dyn std::fmt::Display, during: &str) {
    tracing::warn!(error = %cause, "{during} failed: storage unavailable");
}

fn status_of(code: ErrorCode) -> StatusCode {
    StatusCode::from_u16(code.status()).unwrap_or(StatusCode::BAD_REQUEST)
}

/// The body of every JSON error (RFC 6749 §5.2's shape): a stable code
/// and a description for people.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    #[schema(example = "invalid_request")]
    pub error: &'a str,
    pub error_description: &'a str,
}

fn reply(
    status: StatusCode,
    challenge: Option<String>,
    error: &str,
    description: &str,
) -> Response {
    let body = Json(ErrorBody {
        error,
        error_description: description,
    });
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // The realm is validated at load and scopes are printable by grammar, so
    // the challenge is always a valid header value.
    if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.insert(WWW_AUTHENTICATE, value);
    }
    response
}

/// OpenID Connect endpoint errors as RFC 6749 §5.2 JSON: 401 for
/// `invalid_client` (with a Basic challenge), 400 for the other codes.
pub fn oidc_error(e: OidcError, realm: &str) -> Response {
    let (status, code) = match &e {
        OidcError::InvalidClient => (StatusCode::UNAUTHORIZED, "invalid_client"),
        OidcError::TooManyAttempts(retry_after) => {
            return too_many("invalid_client", &e.to_string(), *retry_after);
        }
        OidcError::InvalidGrant(_) => (StatusCode::BAD_REQUEST, "invalid_grant"),
        OidcError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
        OidcError::UnsupportedGrantType => (StatusCode::BAD_REQUEST, "unsupported_grant_type"),
        OidcError::UnauthorizedClient(_) => (StatusCode::BAD_REQUEST, "unauthorized_client"),
        OidcError::InvalidToken(why) => {
            // RFC 6750 §3.1, as OpenID Connect Core §5.3.3 asks of userinfo.
            let challenge = Challenge {
                realm,
                error: Some((ErrorCode::InvalidToken, why)),
                scope: None,
            };
            return reply(
                StatusCode::UNAUTHORIZED,
                Some(challenge.to_string()),
                "invalid_token",
                why,
            );
        }
        OidcError::PermissionDenied(_) => (StatusCode::FORBIDDEN, "permission_denied"),
        OidcError::DuplicateClient(_) => (StatusCode::CONFLICT, "duplicate_client"),
        OidcError::Storage(cause) | OidcError::Token(TokenError::Storage(cause)) => {
            return unavailable(cause, "OpenID Connect request");
        }
        OidcError::Token(TokenError::InsufficientLifetime | TokenError::ParentRevoked) => {
            (StatusCode::BAD_REQUEST, "invalid_grant")
        }
        OidcError::Token(_) | OidcError::Random(_) | OidcError::Signing(_) => {
            tracing::error!(error = %e, "OpenID Connect request failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "server_error")
        }
    };
    let challenge = (status == StatusCode::UNAUTHORIZED).then(|| challenge::basic(realm));
    let mut response = reply(status, challenge, code, &e.to_string());
    // RFC 6749 §5.1 asks token replies not to be cached; errors too.
    response
        .headers_mut()
        .insert("pragma", HeaderValue::from_static("no-cache"));
    response
}

/// Login errors, for a person at a browser: an HTML page.
pub fn login_error(e: LoginError) -> Response {
    let (status, title) = match &e {
        LoginError::InvalidReturnUrl => (StatusCode::BAD_REQUEST, "Invalid return address"),
        LoginError::StateMismatch => (StatusCode::BAD_REQUEST, "Login expired"),
        LoginError::Refused(_) => (StatusCode::FORBIDDEN, "Login refused"),
        LoginError::NoScopes => (StatusCode::FORBIDDEN, "No access"),
        LoginError::MissingClaim(_) | LoginError::Upstream(_) | LoginError::InvalidIdToken(_) => {
            tracing::warn!(error = %e, "login failed at the identity provider");
            (StatusCode::BAD_GATEWAY, "Identity provider error")
        }
        LoginError::Token(TokenError::Storage(cause)) => {
            log_unavailable(cause, "login");
            (StatusCode::SERVICE_UNAVAILABLE, "Temporarily unavailable")
        }
        LoginError::Token(TokenError::InvalidUsername(_)) => {
            (StatusCode::FORBIDDEN, "Login refused")
        }
        LoginError::Token(_) | LoginError::Random(_) => {
            tracing::error!(error = %e, "login failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "Login failed")
        }
    };
    page::message(status, title, &e.to_string())
}

/// CLI login errors: JSON for the CLI, which prints the description.
pub fn cli_login_error(e: CliLoginError) -> Response {
    let (status, code) = match &e {
        CliLoginError::NotFound => (StatusCode::NOT_FOUND, "expired_token"),
        CliLoginError::AlreadyApproved => (StatusCode::CONFLICT, "already_approved"),
        CliLoginError::SessionEnded => (StatusCode::FORBIDDEN, "access_denied"),
        CliLoginError::TooMany(limited) => {
            return too_many("slow_down", &e.to_string(), limited.retry_after);
        }
        CliLoginError::Token(TokenError::Storage(cause)) => {
            return unavailable(cause, "CLI login");
        }
        CliLoginError::Token(_) | CliLoginError::Random(_) => {
            tracing::error!(error = %e, "CLI login failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal_error")
        }
    };
    reply(status, None, code, &e.to_string())
}

/// A request not answered within the configured time.
pub fn too_slow(limit: std::time::Duration) -> Response {
    reply(
        StatusCode::SERVICE_UNAVAILABLE,
        None,
        "temporarily_unavailable",
        &format!("The request was not answered within {} s", limit.as_secs()),
    )
}
