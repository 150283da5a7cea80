use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::AppState;

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Ok,
    Unavailable,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    status: HealthStatus,
}

/// Liveness: 200 whenever the process answers HTTP, whatever its stores
/// do. A probe that restarted the companion when PostgreSQL went away
/// would only add restarts to the outage.
#[utoipa::path(get, path = "/health", tag = "health",
    responses((status = 200, body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health {
        status: HealthStatus::Ok,
    })
}

/// Readiness: 200 when the companion can answer checks (its stores answer,
/// their schema is the one this build needs, the keys loaded at start-up
/// open its data), else 503: a load balancer or a Kubernetes Service
/// should send it nothing until then. The reason goes to the log, not the
/// reply.
#[utoipa::path(get, path = "/ready", tag = "health",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    match state.tokens.ready().await {
        Ok(()) => (
            StatusCode::OK,
            Json(Health {
                status: HealthStatus::Ok,
            }),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Health {
                    status: HealthStatus::Unavailable,
                }),
            )
        }
    }
}

/// Prometheus metrics; the state gauges are counted afresh at each scrape.
#[utoipa::path(get, path = "/metrics", tag = "ingress",
    responses((status = 200, body = String, content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    match state.tokens.gather_state_metrics().await {
        Ok(counts) => state.metrics.set_state(counts),
        Err(e) => tracing::warn!(error = %e, "cannot count tokens for metrics"),
    }
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(CONTENT_TYPE, content_type)], state.metrics.encode()).into_response()
}
