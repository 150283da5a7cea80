//! Stores, one per trait, each knowing nothing of HTTP or of the token rules.
//! Chosen once at start-up from configuration.

pub mod cipher;
pub mod distributed;
pub mod history;
pub mod maintenance_lock;
pub mod oidc;
pub mod pending_login;
mod rows;
mod sql;
pub mod sqlite;
pub mod token_data;
pub mod token_metadata;
pub mod transfer;

pub use cipher::{CipherError, DataCipher};
pub use history::TokenHistoryStore;
pub use maintenance_lock::{LocalMaintenanceLock, MaintenanceGuard, MaintenanceLock};
pub use oidc::{OidcStore, Redemption};
pub use pending_login::PendingLoginStore;
pub use token_data::TokenDataStore;
pub use token_metadata::{ChildSlot, Record, ReusableChild, TokenMetadataStore};
pub use transfer::{Dump, SealedRecord, TransferStore};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("the database schema lacks migrations {0:?}: run `portcullis migrate` (or set storage.migrate_on_start)")]
    SchemaBehind(Vec<i64>),
    #[error("redis error: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("stored token data for {key} cannot be opened: {source}")]
    Sealed { key: String, source: CipherError },
    #[error("stored data for {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("user {username} already has a token named {name:?}")]
    DuplicateName { username: String, name: String },
    #[error("the token a new child derives from has been revoked")]
    ParentGone,
    #[error("an OpenID Connect client {0:?} already exists")]
    DuplicateClient(String),
    #[error("the target store already holds {0}; import only into an empty store")]
    ImportConflict(String),
}
