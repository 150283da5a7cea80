use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
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

/// Prometheus metrics; the state gauges are counted afresh at each scrape.
pub async fn metrics(State(state): State<AppState>) -> Response {
    match state.tokens.gather_state_metrics().await {
        Ok(counts) => state.metrics.set_state(counts),
        Err(e) => tracing::warn!(error = %e, "cannot count tokens for metrics"),
    }
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(CONTENT_TYPE, content_type)], state.metrics.encode()).into_response()
}
