use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::AppState;

/// 200 when the token store answers, else 503: a load balancer should not
/// send checks to a companion that cannot read tokens.
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match state.tokens.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ok" }))),
        Err(e) => {
            tracing::warn!(error = %e, "health check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable" })),
            )
        }
    }
}
