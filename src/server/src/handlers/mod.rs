//! HTTP handlers: each parses its request, calls one service and shapes the
//! reply. Errors become HTTP in `error`, and nowhere else.

mod error;
mod health;
mod ingress;

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use portcullis_core::check::CHECK_PATH;

use crate::services::{CheckService, TokenService};

#[derive(Clone)]
pub struct AppState {
    pub check: Arc<CheckService>,
    pub tokens: Arc<TokenService>,
    pub realm: Arc<str>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health::health))
        .route(CHECK_PATH, get(ingress::ingress_auth))
        .with_state(state)
}
