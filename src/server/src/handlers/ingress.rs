//! `GET /ingress/auth`: Gafaelfawr's ingress contract, usable by the
//! Portcullis filter and by Envoy's `ext_authz` alike.

use axum::extract::{RawQuery, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use portcullis_core::check::headers;
use portcullis_core::{scope, CheckAnswer, CheckRequest};

use super::{error, AppState};
use crate::services::{AuthError, CheckError};

pub async fn ingress_auth(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    request_headers: HeaderMap,
) -> Response {
    match check(&state, query.as_deref().unwrap_or(""), &request_headers).await {
        Ok(answer) => granted(answer),
        Err(e) => error::check_error(e, &state.realm),
    }
}

async fn check(
    state: &AppState,
    query: &str,
    request_headers: &HeaderMap,
) -> Result<CheckAnswer, CheckError> {
    let request =
        CheckRequest::from_query(query).map_err(|e| AuthError::InvalidRequest(e.to_string()))?;
    let authorization = authorization(request_headers)?;
    state.check.check(authorization, &request).await
}

/// The one `Authorization` value, if any. Two of them are ambiguous, and
/// bytes outside visible ASCII cannot hold a token: both are malformed.
pub fn authorization(request_headers: &HeaderMap) -> Result<Option<&str>, AuthError> {
    let mut values = request_headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::InvalidRequest(
            "more than one Authorization header".into(),
        ));
    }
    value
        .to_str()
        .map(Some)
        .map_err(|_| AuthError::InvalidRequest("Authorization header is not visible ASCII".into()))
}

fn granted(answer: CheckAnswer) -> Response {
    let mut identity = vec![(headers::USER, answer.username.clone())];
    if let Some(email) = &answer.email {
        identity.push((headers::EMAIL, email.clone()));
    }
    identity.push((headers::TOKEN_SCOPES, scope::join(&answer.scopes)));
    let mut response = Json(answer).into_response();
    let out = response.headers_mut();
    out.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for (name, value) in identity {
        // Usernames and emails are validated when tokens are made; a value
        // that still cannot be a header is left out rather than mangled.
        if let Ok(value) = HeaderValue::from_str(&value) {
            out.insert(HeaderName::from_static(name), value);
        }
    }
    response
}
