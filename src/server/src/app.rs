//! The factory: builds stores, services and the router from configuration.

use std::sync::Arc;

use axum::Router;

use crate::config::{Config, StorageConfig};
use crate::handlers::{self, AppState};
use crate::services::{CheckService, Clock, SystemClock, TokenService};
use crate::storage::sqlite::{self, SqliteTokenDataStore};
use crate::storage::{DataCipher, StorageError, TokenDataStore};

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
        let data: Arc<dyn TokenDataStore> = match &config.storage {
            StorageConfig::Embedded { path } => {
                Arc::new(SqliteTokenDataStore::new(sqlite::open(path).await?, cipher))
            }
        };
        let tokens = Arc::new(TokenService::new(data, clock.clone()));
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
