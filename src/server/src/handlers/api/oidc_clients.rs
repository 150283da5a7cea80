//! `/oidc-clients`: registering OpenID Connect clients (scope `admin:oidc`
//! or the bootstrap token).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiJson, Caller};
use crate::handlers::error::{oidc_error, ApiError};
use crate::handlers::openid::Provider;
use crate::handlers::AppState;
use crate::model::OidcClientRecord;
use crate::services::oidc::NewClient;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientRequest {
    client_id: String,
    redirect_uris: Vec<String>,
    #[serde(default)]
    public: bool,
    name: Option<String>,
}

/// A client as the API shows it: never its secret or the secret's hash.
fn view(client: &OidcClientRecord) -> Value {
    json!({
        "client_id": client.client_id,
        "redirect_uris": client.redirect_uris,
        "public": client.public,
        "name": client.name,
        "created": client.created,
    })
}

pub async fn list(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Provider(provider): Provider,
) -> Response {
    match provider.clients().list(&actor).await {
        Ok(all) => Json(all.iter().map(view).collect::<Vec<_>>()).into_response(),
        Err(e) => oidc_error(e, &state.realm),
    }
}

pub async fn create(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Provider(provider): Provider,
    body: ApiJson<ClientRequest>,
) -> Response {
    let request = body.0;
    let new = NewClient {
        client_id: request.client_id,
        redirect_uris: request.redirect_uris,
        public: request.public,
        name: request.name,
    };
    match provider.clients().register(&actor, new).await {
        Ok((client, secret)) => {
            let mut body = view(&client);
            body["client_secret"] = json!(secret);
            (StatusCode::CREATED, Json(body)).into_response()
        }
        Err(e) => oidc_error(e, &state.realm),
    }
}

pub async fn show(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Provider(provider): Provider,
    Path(client_id): Path<String>,
) -> Response {
    match provider.clients().get(&actor, &client_id).await {
        Ok(Some(client)) => Json(view(&client)).into_response(),
        Ok(None) => ApiError::NotFound.into_response(),
        Err(e) => oidc_error(e, &state.realm),
    }
}

pub async fn delete(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Provider(provider): Provider,
    Path(client_id): Path<String>,
) -> Response {
    match provider.clients().delete(&actor, &client_id).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => ApiError::NotFound.into_response(),
        Err(e) => oidc_error(e, &state.realm),
    }
}
