//! The embedded store: one SQLite file, no server.

mod history;
mod oidc;
mod pending_login;
mod token_data;
mod token_metadata;
mod transfer;

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::SqlitePool;

pub use history::SqliteHistoryStore;
pub use oidc::SqliteOidcStore;
pub use pending_login::SqlitePendingLoginStore;
pub use token_data::SqliteTokenDataStore;
pub use token_metadata::SqliteTokenMetadataStore;
pub use transfer::SqliteTransferStore;

use super::StorageError;

/// How much of the file SQLite reads through a memory map rather than a
/// `pread` per page: address space, not memory (pages come from the
/// system's cache, shared by every connection). A check's few lookups then
/// cost the same in a store of a million tokens as in one of a thousand,
/// where without it the deeper B-tree paid a system call per page
/// (`./build.sh bench`, companion-direct rows).
const MMAP_BYTES: u64 = 1 << 30;

/// Opens (creating if needed) the SQLite file and brings its schema up to
/// date. WAL lets the CLI write while the server reads.
pub async fn open(path: &Path) -> Result<SqlitePool, StorageError> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .pragma("mmap_size", MMAP_BYTES.to_string())
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .acquire_timeout(Duration::from_secs(5))
        // A file in this process cannot have gone away; checking it on
        // every acquire is one more hand-off to SQLite's worker thread per
        // query, which the profile of a check showed as its main cost.
        .test_before_acquire(false)
        .connect_with(options)
        .await?;
    sqlx::migrate!("migrations/sqlite").run(&pool).await?;
    Ok(pool)
}
