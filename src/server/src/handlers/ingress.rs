//! `GET /ingress/auth`: Gafaelfawr's ingress contract, for the Portcullis
//! filter; and the same check in the form Envoy's `ext_authz` calls.

use axum::extract::{RawQuery, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use portcullis_core::check::CHECK_PATH;
use portcullis_core::{CheckAnswer, CheckRequest, Scope};

use std::net::IpAddr;
use std::time::Instant;

use super::client_ip::ClientIp;
use super::openapi::CheckFailures;
use super::session::{take_session, TakenSession};
use super::{error, AppState};
use crate::metrics::Outcome;
use crate::services::authenticate::Credential;
use crate::services::{AuthError, CheckError};

/// The header that tells Envoy's `ext_authz` which of the request's
/// headers to remove before the upstream: with no cookie left once the
/// session cookie is out, `Cookie` itself.
const HEADERS_TO_REMOVE: &str = "x-envoy-auth-headers-to-remove";

/// Where Envoy's `ext_authz` (HTTP service) sends its checks: it appends
/// the client's own path and query, so neither can carry what the route
/// requires.
pub const EXT_AUTHZ_PATH: &str = "/ingress/ext-authz";

/// The check's query (`scope=read:all&satisfy=any`, as `/ingress/auth`
/// takes it), set by Envoy's `authorization_request.headers_to_add`, which
/// replaces any the client sent.
pub use portcullis_core::check::EXT_AUTHZ_CHECK_HEADER;

/// The query [`CheckRequest::from_query`] reads, as the OpenAPI document
/// describes it.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Read by the document, never built.
pub struct CheckParams {
    /// A scope the route requires; repeat for several.
    scope: Option<Vec<Scope>>,
    /// Whether every `scope` (the default) or any one is required.
    #[param(pattern = "^(all|any)$")]
    satisfy: Option<String>,
    /// The challenge a refusal carries.
    #[param(pattern = "^(bearer|basic)$")]
    auth_type: Option<String>,
    /// Delegate an internal token for this service.
    delegate_to: Option<String>,
    /// Scopes of the delegated token, comma-separated or repeated.
    delegate_scope: Option<Vec<String>>,
    /// Seconds the token (and a delegated one) must still have.
    #[param(minimum = 1, maximum = 315360000)]
    minimum_lifetime: Option<u64>,
    /// Delegate a notebook token with all of the caller's scopes.
    notebook: Option<bool>,
    /// Put the delegated token in `Authorization` for the upstream.
    use_authorization: Option<bool>,
}

/// Checks the caller's token against the route's requirements in the
/// query: 200 with who the caller is (and the identity headers), or the
/// RFC 6750 refusal. On the ingress listener.
#[utoipa::path(get, path = CHECK_PATH, tag = "ingress",
    params(CheckParams),
    security(("session" = []), ("bearer" = []), ("basic" = [])),
    responses((status = 200, body = CheckAnswer, headers(
        ("x-auth-request-user" = String),
        ("x-auth-request-email" = String),
        ("x-auth-request-token-scopes" = String),
        ("x-auth-request-token" = String, description = "A delegated token, when asked for"),
    )), CheckFailures))]
pub async fn ingress_auth(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    RawQuery(query): RawQuery,
    request_headers: HeaderMap,
) -> Response {
    check(
        &state,
        ip,
        Ok(query.as_deref().unwrap_or("")),
        &request_headers,
    )
    .await
}

/// `ext_authz`'s check, with any method and path below [`EXT_AUTHZ_PATH`]:
/// the requirements come from [`EXT_AUTHZ_CHECK_HEADER`] (none: any valid
/// token), never from the client's path or query.
#[utoipa::path(method(get, post, put, patch, delete, head, options, trace),
    path = "/ingress/ext-authz/{path}", tag = "ingress",
    params(("path" = String, Path, description = "The client's path, which Envoy appends"),
        ("x-portcullis-check" = Option<String>, Header, description = "The check query, as `/ingress/auth` takes it")),
    security(("session" = []), ("bearer" = []), ("basic" = [])),
    responses((status = 200, body = CheckAnswer), CheckFailures))]
pub async fn ext_authz(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    request_headers: HeaderMap,
) -> Response {
    let query = ext_authz_query(&request_headers);
    check(&state, ip, query, &request_headers).await
}

/// The check query `ext_authz` sends in [`EXT_AUTHZ_CHECK_HEADER`] (none:
/// the empty query, any valid token).
pub fn ext_authz_query(request_headers: &HeaderMap) -> Result<&str, AuthError> {
    single_header(
        request_headers,
        EXT_AUTHZ_CHECK_HEADER,
        "X-Portcullis-Check",
    )
    .map(Option::unwrap_or_default)
}

