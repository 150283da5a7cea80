//! `/oidc-clients`: registering OpenID Connect clients (scope `admin:oidc`
//! or the bootstrap token).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::{ApiJson, ApiPath, Caller};
use crate::handlers::error::{oidc_error, ApiError};
use crate::handlers::openapi::{Conflict, OidcApiFailures};
use crate::handlers::openid::Provider;
use crate::handlers::AppState;
use crate::model::OidcClientRecord;
use crate::services::oidc::NewClient;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientRequest {
    client_id: String,
    redirect_uris: Vec<String>,
    #[serde(default)]
    public: bool,
    name: Option<String>,
}

/// A client as the API shows it: never the secret's hash, and the secret
/// itself only in the answer to its registration (`null` for a public
/// client), since it is not stored.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ClientView<'a> {
    client_id: &'a str,
    redirect_uris: &'a [String],
    public: bool,
    name: Option<&'a str>,
    created: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    client_secret: Option<Option<&'a str>>,
}

fn view(client: &OidcClientRecord) -> ClientView<'_> {
    ClientView {
        client_id: &client.client_id,
        redirect_uris: &client.redirect_uris,
        public: client.public,
        name: client.name.as_deref(),
        created: client.created,
        client_secret: None,
    }
}

/// Every registered client.
#[utoipa::path(get, path = "/oidc-clients", operation_id = "list_oidc_clients", tag = "oidc-clients",
    security(("bearer" = []), ("session" = [])),
    responses((status = 200, body = [ClientView]), OidcApiFailures))]
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

/// Registers a client; a confidential one's secret is in this answer only.
#[utoipa::path(post, path = "/oidc-clients", operation_id = "register_oidc_client", tag = "oidc-clients",
    request_body = ClientRequest,
    security(("bearer" = []), ("session" = [])),
    responses((status = 201, body = ClientView), Conflict, OidcApiFailures))]
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
            let body = ClientView {
                client_secret: Some(secret.as_deref()),
                ..view(&client)
            };
            (StatusCode::CREATED, Json(body)).into_response()
        }
        Err(e) => oidc_error(e, &state.realm),
    }
}

/// One registered client.
#[utoipa::path(get, path = "/oidc-clients/{client_id}", operation_id = "get_oidc_client", tag = "oidc-clients",
    params(("client_id" = String, Path)),
    security(("bearer" = []), ("session" = [])),
    responses((status = 200, body = ClientView), OidcApiFailures))]
pub async fn show(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Provider(provider): Provider,
    ApiPath(client_id): ApiPath<String>,
) -> Response {
    match provider.clients().get(&actor, &client_id).await {
        Ok(Some(client)) => Json(view(&client)).into_response(),
        Ok(None) => ApiError::NotFound.into_response(),
        Err(e) => oidc_error(e, &state.realm),
    }
}

/// Removes a client.
#[utoipa::path(delete, path = "/oidc-clients/{client_id}", operation_id = "delete_oidc_client", tag = "oidc-clients",
    params(("client_id" = String, Path)),
    security(("bearer" = []), ("session" = [])),
    responses((status = 204, description = "Removed"), OidcApiFailures))]
pub async fn delete(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Provider(provider): Provider,
    ApiPath(client_id): ApiPath<String>,
) -> Response {
    match provider.clients().delete(&actor, &client_id).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => ApiError::NotFound.into_response(),
        Err(e) => oidc_error(e, &state.realm),
    }
}
