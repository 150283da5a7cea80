//! Stores, one per trait, each knowing nothing of HTTP or of the token rules.
//! Chosen once at start-up from configuration.

pub mod cipher;
pub mod sqlite;
pub mod token_data;

pub use cipher::{CipherError, DataCipher};
pub use token_data::{TokenData, TokenDataStore};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("stored token data for {key} cannot be opened: {source}")]
    Sealed { key: String, source: CipherError },
    #[error("stored token data for {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
}
