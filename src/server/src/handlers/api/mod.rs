//! The token REST API under `/auth/api/v1`, authenticated by bearer token
//! or by the browser's session cookie (whose writes need the session's
//! CSRF token).

pub(super) mod history;
mod oidc_clients;
mod tokens;
mod user;

use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use portcullis_core::{AuthType, Token, TokenKey};
use serde::de::DeserializeOwned;

use super::csrf::CSRF_HEADER;
use super::error::{auth_error, ApiError};
use super::session::take_session;
use super::{ingress, AppState};
use crate::services::authenticate::Credential;
use crate::services::{Actor, AuthError};

pub const PREFIX: &str = "/auth/api/v1";

/// The routes of [`router`], for the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    user::user_info,
    user::token_info,
    user::login_info,
    tokens::list,
    tokens::create,
    tokens::show,
    tokens::revoke,
    tokens::modify,
    history::of_token,
    history::of_user,
    history::of_everyone,
    tokens::admin_create,
    oidc_clients::list,
    oidc_clients::create,
    oidc_clients::show,
    oidc_clients::delete,
))]
pub struct TokenApi;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(user::login_info))
        .route("/user-info", get(user::user_info))
        .route("/token-info", get(user::token_info))
        .route(
            "/users/{username}/tokens",
            get(tokens::list).post(tokens::create),
        )
        .route(
            "/users/{username}/tokens/{key}",
            get(tokens::show)
                .delete(tokens::revoke)
                .patch(tokens::modify),
        )
        .route(
            "/users/{username}/tokens/{key}/change-history",
            get(history::of_token),
        )
        .route(
            "/users/{username}/token-change-history",
            get(history::of_user),
        )
        .route("/history/token-changes", get(history::of_everyone))
        .route("/tokens", post(tokens::admin_create))
        .route(
            "/oidc-clients",
            get(oidc_clients::list).post(oidc_clients::create),
        )
        .route(
            "/oidc-clients/{client_id}",
            get(oidc_clients::show).delete(oidc_clients::delete),
        )
}

/// The authenticated caller; a failed authentication is answered with the
/// same RFC 6750 challenge as at the ingress.
///
/// An `Authorization` header is used when sent: a client that names its
/// credential means that one. Otherwise the session cookie is, and since a
/// browser sends it with any request, another site's included, a request
/// that may change something must carry the session's CSRF token too.
pub struct Caller(pub Actor);

impl FromRequestParts<AppState> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let refused = |e: AuthError| auth_error(&e, &state.realm, AuthType::Bearer);
        let header = ingress::authorization(&parts.headers).map_err(refused)?;
        let session = match header {
            Some(_) => None,
            None => take_session(state, &parts.headers).and_then(|c| c.token),
        };
        let credential = match session {
            Some(token) => {
                if !parts.method.is_safe() && !csrf_matches(state, &parts.headers, &token) {
                    return Err(ApiError::InvalidCsrf.into_response());
                }
                Credential::Cookie(token)
            }
            None => Credential::Header(header),
        };
        state
            .auth
            .api_actor(credential)
            .await
            .map(Caller)
            .map_err(refused)
    }
}

/// Whether the request carries the CSRF token of the session `token`: one
/// `X-CSRF-Token`, matching.
fn csrf_matches(state: &AppState, headers: &HeaderMap, token: &Token) -> bool {
    let Some(session) = state.session.as_deref() else {
        return false;
    };
    let mut values = headers.get_all(CSRF_HEADER).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => session.csrf.verify(token.key(), value.as_bytes()),
        _ => false,
    }
}

/// A JSON body whose rejection uses the API's error shape.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(ApiError::InvalidRequest(rejection.body_text())),
        }
    }
}

/// Path parameters whose rejection uses the API's error shape. A segment
/// that is not UTF-8 once decoded is refused without being echoed: it may
/// be a credential pasted in the wrong place.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(_) => Err(ApiError::InvalidRequest(
                "a path segment is not UTF-8 text".into(),
            )),
        }
    }
}

/// A key from a path: one that cannot be a key names no token.
fn path_key(text: &str) -> Result<TokenKey, ApiError> {
    text.parse().map_err(|_| ApiError::NotFound)
}
