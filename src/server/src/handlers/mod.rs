//! HTTP handlers: each parses its request, calls one service and shapes the
//! reply. Errors become HTTP in `error`, and nowhere else.

mod api;
mod changes;
mod client_ip;
mod error;
mod health;
mod ingress;
mod session;

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use ipnet::IpNet;
use portcullis_core::check::{CHANGES_PATH, CHECK_PATH};

use crate::metrics::Metrics;
use crate::services::{Authenticator, CheckService, TokenService};

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
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health::health))
        .route("/metrics", get(health::metrics))
        .route("/logout", get(session::logout))
        .route(CHECK_PATH, get(ingress::ingress_auth))
        .route(CHANGES_PATH, get(changes::changes))
        .nest(api::PREFIX, api::router())
        .with_state(state)
}
