//! The companion's Prometheus metrics, served at `GET /metrics`.

use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use portcullis_core::CheckAnswer;

use crate::services::{AuthError, CheckError, StateMetrics, TokenError};

/// How a check ended.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Outcome {
    Allowed,
    NoToken,
    InvalidToken,
    InsufficientScope,
    InvalidRequest,
    Error,
}

impl Outcome {
    /// The name in metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::NoToken => "no_token",
            Outcome::InvalidToken => "invalid_token",
            Outcome::InsufficientScope => "insufficient_scope",
            Outcome::InvalidRequest => "invalid_request",
            Outcome::Error => "error",
        }
    }
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        use std::fmt::Write as _;
        encoder.write_str(self.label())
    }
}

impl Outcome {
    pub fn of(result: &Result<CheckAnswer, CheckError>) -> Self {
        match result {
            Ok(_) => Outcome::Allowed,
            Err(CheckError::Auth(AuthError::NoCredential)) => Outcome::NoToken,
            Err(CheckError::Auth(AuthError::InvalidToken(_)))
            | Err(CheckError::Delegation(TokenError::InsufficientLifetime)) => {
                Outcome::InvalidToken
            }
            Err(CheckError::Auth(AuthError::InvalidRequest(_))) => Outcome::InvalidRequest,
            Err(CheckError::InsufficientScope(_)) => Outcome::InsufficientScope,
            Err(CheckError::Auth(AuthError::Unavailable(_)) | CheckError::Delegation(_)) => {
                Outcome::Error
            }
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: Outcome,
}

pub struct Metrics {
    registry: Registry,
    checks: Family<OutcomeLabels, Counter>,
    check_seconds: Histogram,
    active_sessions: Gauge,
    user_tokens: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("portcullis");
        let checks = Family::<OutcomeLabels, Counter>::default();
        registry.register("checks", "Ingress checks, by outcome", checks.clone());
        // 100 µs to about 3 s: an embedded check is well under a
        // millisecond, a distributed one a few.
        let check_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "check_duration_seconds",
            "Time to answer an ingress check",
            check_seconds.clone(),
        );
        let active_sessions = Gauge::default();
        registry.register(
            "active_sessions",
            "Users with an unexpired session token",
            active_sessions.clone(),
        );
        let user_tokens = Gauge::default();
        registry.register("user_tokens", "Unexpired user tokens", user_tokens.clone());
        Self {
            registry,
            checks,
            check_seconds,
            active_sessions,
            user_tokens,
        }
    }
}

impl Metrics {
    pub fn record_check(&self, outcome: Outcome, took: Duration) {
        self.checks.get_or_create(&OutcomeLabels { outcome }).inc();
        self.check_seconds.observe(took.as_secs_f64());
    }

    pub fn set_state(&self, state: StateMetrics) {
        self.active_sessions
            .set(i64::try_from(state.active_sessions).unwrap_or(i64::MAX));
        self.user_tokens
            .set(i64::try_from(state.user_tokens).unwrap_or(i64::MAX));
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
