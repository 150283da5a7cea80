//! The factory: builds stores, services and the router from configuration.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use ipnet::IpNet;

use crate::config::{Config, StorageConfig};
use crate::handlers::{self, AppState, SessionCookie};
use crate::metrics::Metrics;
use crate::services::{Authenticator, CheckService, Clock, SystemClock, TokenError, TokenService};
use crate::storage::sqlite::{
    self, SqliteHistoryStore, SqliteTokenDataStore, SqliteTokenMetadataStore,
};
use crate::storage::{
    DataCipher, StorageError, TokenDataStore, TokenHistoryStore, TokenMetadataStore,
};
use portcullis_core::session::SessionSeal;

type Stores = (
    Arc<dyn TokenDataStore>,
    Arc<dyn TokenMetadataStore>,
    Arc<dyn TokenHistoryStore>,
);

pub struct App {
    pub metrics: Arc<Metrics>,
    pub tokens: Arc<TokenService>,
    pub check: Arc<CheckService>,
    pub auth: Arc<Authenticator>,
    realm: Arc<str>,
    trusted_proxies: Arc<[IpNet]>,
    session: Option<Arc<SessionCookie>>,
}

impl App {
    pub async fn from_config(config: &Config) -> Result<Self, StorageError> {
        Self::with_clock(config, Arc::new(SystemClock)).await
    }

    pub async fn with_clock(config: &Config, clock: Arc<dyn Clock>) -> Result<Self, StorageError> {
        let mut cipher = DataCipher::new(&config.encryption);
        if let Some(path) = config.source.clone() {
            // Keys rotated by `portcullis keys rotate` are picked up from
            // the file when data sealed with them is first met.
            cipher = cipher.reloading_from(Box::new(move || {
                Config::load(&path).ok().map(|c| c.encryption)
            }));
        }
        let cipher = Arc::new(cipher);
        let (data, metadata, history): Stores = match &config.storage {
            StorageConfig::Embedded { path } => {
                let pool = sqlite::open(path).await?;
                (
                    Arc::new(SqliteTokenDataStore::new(pool.clone(), cipher)),
                    Arc::new(SqliteTokenMetadataStore::new(pool.clone())),
                    Arc::new(SqliteHistoryStore::new(pool)),
                )
            }
        };
        let tokens = Arc::new(TokenService::new(
            data,
            metadata,
            history,
            clock.clone(),
            config.policy.clone(),
        ));
        let auth = Arc::new(Authenticator::new(
            tokens.clone(),
            config.bootstrap_token.clone(),
        ));
        let check = Arc::new(CheckService::new(
            auth.clone(),
            tokens.clone(),
            clock,
            config.check_cache_ttl,
        ));
        Ok(Self {
            metrics: Arc::new(Metrics::default()),
            tokens,
            check,
            auth,
            realm: config.realm.as_str().into(),
            trusted_proxies: config.trusted_proxies.clone().into(),
            session: config.session.as_ref().map(|s| {
                Arc::new(SessionCookie {
                    name: s.cookie_name.clone(),
                    seal: SessionSeal::new(&s.key.0),
                    domain: s.domain.clone(),
                    secure: s.secure,
                    logout_url: s.logout_url.clone(),
                })
            }),
        })
    }

    /// Expires tokens and truncates history; how many of each.
    pub async fn run_maintenance(&self) -> Result<(usize, u64), TokenError> {
        Ok((
            self.tokens.expire_tokens().await?,
            self.tokens.truncate_history().await?,
        ))
    }

    /// Runs maintenance every `interval` for as long as the runtime lives.
    pub fn spawn_maintenance(self: &Arc<Self>, interval: Duration) {
        let app = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match app.run_maintenance().await {
                    Ok((expired, dropped)) => {
                        tracing::info!(expired, history_dropped = dropped, "maintenance done")
                    }
                    Err(e) => tracing::warn!(error = %e, "maintenance failed; will retry"),
                }
            }
        });
    }

    pub fn router(&self) -> Router {
        handlers::router(AppState {
            check: self.check.clone(),
            tokens: self.tokens.clone(),
            auth: self.auth.clone(),
            realm: self.realm.clone(),
            trusted_proxies: self.trusted_proxies.clone(),
            metrics: self.metrics.clone(),
            session: self.session.clone(),
        })
    }
}
