//! The OpenID Connect provider's endpoints: discovery, JWKS, authorize,
//! token, userinfo, introspection and revocation.

use portcullis_core::secret::Secret;
use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, OriginalUri, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, PRAGMA};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use portcullis_core::authorization::presented_token;

use super::client_ip::ClientIp;
use super::error::{oidc_error, ApiError, ErrorBody};
use super::login::{found, login_first};
use super::openapi::{OidcFailures, Pages, Redirect};
use super::session::browser_session;
use super::{ingress, page, AppState};
use crate::services::oidc::provider::{
    Introspection, TokenResponse, AUTHORIZE_PATH, INTROSPECT_PATH, JWKS_PATH, REVOKE_PATH,
    TOKEN_PATH, USERINFO_PATH,
};
use crate::services::oidc::{AuthorizeOutcome, AuthorizeRequest, Client, OidcError, TokenRequest};
use crate::services::OidcProvider;

/// The OpenID Connect provider, for the handlers of its endpoints: a 404
/// where none is configured.
pub struct Provider(pub Arc<OidcProvider>);

impl FromRequestParts<AppState> for Provider {
    type Rejection = Response;

    async fn from_request_parts(_: &mut Parts, state: &AppState) -> Result<Self, Response> {
        state
            .oidc
            .clone()
            .map(Provider)
            .ok_or_else(|| ApiError::NotFound.into_response())
    }
}

/// OpenID Connect Discovery 1.0 metadata.
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "openid",
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
pub async fn discovery(Provider(provider): Provider) -> Response {
    Json(provider.discovery()).into_response()
}

/// The keys ID tokens are signed with (RFC 7517).
#[utoipa::path(get, path = JWKS_PATH, tag = "openid",
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
pub async fn jwks(Provider(provider): Provider) -> Response {
    Json(provider.jwks()).into_response()
}

/// `/auth/openid/login`: needs a session, else to `/login` and back.
#[utoipa::path(get, path = AUTHORIZE_PATH, tag = "openid",
    params(AuthorizeRequest),
    security((), ("session" = [])),
    responses(Redirect, Pages))]
pub async fn authorize(
    State(state): State<AppState>,
    Provider(provider): Provider,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    query: Result<Query<AuthorizeRequest>, QueryRejection>,
) -> Response {
    let Ok(Query(request)) = query else {
        return page::message(
            StatusCode::BAD_REQUEST,
            "Invalid request",
            "The authorization request is malformed (a parameter repeated or not text).",
        );
    };
    let session = match browser_session(&state, &headers).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let outcome = match provider.authorize(request, session.as_ref()).await {
        Ok(outcome) => outcome,
        Err(e) => return oidc_error(e, &state.realm),
    };
    let back = |redirect_uri: &str, pairs: &[(&str, &str)], state_param: Option<&str>| {
        let mut url = match url::Url::parse(redirect_uri) {
            Ok(url) => url,
            Err(_) => {
                return page::message(
                    StatusCode::BAD_REQUEST,
                    "Invalid request",
                    "bad redirect_uri",
                )
            }
        };
        {
            let mut query = url.query_pairs_mut();
            for (k, v) in pairs {
                query.append_pair(k, v);
            }
            if let Some(s) = state_param {
                query.append_pair("state", s);
            }
            // RFC 9207: name the issuer, against mix-up attacks.
            query.append_pair("iss", provider.issuer());
        }
        found(url.as_str())
    };
    match outcome {
        AuthorizeOutcome::ErrorPage(why) => page::message(
            StatusCode::BAD_REQUEST,
            "Invalid authorization request",
            &why,
        ),
        AuthorizeOutcome::RedirectError {
            redirect_uri,
            error,
            description,
            state: s,
        } => back(
            &redirect_uri,
            &[("error", error), ("error_description", &description)],
            s.as_deref(),
        ),
        AuthorizeOutcome::Code {
            redirect_uri,
            code,
            state: s,
        } => back(&redirect_uri, &[("code", code.expose())], s.as_deref()),
        AuthorizeOutcome::LoginRequired => {
            login_first(&state, uri.path_and_query().map_or("/", |p| p.as_str()))
        }
    }
}

