use std::sync::Arc;

use async_trait::async_trait;
use portcullis_core::TokenKey;
use sqlx::{Row, SqlitePool};

use crate::model::TokenData;
use crate::storage::cipher::{DataCipher, Sealed};
use crate::storage::rows::{parse_key, sealed_from};
use crate::storage::{token_data, StorageError, TokenDataStore};

pub struct SqliteTokenDataStore {
    pool: SqlitePool,
    cipher: Arc<DataCipher>,
}

impl SqliteTokenDataStore {
    pub fn new(pool: SqlitePool, cipher: Arc<DataCipher>) -> Self {
        Self { pool, cipher }
    }

    fn seal(&self, data: &TokenData) -> Result<Sealed, StorageError> {
        token_data::seal(&self.cipher, data)
    }

    fn open(&self, key: &TokenKey, sealed: &Sealed) -> Result<TokenData, StorageError> {
        token_data::open(&self.cipher, key, sealed)
    }
}

/// Stores (or replaces) one sealed record.
pub(super) async fn write_sealed(
    db: impl sqlx::SqliteExecutor<'_>,
    key: &TokenKey,
    sealed: &Sealed,
) -> Result<(), StorageError> {
    sqlx::query(
        "INSERT INTO token_data (token_key, key_id, nonce, ciphertext) VALUES (?, ?, ?, ?)
         ON CONFLICT (token_key) DO UPDATE SET
             key_id = excluded.key_id, nonce = excluded.nonce, ciphertext = excluded.ciphertext",
    )
    .bind(key.as_str())
    .bind(&sealed.key_id)
    .bind(&sealed.nonce)
    .bind(&sealed.ciphertext)
    .execute(db)
    .await?;
    Ok(())
}

/// Replaces one sealed record if it is there; one statement, so no delete
/// falls between the test and the write.
async fn rewrite_sealed(
    db: impl sqlx::SqliteExecutor<'_>,
    key: &TokenKey,
    sealed: &Sealed,
) -> Result<bool, StorageError> {
    let done = sqlx::query(
        "UPDATE token_data SET key_id = ?, nonce = ?, ciphertext = ? WHERE token_key = ?",
    )
    .bind(&sealed.key_id)
    .bind(&sealed.nonce)
    .bind(&sealed.ciphertext)
    .bind(key.as_str())
    .execute(db)
    .await?;
    Ok(done.rows_affected() > 0)
}

#[async_trait]
impl TokenDataStore for SqliteTokenDataStore {
    async fn store(&self, data: &TokenData) -> Result<(), StorageError> {
        write_sealed(&self.pool, data.token.key(), &self.seal(data)?).await
    }

    async fn update(&self, data: &TokenData) -> Result<bool, StorageError> {
        rewrite_sealed(&self.pool, data.token.key(), &self.seal(data)?).await
    }

    async fn get(&self, key: &TokenKey) -> Result<Option<TokenData>, StorageError> {
        let row =
            sqlx::query("SELECT key_id, nonce, ciphertext FROM token_data WHERE token_key = ?")
                .bind(key.as_str())
                .fetch_optional(&self.pool)
                .await?;
        match row {
            None => Ok(None),
            Some(row) => self.open(key, &sealed_from(&row)?).map(Some),
        }
    }

    async fn delete(&self, key: &TokenKey) -> Result<bool, StorageError> {
        let done = sqlx::query("DELETE FROM token_data WHERE token_key = ?")
            .bind(key.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_all(&self) -> Result<(), StorageError> {
        sqlx::query("DELETE FROM token_data")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn list(&self) -> Result<Vec<TokenKey>, StorageError> {
        let rows = sqlx::query("SELECT token_key FROM token_data ORDER BY token_key")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| parse_key(row.try_get("token_key")?))
            .collect()
    }

    async fn reseal_all(&self) -> Result<u64, StorageError> {
        let rows = sqlx::query("SELECT token_key, key_id, nonce, ciphertext FROM token_data")
            .fetch_all(&self.pool)
            .await?;
        let active = self.cipher.active_key();
        let mut resealed = 0;
        for row in rows {
            let sealed = sealed_from(&row)?;
            if sealed.key_id == active {
                continue;
            }
            let key = parse_key(row.try_get("token_key")?)?;
            let data = self.open(&key, &sealed)?;
            // A token revoked since the read stays revoked.
            if rewrite_sealed(&self.pool, &key, &self.seal(&data)?).await? {
                resealed += 1;
            }
        }
        Ok(resealed)
    }

    async fn ping(&self) -> Result<(), StorageError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
