//! The one place where errors become HTTP replies: RFC 6750 challenges for
//! authentication, and the stable JSON body `{"error", "error_description"}`
//! for everything.

use axum::http::header::{CACHE_CONTROL, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use portcullis_core::challenge::{Challenge, ErrorCode};
use serde_json::json;

use crate::services::{AuthError, CheckError, TokenError};

/// A failed authentication, for the ingress and the API alike.
pub fn auth_error(e: &AuthError, realm: &str) -> Response {
    let (code, description) = match e {
        AuthError::NoCredential => {
            let challenge = Challenge {
                realm,
                error: None,
                scope: None,
            };
            return reply(
                StatusCode::UNAUTHORIZED,
                Some(challenge.to_string()),
                "authentication_required",
                &e.to_string(),
            );
        }
        AuthError::Unavailable(cause) => {
            tracing::warn!(error = %cause, "authentication failed: storage unavailable");
            return unavailable();
        }
        // The challenge carries only fixed descriptions; the detail, which
        // may echo the request, goes in the JSON body, safely escaped.
        AuthError::InvalidRequest(_) => (ErrorCode::InvalidRequest, "Malformed request"),
        AuthError::InvalidToken(why) => (ErrorCode::InvalidToken, *why),
    };
    let challenge = Challenge {
        realm,
        error: Some((code, description)),
        scope: None,
    };
    reply(
        status_of(code),
        Some(challenge.to_string()),
        code.as_str(),
        &e.to_string(),
    )
}

pub fn check_error(e: CheckError, realm: &str) -> Response {
    match e {
        CheckError::Auth(auth) => auth_error(&auth, realm),
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
    }
}

/// A failed API request, after authentication.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("token not found")]
    NotFound,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            ApiError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            ApiError::NotFound | ApiError::Token(TokenError::NotFound) => {
                (StatusCode::NOT_FOUND, "not_found")
            }
            ApiError::Token(e) => match e {
                TokenError::PermissionDenied(_) => (StatusCode::FORBIDDEN, "permission_denied"),
                TokenError::DuplicateName { .. } => (StatusCode::CONFLICT, "duplicate_token_name"),
                TokenError::UnknownScope(_) | TokenError::ScopesNotHeld(_) => {
                    (StatusCode::BAD_REQUEST, "invalid_scope")
                }
                TokenError::Storage(cause) => {
                    tracing::warn!(error = %cause, "API request failed: storage unavailable");
                    return unavailable();
                }
                TokenError::Random => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
                _ => (StatusCode::BAD_REQUEST, "invalid_request"),
            },
        };
        reply(status, None, code, &self.to_string())
    }
}

fn unavailable() -> Response {
    reply(
        StatusCode::SERVICE_UNAVAILABLE,
        None,
        "temporarily_unavailable",
        "Token storage is unavailable",
    )
}

fn status_of(code: ErrorCode) -> StatusCode {
    StatusCode::from_u16(code.status()).unwrap_or(StatusCode::BAD_REQUEST)
}

fn reply(
    status: StatusCode,
    challenge: Option<String>,
    error: &str,
    description: &str,
) -> Response {
    let body = Json(json!({ "error": error, "error_description": description }));
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
