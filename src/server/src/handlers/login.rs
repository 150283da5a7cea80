//! Logging in: the browser through the upstream identity provider
//! (`/login`, its callback), and the CLI through a pending login that a
//! logged-in browser approves.

use axum::extract::rejection::QueryRejection;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::header::{CACHE_CONTROL, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::api::ApiPath;
use super::client_ip::ClientIp;
use super::error::ErrorBody;
use super::error::{cli_login_error, login_error};
use super::openapi::{CliLoginFailures, Pages, Redirect, SeeOther};
use super::page::{self, escape};
use super::session::{browser_session, from_this_site, open_cookie, LOGIN_STATE_COOKIE};
use super::{AppState, SessionCookie};
use crate::random;
use crate::services::cli_login::{PollOutcome, StartedLogin};
use crate::services::login::{LoginError, LoginService, CALLBACK_PATH, LOGIN_STATE_LIFETIME};

fn login_parts(state: &AppState) -> Option<(&LoginService, &SessionCookie)> {
    state.login.as_deref().zip(state.session.as_deref())
}

fn login_not_configured() -> Response {
    page::message(
        StatusCode::NOT_FOUND,
        "Login is not configured",
        "This companion has no identity provider to log in with.",
    )
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LoginQuery {
    /// Where to return after logging in: on this site or an allowed one.
    rd: Option<String>,
}

/// `GET /login?rd=…`: to the identity provider, with the login's state in
/// a sealed cookie.
#[utoipa::path(
    get,
    path = "/login",
    tag = "login",
    params(LoginQuery),
    responses(Redirect, Pages)
)]
pub async fn login(
    State(state): State<AppState>,
    query: Result<Query<LoginQuery>, QueryRejection>,
) -> Response {
    let Some((login, session)) = login_parts(&state) else {
        return login_not_configured();
    };
    let Ok(Query(query)) = query else {
        return login_error(LoginError::InvalidReturnUrl);
    };
    let start = match login.start(query.rd.as_deref()).await {
        Ok(start) => start,
        Err(e) => return login_error(e),
    };
    let nonce = match random::bytes() {
        Ok(nonce) => nonce,
        Err(e) => return login_error(e.into()),
    };
    let sealed = session.state_seal.seal(&start.state, nonce);
    (
        StatusCode::FOUND,
        [
            (LOCATION, start.redirect),
            (
                SET_COOKIE,
                session.set_named(LOGIN_STATE_COOKIE, &sealed, LOGIN_STATE_LIFETIME),
            ),
            (CACHE_CONTROL, "no-store".to_owned()),
        ],
    )
        .into_response()
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The identity provider's return: a session cookie and back to `rd`.
#[utoipa::path(get, path = CALLBACK_PATH, tag = "login",
    params(CallbackQuery),
    responses(SeeOther, Pages))]
pub async fn callback(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    query: Result<Query<CallbackQuery>, QueryRejection>,
) -> Response {
    let Some((login, session)) = login_parts(&state) else {
        return login_not_configured();
    };
    let clear_state = session.set_named(LOGIN_STATE_COOKIE, "", 0);
    let with_cleared_state = |mut response: Response| {
        if let Ok(value) = clear_state.parse() {
            response.headers_mut().append(SET_COOKIE, value);
        }
        response
    };
    let Ok(Query(query)) = query else {
        return with_cleared_state(login_error(LoginError::StateMismatch));
    };
    if let Some(error) = query.error {
        let description = query.error_description.unwrap_or_default();
        return with_cleared_state(login_error(LoginError::Refused(format!(
            "{error} {description}"
        ))));
    }
    let saved = open_cookie(&headers, LOGIN_STATE_COOKIE, |v| session.state_seal.open(v));
    let finished = login
        .finish(saved, query.state.as_deref(), query.code.as_deref(), ip)
        .await;
    let (token, return_to) = match finished {
        Ok(done) => done,
        Err(e) => return with_cleared_state(login_error(e)),
    };
    let nonce = match random::bytes() {
        Ok(nonce) => nonce,
        Err(e) => return with_cleared_state(login_error(e.into())),
    };
    let value = session.seal.seal(&token, nonce);
    with_cleared_state(
        (
            StatusCode::SEE_OTHER,
            [
                (LOCATION, return_to),
                (SET_COOKIE, session.set_cookie(&value, session.lifetime)),
                (CACHE_CONTROL, "no-store".to_owned()),
            ],
        )
            .into_response(),
    )
}

/// `POST /auth/cli/login`: a new pending login for the CLI.
#[utoipa::path(post, path = "/auth/cli/login", tag = "login",
    responses((status = 201, body = StartedLogin), CliLoginFailures))]
