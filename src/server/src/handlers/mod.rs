//! HTTP handlers: each parses its request, calls one service and shapes the
//! reply. Errors become HTTP in `error`, and nowhere else.

mod api;
mod changes;
mod client_ip;
pub mod csrf;
mod error;
mod health;
pub mod ingress;
mod login;
pub mod openapi;
pub mod openid;
mod page;
mod session;
mod ui;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{any, get, post};
use axum::Router;
use ipnet::IpNet;
use portcullis_core::check::{CHANGES_PATH, CHECK_PATH};

use crate::metrics::Metrics;
use crate::services::cli_login::CliLoginService;
use crate::services::login::{LoginService, CALLBACK_PATH};
use crate::services::oidc::provider::{
    AUTHORIZE_PATH, INTROSPECT_PATH, JWKS_PATH, REVOKE_PATH, TOKEN_PATH, USERINFO_PATH,
};
use crate::services::{Authenticator, CheckService, OidcProvider, TokenService};

pub use client_ip::client_ip;
pub use session::SessionCookie;

#[derive(Clone)]
pub struct AppState {
    pub check: Arc<CheckService>,
    pub tokens: Arc<TokenService>,
    pub auth: Arc<Authenticator>,
    pub realm: Arc<str>,
    pub trusted_proxies: Arc<[IpNet]>,
    pub metrics: Arc<Metrics>,
    pub session: Option<Arc<SessionCookie>>,
    pub login: Option<Arc<LoginService>>,
    pub oidc: Option<Arc<OidcProvider>>,
    pub cli_login: Arc<CliLoginService>,
    /// The public URL's origin (`scheme://host[:port]`), which a browser's
    /// `Origin` must match on form posts.
    pub public_origin: Arc<str>,
}

/// The public listener: the token API, login, the OpenID Connect provider.
/// Nothing under `/ingress/` (404): a client that reached the checks could
/// ask for delegated tokens naming any service.
pub fn public_router(state: AppState, request_timeout: Duration) -> Router {
    let routes = Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/logout", get(session::logout))
        .route("/login", get(login::login))
        .route(CALLBACK_PATH, get(login::callback))
        .route(
            "/login/cli/{login_id}",
            get(login::cli_page).post(login::cli_approve),
        )
        .route("/auth/cli/login", post(login::cli_start))
        .route("/auth/cli/login/{login_id}/poll", post(login::cli_poll))
        .route("/.well-known/openid-configuration", get(openid::discovery))
        .route(JWKS_PATH, get(openid::jwks))
        .route(AUTHORIZE_PATH, get(openid::authorize))
        .route(TOKEN_PATH, post(openid::token))
        .route(USERINFO_PATH, get(openid::userinfo).post(openid::userinfo))
        .route(INTROSPECT_PATH, post(openid::introspect))
        .route(REVOKE_PATH, post(openid::revoke))
        .route(openapi::DOCUMENT_PATH, get(openapi::document))
        .nest(api::PREFIX, api::router())
        .merge(ui::router())
        .fallback(ui::not_found)
        .method_not_allowed_fallback(ui::method_not_allowed);
    served(routes, state, request_timeout)
}

/// The ingress listener, for the proxy's network only: the checks, the
/// change feed the filter polls, and metrics.
pub fn ingress_router(state: AppState, request_timeout: Duration) -> Router {
    let routes = Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        .route(CHECK_PATH, get(ingress::ingress_auth))
        // ext_authz appends the client's path, `/` at the least; a wildcard
        // matches only what follows it.
        .route(ingress::EXT_AUTHZ_PATH, any(ingress::ext_authz))
        .route(
            &format!("{}/", ingress::EXT_AUTHZ_PATH),
            any(ingress::ext_authz),
        )
        .route(
            &format!("{}/{{*path}}", ingress::EXT_AUTHZ_PATH),
            any(ingress::ext_authz),
        )
        .route(CHANGES_PATH, get(changes::changes))
        .fallback(ui::not_found)
        .method_not_allowed_fallback(ui::method_not_allowed);
    served(routes, state, request_timeout)
}

/// What both listeners share: a bound on the time to answer, and the state.
fn served(routes: Router<AppState>, state: AppState, request_timeout: Duration) -> Router {
    routes
        .layer(middleware::from_fn_with_state(
            request_timeout,
            answer_within,
        ))
        .with_state(state)
}

/// Bounds the time to answer a request, reading its body included, so a
/// client that trickles a body (or a handler stuck on a store) holds its
/// connection for no longer.
async fn answer_within(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => error::too_slow(limit),
    }
}
