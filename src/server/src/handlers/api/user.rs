//! Who the authenticating token belongs to, and what it is.

use axum::extract::State;
use axum::Json;
use portcullis_core::Group;
use serde::Serialize;

use super::{ApiError, Caller};
use crate::handlers::openapi::ApiFailures;
use crate::handlers::AppState;
use crate::model::{TokenData, TokenInfo};
use crate::services::{Actor, TokenError};

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
    security(("bearer" = [])),
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
    security(("bearer" = [])),
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
