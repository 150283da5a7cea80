//! The one place where errors become HTTP replies: RFC 6750 challenges for
//! the check, and a stable JSON body `{"error", "error_description"}`.

use axum::http::header::{CACHE_CONTROL, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use portcullis_core::challenge::{Challenge, ErrorCode};
use serde_json::json;

use crate::services::CheckError;

pub fn check_error(e: CheckError, realm: &str) -> Response {
    let (code, description) = match &e {
        CheckError::NoCredential => {
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
        CheckError::Unavailable(cause) => {
            tracing::warn!(error = %cause, "check failed: storage unavailable");
            return reply(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                "temporarily_unavailable",
                "Token storage is unavailable",
            );
        }
        CheckError::InvalidRequest(_) => (ErrorCode::InvalidRequest, "Malformed request"),
        CheckError::InvalidToken(why) => (ErrorCode::InvalidToken, *why),
        CheckError::InsufficientScope(_) => {
            (ErrorCode::InsufficientScope, "Token lacks a required scope")
        }
    };
    let scope = match &e {
        CheckError::InsufficientScope(scopes) => Some(scopes.as_slice()),
        _ => None,
    };
    // The challenge carries only fixed descriptions; the detail, which may
    // echo the request, goes in the JSON body where it is safely escaped.
    let challenge = Challenge {
        realm,
        error: Some((code, description)),
        scope,
    };
    let status = StatusCode::from_u16(code.status()).unwrap_or(StatusCode::BAD_REQUEST);
    reply(
        status,
        Some(challenge.to_string()),
        code.as_str(),
        &e.to_string(),
    )
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
