//! A user's tokens: list, create, show, change, revoke; and tokens for
//! anyone, made by an administrator.

use axum::extract::{Path, State};
use axum::http::header::LOCATION;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use portcullis_core::{Group, Scope, Token, TokenType};
use serde::{Deserialize, Deserializer};
use serde_json::json;

use super::{path_key, ApiError, ApiJson, Caller, PREFIX};
use crate::handlers::client_ip::ClientIp;
use crate::handlers::AppState;
use crate::model::{TokenChanges, TokenInfo};
use crate::services::{AdminTokenRequest, UserInfo};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUserToken {
    token_name: String,
    #[serde(default)]
    scopes: Vec<Scope>,
    /// Seconds since the Unix epoch; default: the authenticating token's.
    expires: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenPatch {
    token_name: Option<String>,
    scopes: Option<Vec<Scope>>,
    /// Absent: unchanged. `null`: never expires. A number: the new expiry.
    #[serde(default, deserialize_with = "present")]
    expires: Option<Option<u64>>,
}

/// Tells a field given as `null` from one left out.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    Option::<u64>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
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

/// 201 with the new token, which is shown this once, and where it lives.
fn created(username: &str, token: &Token) -> Response {
    let location = format!("{PREFIX}/users/{username}/tokens/{}", token.key());
    (
        StatusCode::CREATED,
        [(LOCATION, location)],
        Json(json!({ "token": token.expose() })),
    )
        .into_response()
}

pub async fn list(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(username): Path<String>,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    Ok(Json(
        state.tokens.list_tokens(&actor, Some(&username)).await?,
    ))
}

pub async fn create(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ClientIp(ip): ClientIp,
    Path(username): Path<String>,
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

pub async fn show(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path((username, key)): Path<(String, String)>,
) -> Result<Json<TokenInfo>, ApiError> {
    let key = path_key(&key)?;
    let info = state.tokens.get_token_info(&key, &actor, &username).await?;
    info.map(Json).ok_or(ApiError::NotFound)
}

pub async fn revoke(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ClientIp(ip): ClientIp,
    Path((username, key)): Path<(String, String)>,
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

pub async fn modify(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ClientIp(ip): ClientIp,
    Path((username, key)): Path<(String, String)>,
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
