//! The factory: builds stores, services and the router from configuration.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use ipnet::IpNet;

use crate::config::{Config, StorageConfig};
use crate::handlers::csrf::CsrfKey;
use crate::handlers::{self, AppState, SessionCookie};
use crate::metrics::Metrics;
use crate::services::cli_login::{CliLoginError, CliLoginService};
use crate::services::login::{LoginError, LoginService, StateSeal};
use crate::services::oidc::{OidcClients, OidcError};
use crate::services::transfer::TransferService;
use crate::services::{
    Authenticator, CheckService, Clock, OidcProvider, SystemClock, TokenError, TokenService,
};
use crate::storage::distributed::{
    self, DistributedOidcStore, DistributedTokenDataStore, DistributedTransferStore,
    PgHistoryStore, PgMaintenanceLock, PgTokenMetadataStore, RedisPendingLoginStore,
};
use crate::storage::sqlite::{
    self, SqliteHistoryStore, SqliteOidcStore, SqlitePendingLoginStore, SqliteTokenDataStore,
    SqliteTokenMetadataStore, SqliteTransferStore,
};
use crate::storage::{
    DataCipher, LocalMaintenanceLock, MaintenanceLock, OidcStore, PendingLoginStore, StorageError,
    TokenDataStore, TokenHistoryStore, TokenMetadataStore, TransferStore,
};
use portcullis_core::session::SessionSeal;

/// The stores one configuration chooses.
pub struct Stores {
    pub data: Arc<dyn TokenDataStore>,
    pub metadata: Arc<dyn TokenMetadataStore>,
    pub history: Arc<dyn TokenHistoryStore>,
    pub oidc: Arc<dyn OidcStore>,
    pub pending: Arc<dyn PendingLoginStore>,
    pub maintenance_lock: Arc<dyn MaintenanceLock>,
    pub transfer: Arc<dyn TransferStore>,
}

impl Stores {
    pub async fn open(
        storage: &StorageConfig,
        cipher: Arc<DataCipher>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StorageError> {
        Ok(match storage {
            StorageConfig::Embedded { path } => {
                let pool = sqlite::open(path).await?;
                Self {
                    data: Arc::new(SqliteTokenDataStore::new(pool.clone(), cipher.clone())),
                    transfer: Arc::new(SqliteTransferStore::new(pool.clone(), cipher)),
                    metadata: Arc::new(SqliteTokenMetadataStore::new(pool.clone())),
                    history: Arc::new(SqliteHistoryStore::new(pool.clone())),
                    oidc: Arc::new(SqliteOidcStore::new(pool.clone())),
                    pending: Arc::new(SqlitePendingLoginStore::new(pool)),
                    maintenance_lock: Arc::new(LocalMaintenanceLock::default()),
                }
            }
            StorageConfig::Distributed(config) => {
                let engines = distributed::connect(config).await?;
                if config.migrate_on_start {
                    distributed::migrate(&engines.pg).await?;
                } else {
                    distributed::require_schema(&engines.pg).await?;
                }
                let pg = engines.pg.clone();
                Self {
                    data: Arc::new(DistributedTokenDataStore::new(
                        engines.clone(),
                        cipher.clone(),
                        clock.clone(),
                    )),
                    transfer: Arc::new(DistributedTransferStore::new(
                        engines.clone(),
                        cipher,
                        clock.clone(),
                    )),
                    metadata: Arc::new(PgTokenMetadataStore::new(pg.clone())),
                    history: Arc::new(PgHistoryStore::new(pg.clone())),
                    oidc: Arc::new(DistributedOidcStore::new(engines.clone(), clock.clone())),
                    pending: Arc::new(RedisPendingLoginStore::new(engines, clock)),
                    maintenance_lock: Arc::new(PgMaintenanceLock::new(pg)),
                }
            }
        })
    }
}

/// Brings the configured store's schema up to date; how many migrations
/// were applied. The embedded store migrates itself whenever it is opened.
pub async fn migrate(config: &Config) -> Result<usize, AppError> {
    Ok(match &config.storage {
        StorageConfig::Embedded { path } => {
            sqlite::open(path).await?;
            0
        }
        StorageConfig::Distributed(config) => {
            distributed::migrate(&distributed::connect(config).await?.pg).await?
        }
    })
}

/// Why the companion could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Login(#[from] LoginError),
}

