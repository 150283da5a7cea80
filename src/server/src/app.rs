//! The factory: builds stores, services and the router from configuration.

use std::sync::Arc;

use axum::Router;

use crate::config::{Config, StorageConfig};
use crate::handlers::{self, AppState};
use crate::services::{CheckService, Clock, SystemClock, TokenService};
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
    realm: Arc<str>,
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
        let check = Arc::new(CheckService::new(
            tokens.clone(),
            clock,
            config.bootstrap_token.clone(),
            config.check_cache_ttl,
        ));
        Ok(Self {
            tokens,
            check,
            realm: config.realm.as_str().into(),
        })
    }

    pub fn router(&self) -> Router {
        handlers::router(AppState {
            check: self.check.clone(),
            tokens: self.tokens.clone(),
            realm: self.realm.clone(),
        })
    }
}
