//! Who the authenticating token belongs to, and what it is.

use axum::extract::State;
use axum::http::header::CACHE_CONTROL;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use portcullis_core::{AuthType, Group, Scope};
use serde::Serialize;

use super::{ApiError, Caller};
use crate::handlers::error::auth_error;
use crate::handlers::openapi::ApiFailures;
use crate::handlers::session::browser_session;
use crate::handlers::AppState;
use crate::model::{TokenData, TokenInfo};
use crate::services::{Actor, AuthError, TokenError};

#[derive(Serialize, utoipa::ToSchema)]
pub struct UserInfoBody {
    username: String,
    name: Option<String>,
    email: Option<String>,
    uid: Option<u32>,
    gid: Option<u32>,
    groups: Vec<Group>,
}

fn token_data(actor: Actor) -> Result<Box<TokenData>, ApiError> {
    match actor {
        Actor::Token(data) => Ok(data),
        Actor::Bootstrap | Actor::Cli => {
            Err(TokenError::PermissionDenied("the bootstrap token has no user").into())
        }
    }
}

/// Who the caller's token belongs to.
#[utoipa::path(get, path = "/user-info", tag = "tokens",
    security(("bearer" = []), ("session" = [])),
    responses((status = 200, body = UserInfoBody), ApiFailures))]
pub async fn user_info(Caller(actor): Caller) -> Result<Json<UserInfoBody>, ApiError> {
    let data = token_data(actor)?;
    Ok(Json(UserInfoBody {
        username: data.username,
        name: data.name,
        email: data.email,
        uid: data.uid,
        gid: data.gid,
        groups: data.groups,
    }))
}

/// The caller's token itself.
#[utoipa::path(get, path = "/token-info", tag = "tokens",
    security(("bearer" = []), ("session" = [])),
    responses((status = 200, body = TokenInfo), ApiFailures))]
pub async fn token_info(
    State(state): State<AppState>,
    Caller(actor): Caller,
) -> Result<Json<TokenInfo>, ApiError> {
    let data = token_data(actor)?;
    let info = state
        .tokens
        .get_token_info_unchecked(data.token.key(), None)
        .await?;
    info.map(Json).ok_or(ApiError::NotFound)
}

/// A scope a token may hold, as the UI offers it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ScopeDescription {
    name: Scope,
    description: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LoginConfig {
    /// Every scope this deployment knows, sorted.
    scopes: Vec<ScopeDescription>,
}

/// The browser session, for a page that calls the API: Gafaelfawr's
/// contract.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LoginInfo {
    /// Send it back in `X-CSRF-Token` with every write.
    csrf: String,
    username: String,
    scopes: Vec<Scope>,
    config: LoginConfig,
}

/// The session in the browser's cookie, and the CSRF token its writes
/// need. The cookie only: a bearer token has no CSRF token to get.
#[utoipa::path(get, path = "/login", operation_id = "get_login", tag = "tokens",
    security(("session" = [])),
    responses((status = 200, body = LoginInfo), ApiFailures))]
pub async fn login_info(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let (Some(cookie), Some(data)) = (
        state.session.as_deref(),
        browser_session(&state, &headers).await?,
    ) else {
        return Err(auth_error(
            &AuthError::NoCredential,
            &state.realm,
            AuthType::Bearer,
        ));
    };
    let scopes = state
        .tokens
        .known_scopes()
        .iter()
        .map(|(name, description)| ScopeDescription {
            name: name.clone(),
            description: description.clone(),
        })
        .collect();
    let body = LoginInfo {
        csrf: cookie.csrf.token_for(data.token.key()),
        username: data.username,
        scopes: data.scopes,
        config: LoginConfig { scopes },
    };
    Ok(([(CACHE_CONTROL, "no-store")], Json(body)).into_response())
}
