//! The distributed store, for many companion replicas: PostgreSQL keeps
//! what must last (metadata, links, history, clients, and a sealed copy of
//! every token's data); Redis keeps what every check reads (the sealed
//! token data, with a TTL of the token's remaining lifetime) and what lives
//! minutes (authorization codes, pending CLI logins).

mod expiring;
mod history;
mod lock;
mod oidc;
mod pending_login;
mod redis_keys;
mod token_data;
mod token_metadata;
mod transfer;

use std::collections::BTreeSet;
use std::str::FromStr as _;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

pub use history::PgHistoryStore;
pub use lock::PgMaintenanceLock;
pub use oidc::DistributedOidcStore;
pub use pending_login::RedisPendingLoginStore;
pub use redis_keys::RedisKeys;
pub use token_data::DistributedTokenDataStore;
pub use token_metadata::PgTokenMetadataStore;
pub use transfer::DistributedTransferStore;

use super::StorageError;
use crate::config::DistributedConfig;

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// Connections to both engines. Both reconnect by themselves after an
/// outage; until then, every operation fails within the configured timeout.
#[derive(Clone)]
pub struct Engines {
    pub pg: PgPool,
    pub redis: ConnectionManager,
    pub keys: RedisKeys,
}

/// Connects to PostgreSQL (which must be up: a companion does not start
/// without its schema) and to Redis (lazily: Redis may come up later).
pub async fn connect(config: &DistributedConfig) -> Result<Engines, StorageError> {
    let timeout_ms = config.timeout.as_millis().to_string();
    let options = PgConnectOptions::from_str(&config.database_url)?
        .application_name("portcullis")
        // A statement that hangs must not hold a request longer than a
        // connection would: both fail into a 503 in the same time.
        .options([("statement_timeout", timeout_ms.as_str())]);
    let pg = PgPoolOptions::new()
        .max_connections(config.pool_size)
        .acquire_timeout(config.timeout)
        .connect_with(options)
        .await?;
    let client = redis::Client::open(config.redis_url.as_str())?;
    let manager_config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(config.timeout))
        .set_response_timeout(Some(config.timeout))
        .set_number_of_retries(1)
        .set_max_delay(config.timeout);
    let redis = ConnectionManager::new_lazy_with_config(client, manager_config)?;
    Ok(Engines {
        pg,
        redis,
        keys: RedisKeys::new(&config.key_prefix),
    })
}

/// Applies every pending migration; how many there were.
pub async fn migrate(pg: &PgPool) -> Result<usize, StorageError> {
    let before = missing_migrations(pg).await?.len();
    MIGRATOR.run(pg).await?;
    Ok(before)
}

/// Fails unless every migration this build knows has been applied.
pub async fn require_schema(pg: &PgPool) -> Result<(), StorageError> {
    match missing_migrations(pg).await? {
        missing if missing.is_empty() => Ok(()),
        missing => Err(StorageError::SchemaBehind(missing)),
    }
}

async fn missing_migrations(pg: &PgPool) -> Result<Vec<i64>, StorageError> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pg)
        .await?;
    let applied: BTreeSet<i64> = match exists {
        false => BTreeSet::new(),
        true => sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pg)
            .await?
            .into_iter()
            .collect(),
    };
    Ok(MIGRATOR
        .iter()
        .map(|m| m.version)
        .filter(|v| !applied.contains(v))
        .collect())
}