#[derive(Debug, thiserror::Error)]
pub enum MaintenanceError {
    #[error(transparent)]
    Tokens(#[from] TokenError),
    #[error(transparent)]
    Codes(#[from] OidcError),
    #[error(transparent)]
    CliLogins(#[from] CliLoginError),
}

/// What one maintenance run did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Maintenance {
    pub expired: usize,
    pub history_dropped: u64,
    pub codes_dropped: u64,
    pub pending_closed: u64,
}

pub struct App {
    pub metrics: Arc<Metrics>,
    pub tokens: Arc<TokenService>,
    pub check: Arc<CheckService>,
    pub auth: Arc<Authenticator>,
    realm: Arc<str>,
    trusted_proxies: Arc<[IpNet]>,
    session: Option<Arc<SessionCookie>>,
    pub login: Option<Arc<LoginService>>,
    pub oidc: Option<Arc<OidcProvider>>,
    pub cli_login: Arc<CliLoginService>,
    pub transfer: TransferService,
    public_origin: Arc<str>,
    maintenance_lock: Arc<dyn MaintenanceLock>,
    request_timeout: Duration,
}

impl App {
    pub async fn from_config(config: &Config) -> Result<Self, AppError> {
        Self::with_clock(config, Arc::new(SystemClock)).await
    }

    pub async fn with_clock(config: &Config, clock: Arc<dyn Clock>) -> Result<Self, AppError> {
        let mut cipher = DataCipher::new(&config.encryption);
        if let Some(path) = config.source.clone() {
            // Keys rotated by `portcullis keys rotate` are picked up from
            // the file when data sealed with them is first met.
            cipher = cipher.reloading_from(Box::new(move || {
                Config::load(&path).ok().map(|c| c.encryption)
            }));
        }
        let cipher = Arc::new(cipher);
        let stores = Stores::open(&config.storage, cipher, clock.clone()).await?;
        let oidc_store = stores.oidc;
        let tokens = Arc::new(TokenService::new(
            stores.data,
            stores.metadata,
            stores.history,
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
            clock.clone(),
            config.check_cache_ttl,
        ));
        let login = match &config.login {
            Some(login) => Some(Arc::new(LoginService::new(
                login.clone(),
                config.public_url.clone(),
                tokens.clone(),
                clock.clone(),
            )?)),
            None => None,
        };
        let oidc = config.oidc_server.as_ref().map(|provider| {
            let clients = Arc::new(OidcClients::new(
                provider.clients.clone(),
                oidc_store.clone(),
                clock.clone(),
            ));
            Arc::new(OidcProvider::new(
                config.public_url.clone(),
                provider.clone(),
                clients,
                oidc_store.clone(),
                tokens.clone(),
                clock.clone(),
            ))
        });
        let cli_login = Arc::new(CliLoginService::new(
            stores.pending,
            tokens.clone(),
            clock,
            config.public_url.clone(),
        ));
        let public_origin = url::Url::parse(&config.public_url)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default();
        Ok(Self {
            request_timeout: config.request_timeout,
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
                    lifetime: config.policy.session_lifetime,
                    state_seal: StateSeal::new(&s.key.0),
                    csrf: CsrfKey::new(&s.key.0),
                })
            }),
            login,
            oidc,
            cli_login,
            public_origin: public_origin.into(),
            maintenance_lock: stores.maintenance_lock,
            transfer: TransferService::new(stores.transfer),
        })
    }

    /// Expires tokens, truncates history, and drops expired authorization
    /// codes and CLI logins never completed; `None` when another companion
    /// is running maintenance on the same store.
    pub async fn run_maintenance(&self) -> Result<Option<Maintenance>, MaintenanceError> {
        let Some(held) = self
            .maintenance_lock
            .try_acquire()
            .await
            .map_err(TokenError::from)?
        else {
            return Ok(None);
        };
        let done = self.maintain().await;
        held.release().await;
        done.map(Some)
    }

    async fn maintain(&self) -> Result<Maintenance, MaintenanceError> {
        let codes_dropped = match &self.oidc {
            Some(oidc) => oidc.delete_expired_codes().await?,
            None => 0,
        };
        Ok(Maintenance {
            expired: self.tokens.expire_tokens().await?,
            history_dropped: self.tokens.truncate_history().await?,
            codes_dropped,
            pending_closed: self.cli_login.delete_expired().await?,
        })
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
                    Ok(None) => {
                        tracing::info!("maintenance skipped: another companion is running it")
                    }
                    Ok(Some(done)) => tracing::info!(
                        expired = done.expired,
                        history_dropped = done.history_dropped,
                        codes_dropped = done.codes_dropped,
                        pending_closed = done.pending_closed,
                        "maintenance done"
                    ),
                    Err(e) => tracing::warn!(error = %e, "maintenance failed; will retry"),
                }
            }
        });
    }

    /// The public listener's routes.
    pub fn router(&self) -> Router {
        handlers::public_router(self.state(), self.request_timeout)
    }

    /// The ingress listener's routes (the proxy's network only).
    pub fn ingress_router(&self) -> Router {
        handlers::ingress_router(self.state(), self.request_timeout)
    }

    fn state(&self) -> AppState {
        AppState {
            check: self.check.clone(),
            tokens: self.tokens.clone(),
            auth: self.auth.clone(),
            realm: self.realm.clone(),
            trusted_proxies: self.trusted_proxies.clone(),
            metrics: self.metrics.clone(),
            session: self.session.clone(),
            login: self.login.clone(),
            oidc: self.oidc.clone(),
            cli_login: self.cli_login.clone(),
            public_origin: self.public_origin.clone(),
        }
    }
}
