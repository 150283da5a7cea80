//! The factory: builds stores, services and the router from configuration.

use std::sync::Arc;

use axum::Router;
use ipnet::IpNet;

use crate::config::{Config, StorageConfig};
use crate::handlers::{self, AppState};
use crate::services::{Authenticator, CheckService, Clock, SystemClock, TokenService};
use crate::storage::sqlite::{
    self, SqliteHistoryStore, SqliteTokenDataStore, SqliteTokenMetadataStore,
};
use crate::storage::{
    DataCipher, StorageError, TokenDataStore, TokenHistoryStore, TokenMetadataStore,
};

type Stores = (
    Arc<dyn TokenDataStore>,
    Arc<dyn TokenMetadataStore>,
    Arc<dyn TokenHistoryStore>,
);

pub struct App {
    pub tokens: Arc<TokenService>,
    pub check: Arc<CheckService>,
    pub auth: Arc<Authenticator>,
    realm: Arc<str>,
    trusted_proxies: Arc<[IpNet]>,
}

impl App {
    pub async fn from_config(config: &Config) -> Result<Self, StorageError> {
        Self::with_clock(config, Arc::new(SystemClock)).await
    }

    pub async fn with_clock(config: &Config, clock: Arc<dyn Clock>) -> Result<Self, StorageError> {
        let cipher = Arc::new(DataCipher::new(&config.encryption));
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
            tokens,
            check,
            auth,
            realm: config.realm.as_str().into(),
            trusted_proxies: config.trusted_proxies.clone().into(),
        })
    }

    pub fn router(&self) -> Router {
        handlers::router(AppState {
            check: self.check.clone(),
            tokens: self.tokens.clone(),
            auth: self.auth.clone(),
            realm: self.realm.clone(),
            trusted_proxies: self.trusted_proxies.clone(),
        })
    }
}
