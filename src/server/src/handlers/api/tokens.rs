//! A user's tokens: list, create, show, change, revoke; and tokens for
//! anyone, made by an administrator.

use axum::extract::State;
use axum::http::header::LOCATION;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use portcullis_core::{Group, Scope, Token, TokenKey, TokenType};
use serde::{Deserialize, Deserializer, Serialize};

use super::{path_key, ApiError, ApiJson, ApiPath, Caller, PREFIX};
use crate::handlers::client_ip::ClientIp;
use crate::handlers::openapi::{ApiFailures, Conflict};
use crate::handlers::AppState;
use crate::model::{TokenChanges, TokenInfo};
use crate::services::{AdminTokenRequest, UserInfo};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserToken {
    token_name: String,
    #[serde(default)]
    scopes: Vec<Scope>,
    /// Seconds since the Unix epoch; `null`: never expires. Left out: the
    /// authenticating session's expiry.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>)]
    expires: Option<Option<u64>>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenPatch {
    token_name: Option<String>,
    scopes: Option<Vec<Scope>>,
    /// Absent: unchanged. `null`: never expires. A number: the new expiry.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>)]
    expires: Option<Option<u64>>,
}

/// Tells a field given as `null` from one left out.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    Option::<u64>::deserialize(d).map(Some)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAdminToken {
    username: String,
    token_type: TokenType,
    token_name: Option<String>,
    #[serde(default)]
    scopes: Vec<Scope>,
    expires: Option<u64>,
    name: Option<String>,
    email: Option<String>,
    uid: Option<u32>,
    gid: Option<u32>,
    #[serde(default)]
    groups: Vec<Group>,
}

/// A token just made: the only time its secret is shown.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    #[schema(example = "gt-DGO1OnPohl0r3C7wqhzRgQ.lCEZ0XWzWo9ZGNa6qLD9Kg")]
    token: String,
}

/// 201 with the new token, which is shown this once, and where it lives.
fn created(username: &str, token: &Token) -> Response {
    let location = format!("{PREFIX}/users/{username}/tokens/{}", token.key());
    let body = CreatedToken {
        token: token.expose(),
    };
    (StatusCode::CREATED, [(LOCATION, location)], Json(body)).into_response()
}

/// A user's tokens.
#[utoipa::path(get, path = "/users/{username}/tokens", operation_id = "list_tokens", tag = "tokens",
    params(("username" = String, Path)),
    security(("bearer" = []), ("session" = [])),
    responses((status = 200, body = [TokenInfo]), ApiFailures))]
pub async fn list(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(username): ApiPath<String>,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    Ok(Json(
        state.tokens.list_tokens(&actor, Some(&username)).await?,
    ))
}

/// Makes a user token for `username`, who must be the caller (or the
/// caller an administrator), with scopes the caller holds.
#[utoipa::path(post, path = "/users/{username}/tokens", operation_id = "create_user_token", tag = "tokens",
    params(("username" = String, Path)),
    request_body = NewUserToken,
    security(("bearer" = []), ("session" = [])),
    responses((status = 201, body = CreatedToken,
        headers(("location" = String, description = "The new token's URL"))),
        Conflict, ApiFailures))]
pub async fn create(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ClientIp(ip): ClientIp,
    ApiPath(username): ApiPath<String>,
    ApiJson(body): ApiJson<NewUserToken>,
) -> Result<Response, ApiError> {
    let token = state
        .tokens
        .create_user_token(
            &actor,
            &username,
            body.token_name,
            body.scopes,
            body.expires,
            ip,
        )
        .await?;
    Ok(created(&username, &token))
}

/// One of a user's tokens.
#[utoipa::path(get, path = "/users/{username}/tokens/{key}", operation_id = "get_token", tag = "tokens",
    params(("username" = String, Path), ("key" = TokenKey, Path)),
    security(("bearer" = []), ("session" = [])),
    responses((status = 200, body = TokenInfo), ApiFailures))]
pub async fn show(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath((username, key)): ApiPath<(String, String)>,
) -> Result<Json<TokenInfo>, ApiError> {
    let key = path_key(&key)?;
    let info = state.tokens.get_token_info(&key, &actor, &username).await?;
    info.map(Json).ok_or(ApiError::NotFound)
}

/// Revokes a token, and every token delegated from it.
#[utoipa::path(delete, path = "/users/{username}/tokens/{key}", operation_id = "revoke_token", tag = "tokens",
    params(("username" = String, Path), ("key" = TokenKey, Path)),
    security(("bearer" = []), ("session" = [])),
    responses((status = 204, description = "Revoked"), ApiFailures))]
pub async fn revoke(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ClientIp(ip): ClientIp,
    ApiPath((username, key)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let key = path_key(&key)?;
    match state
        .tokens
        .delete_token(&key, &actor, &username, ip)
        .await?
    {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::NotFound),
    }
}

/// Renames a user token, or changes its scopes or expiry.
#[utoipa::path(patch, path = "/users/{username}/tokens/{key}", operation_id = "modify_token", tag = "tokens",
    params(("username" = String, Path), ("key" = TokenKey, Path)),
    request_body = TokenPatch,
    security(("bearer" = []), ("session" = [])),
    responses((status = 200, body = TokenInfo), Conflict, ApiFailures))]
pub async fn modify(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ClientIp(ip): ClientIp,
    ApiPath((username, key)): ApiPath<(String, String)>,
    ApiJson(patch): ApiJson<TokenPatch>,
) -> Result<Json<TokenInfo>, ApiError> {
    let key = path_key(&key)?;
    let changes = TokenChanges {
        token_name: patch.token_name,
        scopes: patch.scopes,
        expires: patch.expires,
    };
    Ok(Json(
        state
            .tokens
            .modify_token(&key, &actor, &username, changes, ip)
            .await?,
    ))
}

/// Makes a token of any user and type (scope `admin:token`).
#[utoipa::path(post, path = "/tokens", operation_id = "create_token", tag = "tokens",
    request_body = NewAdminToken,
    security(("bearer" = []), ("session" = [])),
    responses((status = 201, body = CreatedToken,
        headers(("location" = String, description = "The new token's URL"))),
        Conflict, ApiFailures))]
pub async fn admin_create(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<NewAdminToken>,
) -> Result<Response, ApiError> {
    let username = body.username.clone();
    let request = AdminTokenRequest {
        user: UserInfo {
            username: body.username,
            name: body.name,
            email: body.email,
            uid: body.uid,
            gid: body.gid,
            groups: body.groups,
        },
        token_type: body.token_type,
        token_name: body.token_name,
        scopes: body.scopes,
        expires: body.expires,
    };
    let token = state
        .tokens
        .create_token_from_admin_request(request, &actor, ip)
        .await?;
    Ok(created(&username, &token))
}
