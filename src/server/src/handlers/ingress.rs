//! `GET /ingress/auth`: Gafaelfawr's ingress contract, usable by the
//! Portcullis filter and by Envoy's `ext_authz` alike.

use axum::extract::{RawQuery, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use portcullis_core::{CheckAnswer, CheckRequest};

use std::time::Instant;

use super::client_ip::ClientIp;
use super::{error, AppState};
use crate::metrics::Outcome;
use crate::services::AuthError;

pub async fn ingress_auth(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    RawQuery(query): RawQuery,
    request_headers: HeaderMap,
) -> Response {
    let start = Instant::now();
    let (request, result) = match CheckRequest::from_query(query.as_deref().unwrap_or("")) {
        Ok(request) => {
            let result = match authorization(&request_headers) {
                Ok(header) => state.check.check(header, &request, ip).await,
                Err(e) => Err(e.into()),
            };
            (request, result)
        }
        Err(e) => {
            let e = AuthError::InvalidRequest(e.to_string());
            (CheckRequest::default(), Err(e.into()))
        }
    };
    state
        .metrics
        .record_check(Outcome::of(&result), start.elapsed());
    match result {
        Ok(answer) => granted(answer, request.use_authorization),
        Err(e) => error::check_error(e, &state.realm, request.auth_type),
    }
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

/// 200 with the identity headers (what `ext_authz` forwards) and the answer.
fn granted(answer: CheckAnswer, use_authorization: bool) -> Response {
    let identity = answer.upstream_headers(use_authorization);
    let mut response = Json(answer).into_response();
    let out = response.headers_mut();
    out.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for (name, value) in identity {
        // What becomes a header is validated when tokens are made; a value
        // that still cannot be one is left out rather than mangled.
        if let Ok(value) = HeaderValue::from_str(&value) {
            out.insert(HeaderName::from_static(name), value);
        }
    }
    response
}