/// The token endpoint's form, as [`token`] reads it.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Read by the document, never built.
pub struct TokenForm {
    #[schema(example = "authorization_code")]
    grant_type: String,
    code: String,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    /// With `client_secret_post`, or alone for a public client.
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// The form of introspection and revocation, as [`client_and_token`]
/// reads it.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Read by the document, never built.
pub struct TokenQuestion {
    token: String,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// Form fields; a repeated one is an error (RFC 6749 §3.2).
pub fn form_fields(
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<HashMap<String, String>, OidcError> {
    let form = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return Err(OidcError::InvalidRequest(
            "the body must be application/x-www-form-urlencoded".into(),
        ));
    }
    let mut fields = HashMap::new();
    for (k, v) in form_urlencoded::parse(body) {
        if fields.insert(k.to_string(), v.into_owned()).is_some() {
            return Err(OidcError::InvalidRequest(format!(
                "parameter {k} is repeated"
            )));
        }
    }
    Ok(fields)
}

/// The client's id and secret, from HTTP Basic (`client_secret_basic`) or
/// the form (`client_secret_post`); a public client sends only its id.
pub fn client_credentials(
    headers: &HeaderMap,
    fields: &mut HashMap<String, String>,
) -> Result<(String, Option<String>), OidcError> {
    let header = ingress::authorization(headers)
        .map_err(|_| OidcError::InvalidRequest("more than one Authorization header".into()))?;
    let form_id = fields.remove("client_id");
    let form_secret = fields.remove("client_secret");
    let Some(header) = header else {
        let id = form_id.ok_or(OidcError::InvalidClient)?;
        return Ok((id, form_secret));
    };
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OidcError::InvalidClient);
    }
    if form_secret.is_some() {
        return Err(OidcError::InvalidRequest(
            "use one client authentication method, not two".into(),
        ));
    }
    let decoded = STANDARD
        .decode(rest.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or(OidcError::InvalidClient)?;
    let (id, secret) = decoded.split_once(':').ok_or(OidcError::InvalidClient)?;
    // RFC 6749 §2.3.1: both parts are form-encoded inside Basic.
    let decode = |s: &str| -> String {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let (id, secret) = (decode(id), decode(secret));
    if form_id.is_some_and(|f| f != id) {
        return Err(OidcError::InvalidRequest(
            "client_id in the form differs from the Authorization header".into(),
        ));
    }
    Ok((id, Some(secret)))
}

async fn authenticated_client(
    provider: &OidcProvider,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(Client, HashMap<String, String>), OidcError> {
    let mut fields = form_fields(headers, body)?;
    let (id, secret) = client_credentials(headers, &mut fields)?;
    let client = provider
        .clients()
        .authenticate(&id, secret.as_deref())
        .await?;
    Ok((client, fields))
}

/// The authenticated client and the `token` it asks about, for
/// introspection and revocation.
async fn client_and_token(
    provider: &OidcProvider,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(Client, String), OidcError> {
    let (client, mut fields) = authenticated_client(provider, headers, body).await?;
    let token = fields
        .remove("token")
        .ok_or_else(|| OidcError::InvalidRequest("token is missing".into()))?;
    Ok((client, token))
}

fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// Redeems an authorization code (RFC 6749 §4.1.3).
#[utoipa::path(post, path = TOKEN_PATH, operation_id = "redeem_code", tag = "openid",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    security(("basic" = []), ()),
    responses((status = 200, body = TokenResponse), OidcFailures))]
pub async fn token(
    State(state): State<AppState>,
    Provider(provider): Provider,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let (client, mut fields) = authenticated_client(&provider, &headers, &body).await?;
        let request = TokenRequest {
            grant_type: fields.remove("grant_type"),
            code: fields.remove("code").map(Secret::from),
            redirect_uri: fields.remove("redirect_uri"),
            code_verifier: fields.remove("code_verifier").map(Secret::from),
        };
        provider.redeem(&client, request, ip).await
    }
    .await;
    match result {
        Ok(reply) => no_store(Json(reply).into_response()),
        Err(e) => oidc_error(e, &state.realm),
    }
}

/// The claims of the access token's user (OpenID Connect Core §5.3).
#[utoipa::path(method(get, post), path = USERINFO_PATH, tag = "openid",
    security(("bearer" = [])),
    responses((status = 200, body = Object), OidcFailures))]
pub async fn userinfo(
    State(state): State<AppState>,
    Provider(provider): Provider,
    headers: HeaderMap,
) -> Response {
    let token = ingress::authorization(&headers)
        .ok()
        .flatten()
        .and_then(|h| presented_token(h).ok());
    let Some(token) = token else {
        return oidc_error(
            OidcError::InvalidToken("no bearer access token"),
            &state.realm,
        );
    };
    match provider.userinfo(&token).await {
        Ok(claims) => no_store(Json(claims).into_response()),
        Err(e) => oidc_error(e, &state.realm),
    }
}

/// Whether a token is active, and what it is (RFC 7662).
#[utoipa::path(post, path = INTROSPECT_PATH, tag = "openid",
    request_body(content = TokenQuestion, content_type = "application/x-www-form-urlencoded"),
    security(("basic" = []), ()),
    responses((status = 200, body = Introspection), OidcFailures))]
pub async fn introspect(
    State(state): State<AppState>,
    Provider(provider): Provider,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = match client_and_token(&provider, &headers, &body).await {
        Ok((client, token)) => provider.introspect(&client, &token).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(answer) => no_store(Json(answer).into_response()),
        Err(e) => oidc_error(e, &state.realm),
    }
}

/// Revokes a token the client was given (RFC 7009).
#[utoipa::path(post, path = REVOKE_PATH, operation_id = "revoke_oidc_token", tag = "openid",
    request_body(content = TokenQuestion, content_type = "application/x-www-form-urlencoded"),
    security(("basic" = []), ()),
    responses((status = 200, description = "Revoked, or not a token of this client's"), OidcFailures))]
pub async fn revoke(
    State(state): State<AppState>,
    Provider(provider): Provider,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = match client_and_token(&provider, &headers, &body).await {
        Ok((client, token)) => provider.revoke(&client, &token, ip).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => no_store(StatusCode::OK.into_response()),
        Err(e) => oidc_error(e, &state.realm),
    }
}
