//! The embedded store: one SQLite file, no server.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use portcullis_core::TokenKey;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Row, SqlitePool};

use super::cipher::{DataCipher, Sealed};
use super::{StorageError, TokenData, TokenDataStore};

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

pub struct SqliteTokenDataStore {
    pool: SqlitePool,
    cipher: Arc<DataCipher>,
}

impl SqliteTokenDataStore {
    pub fn new(pool: SqlitePool, cipher: Arc<DataCipher>) -> Self {
        Self { pool, cipher }
    }
}

#[async_trait]
impl TokenDataStore for SqliteTokenDataStore {
    async fn store(&self, data: &TokenData) -> Result<(), StorageError> {
        let key = data.token.key();
        let sealed = self
            .cipher
            .seal(key.as_str().as_bytes(), &data.to_plaintext())
            .map_err(|source| StorageError::Sealed {
                key: key.to_string(),
                source,
            })?;
        sqlx::query(
            "INSERT INTO token_data (token_key, key_id, nonce, ciphertext) VALUES (?, ?, ?, ?)
             ON CONFLICT (token_key) DO UPDATE SET
                 key_id = excluded.key_id, nonce = excluded.nonce, ciphertext = excluded.ciphertext",
        )
        .bind(key.as_str())
        .bind(&sealed.key_id)
        .bind(&sealed.nonce)
        .bind(&sealed.ciphertext)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get(&self, key: &TokenKey) -> Result<Option<TokenData>, StorageError> {
        let row =
            sqlx::query("SELECT key_id, nonce, ciphertext FROM token_data WHERE token_key = ?")
                .bind(key.as_str())
                .fetch_optional(&self.pool)
                .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let sealed = Sealed {
            key_id: row.try_get("key_id")?,
            nonce: row.try_get("nonce")?,
            ciphertext: row.try_get("ciphertext")?,
        };
        let plaintext = self
            .cipher
            .open(key.as_str().as_bytes(), &sealed)
            .map_err(|source| StorageError::Sealed {
                key: key.to_string(),
                source,
            })?;
        TokenData::from_plaintext(key, &plaintext).map(Some)
    }

    async fn ping(&self) -> Result<(), StorageError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