/// Checks the request's credential against the requirements in `query`.
async fn check(
    state: &AppState,
    ip: Option<IpAddr>,
    query: Result<&str, AuthError>,
    request_headers: &HeaderMap,
) -> Response {
    let start = Instant::now();
    let request = query.and_then(|query| {
        CheckRequest::from_query(query).map_err(|e| AuthError::InvalidRequest(e.to_string()))
    });
    // Gafaelfawr's order: the session cookie first, then `Authorization`.
    let mut cookies = take_session(state, request_headers);
    let session = cookies.as_mut().and_then(|c| c.token.take());
    let cookie_key = session
        .as_ref()
        .filter(|_| decisions_logged())
        .map(|t| t.key().to_string());
    let (request, result) = match request {
        Ok(request) => {
            let credential = match session {
                Some(token) => Ok(Credential::Cookie(token)),
                None => authorization(request_headers).map(Credential::Header),
            };
            let result = match credential {
                Ok(credential) => state.check.check(credential, &request, ip).await,
                Err(e) => Err(e.into()),
            };
            (request, result)
        }
        Err(e) => (CheckRequest::default(), Err(e.into())),
    };
    let (outcome, elapsed) = (Outcome::of(&result), start.elapsed());
    state.metrics.record_check(outcome, elapsed);
    log_decision(
        &request,
        request_headers,
        cookie_key,
        &result,
        outcome,
        elapsed,
    );
    match result {
        Ok(answer) => {
            let mut response = granted(answer, request.use_authorization);
            if let Some(cookies) = cookies {
                pass_other_cookies(&mut response, cookies);
            }
            response
        }
        Err(e) => error::check_error(e, &state.realm, request.auth_type),
    }
}

/// The request's `Cookie` without the session cookie, for the proxy to
/// send upstream in place of the one that came (nginx's `auth_request_set`
/// from `$upstream_http_cookie`; `ext_authz` with `cookie` among its
/// allowed upstream headers); with no cookie left, `ext_authz` is told to
/// remove the header. The session cookie is a credential: no upstream
/// sees it.
fn pass_other_cookies(response: &mut Response, cookies: TakenSession) {
    let out = response.headers_mut();
    match cookies.rest.map(|rest| HeaderValue::from_bytes(&rest)) {
        Some(Ok(rest)) => {
            out.insert(axum::http::header::COOKIE, rest);
        }
        // Bytes no header can hold came in a header: cannot happen, but if
        // it did, the cookies are dropped rather than passed whole.
        Some(Err(_)) | None => {
            out.insert(HEADERS_TO_REMOVE, HeaderValue::from_static("cookie"));
        }
    }
}

/// One line per decision, for an operator reading why a request was let in
/// or refused: the user, the token's public key, what the route required,
/// the outcome (and the refusal's reason), the time taken. Never a secret:
/// the key is the public half, and refusals say what any client is told.
/// `PORTCULLIS_LOG=info,portcullis::check=warn` turns them off.
fn log_decision(
    request: &CheckRequest,
    request_headers: &HeaderMap,
    cookie_key: Option<String>,
    result: &Result<CheckAnswer, CheckError>,
    outcome: Outcome,
    elapsed: std::time::Duration,
) {
    // The key is read from the header again (the check keeps it to
    // itself): only when the line will be written.
    if !decisions_logged() {
        return;
    }
    let key = cookie_key.or_else(|| {
        authorization(request_headers)
            .ok()
            .flatten()
            .and_then(|header| portcullis_core::authorization::presented_token(header).ok())
            .and_then(|text| text.parse::<portcullis_core::Token>().ok())
            .map(|token| token.key().to_string())
    });
    let required: Vec<String> = request.scopes.iter().map(ToString::to_string).collect();
    let latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    match result {
        Ok(answer) => tracing::info!(
            target: "portcullis::check",
            outcome = outcome.label(),
            user = %answer.username,
            token = key.as_deref().unwrap_or("-"),
            required = %required.join(" "),
            latency_us,
            "check"
        ),
        Err(e) => tracing::info!(
            target: "portcullis::check",
            outcome = outcome.label(),
            reason = %e,
            token = key.as_deref().unwrap_or("-"),
            required = %required.join(" "),
            latency_us,
            "check"
        ),
    }
}

fn decisions_logged() -> bool {
    tracing::enabled!(target: "portcullis::check", tracing::Level::INFO)
}

/// The one `Authorization` value, if any. Two of them are ambiguous, and
/// bytes outside visible ASCII cannot hold a token: both are malformed.
pub fn authorization(request_headers: &HeaderMap) -> Result<Option<&str>, AuthError> {
    single_header(request_headers, AUTHORIZATION.as_str(), "Authorization")
}

/// The one value of the header `name` (called `title` in errors), if any;
/// two values, or one outside visible ASCII, are a malformed request.
fn single_header<'a>(
    request_headers: &'a HeaderMap,
    name: &str,
    title: &str,
) -> Result<Option<&'a str>, AuthError> {
    let mut values = request_headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::InvalidRequest(format!(
            "more than one {title} header"
        )));
    }
    value
        .to_str()
        .map(Some)
        .map_err(|_| AuthError::InvalidRequest(format!("{title} header is not visible ASCII")))
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
