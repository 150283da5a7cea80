//! The embedded store: one SQLite file, no server.

mod history;
mod oidc;
mod pending_login;
mod token_data;
mod token_metadata;

use std::path::Path;
use std::time::Duration;

use portcullis_core::{Scope, TokenKey};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::SqlitePool;

pub use history::SqliteHistoryStore;
pub use oidc::SqliteOidcStore;
pub use pending_login::SqlitePendingLoginStore;
pub use token_data::SqliteTokenDataStore;
pub use token_metadata::SqliteTokenMetadataStore;

use super::StorageError;

/// Opens (creating if needed) the SQLite file and brings its schema up to
/// date. WAL lets the CLI write while the server reads.
pub async fn open(path: &Path) -> Result<SqlitePool, StorageError> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await?;
    sqlx::migrate!("migrations/sqlite").run(&pool).await?;
    Ok(pool)
}

/// Scopes as stored: sorted, space-separated.
fn scopes_column(scopes: &[Scope]) -> String {
    let mut sorted: Vec<&str> = scopes.iter().map(Scope::as_str).collect();
    sorted.sort_unstable();
    sorted.join(" ")
}

fn parse_scopes(column: &str, key: &str) -> Result<Vec<Scope>, StorageError> {
    column
        .split_whitespace()
        .map(|s| s.parse().map_err(|e| corrupt(key, format!("scope: {e}"))))
        .collect()
}

fn parse_key(column: &str) -> Result<TokenKey, StorageError> {
    column
        .parse()
        .map_err(|e| corrupt(column, format!("key: {e}")))
}

fn corrupt(key: &str, reason: String) -> StorageError {
    StorageError::Corrupt {
        key: key.to_owned(),
        reason,
    }
}

/// Seconds as SQLite's INTEGER; times beyond i64 cannot come from a clock.
fn to_i64(seconds: u64) -> i64 {
    i64::try_from(seconds).unwrap_or(i64::MAX)
}

fn to_u64(column: Option<i64>) -> Option<u64> {
    column.map(|v| u64::try_from(v).unwrap_or(0))
}