pub async fn cli_start(State(state): State<AppState>, ClientIp(ip): ClientIp) -> Response {
    match state.cli_login.start(ip).await {
        Ok(started) => (
            StatusCode::CREATED,
            [(CACHE_CONTROL, "no-store")],
            Json(started),
        )
            .into_response(),
        Err(e) => cli_login_error(e),
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PollStatus {
    Pending,
    Issued,
}

/// A poll's answer: the token once the login is approved, shown once.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PollReply {
    status: PollStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct PollBody {
    poll_secret: String,
}

/// `POST /auth/cli/login/{id}/poll`: 202 while pending, then the token once.
#[utoipa::path(post, path = "/auth/cli/login/{login_id}/poll", tag = "login",
    params(("login_id" = String, Path)),
    request_body = PollBody,
    responses((status = 200, body = PollReply), (status = 202, body = PollReply),
        (status = 400, body = ErrorBody), CliLoginFailures))]
pub async fn cli_poll(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiPath(login_id): ApiPath<String>,
    body: super::api::ApiJson<PollBody>,
) -> Response {
    match state
        .cli_login
        .poll(&login_id, &body.0.poll_secret, ip)
        .await
    {
        Ok(PollOutcome::Pending) => (
            StatusCode::ACCEPTED,
            [(CACHE_CONTROL, "no-store")],
            Json(PollReply {
                status: PollStatus::Pending,
                token: None,
            }),
        )
            .into_response(),
        Ok(PollOutcome::Issued(token)) => (
            StatusCode::OK,
            [(CACHE_CONTROL, "no-store")],
            Json(PollReply {
                status: PollStatus::Issued,
                token: Some(token.expose()),
            }),
        )
            .into_response(),
        Err(e) => cli_login_error(e),
    }
}

/// Sends a browser without a session to log in and come back, or says it
/// cannot.
pub(super) fn login_first(state: &AppState, here: &str) -> Response {
    if state.login.is_none() {
        return page::message(
            StatusCode::UNAUTHORIZED,
            "Not logged in",
            "Log in first: this companion has no identity provider configured.",
        );
    }
    let rd: String = form_urlencoded::byte_serialize(here.as_bytes()).collect();
    found(&format!("/login?rd={rd}"))
}

/// A 302 to `location`, never cached.
pub(super) fn found(location: &str) -> Response {
    (
        StatusCode::FOUND,
        [
            (LOCATION, location.to_owned()),
            (CACHE_CONTROL, "no-store".to_owned()),
        ],
    )
        .into_response()
}

/// `GET /login/cli/{id}`: the approval page.
#[utoipa::path(get, path = "/login/cli/{login_id}", tag = "login",
    params(("login_id" = String, Path)),
    security((), ("session" = [])),
    responses(Redirect, Pages))]
pub async fn cli_page(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    Path(login_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let session = match browser_session(&state, &headers).await {
        Ok(Some(session)) => session,
        Ok(None) => return login_first(&state, uri.path()),
        Err(r) => return r,
    };
    let pending = match state.cli_login.waiting(&login_id).await {
        Ok(pending) => pending,
        Err(e) => return page::message(StatusCode::NOT_FOUND, "Cannot approve", &e.to_string()),
    };
    let body = format!(
        "<p>A command-line login is asking to act as <strong>{user}</strong>.</p>\
         <p>Approve it only if you started it and your terminal shows the code \
         <strong>{code}</strong>.</p>\
         <form method=\"post\"><button type=\"submit\">Approve</button></form>",
        user = escape(&session.username),
        code = escape(&pending.user_code),
    );
    page::page(StatusCode::OK, "Approve command-line login", &body)
}

/// `POST /login/cli/{id}`: the approval. Cross-site posts are refused
/// (SameSite=Lax keeps the cookie off them, and the Origin is checked).
#[utoipa::path(post, path = "/login/cli/{login_id}", tag = "login",
    params(("login_id" = String, Path)),
    security((), ("session" = [])),
    responses(Redirect, Pages))]
pub async fn cli_approve(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    Path(login_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !from_this_site(&state, &headers) {
        return page::message(
            StatusCode::FORBIDDEN,
            "Cannot approve",
            "The approval did not come from this site.",
        );
    }
    let session = match browser_session(&state, &headers).await {
        Ok(Some(session)) => session,
        Ok(None) => return login_first(&state, uri.path()),
        Err(r) => return r,
    };
    match state.cli_login.approve(&login_id, &session).await {
        Ok(()) => page::message(
            StatusCode::OK,
            "Command-line login approved",
            "You can close this window and return to your terminal.",
        ),
        Err(e) => page::message(StatusCode::NOT_FOUND, "Cannot approve", &e.to_string()),
    }
}
