//! Token data in both engines. Redis is what checks read; PostgreSQL keeps
//! the same sealed record, so that a token missing from Redis (wiped,
//! evicted, restarted without persistence) is restored on first use.
//!
//! Restoring must never bring back a revoked token. A restore reads the
//! durable row `FOR SHARE` and writes Redis while holding it; a delete
//! locks the row `FOR UPDATE`, removes the Redis copy, then the row. So a
//! restore either finishes before the delete removes the Redis copy, or
//! waits and finds no row.

use std::sync::Arc;

use async_trait::async_trait;
use portcullis_core::TokenKey;
use redis::AsyncCommands as _;
use sqlx::{PgConnection, Row};

use super::Engines;
use crate::clock::Clock;
use crate::model::TokenData;
use crate::storage::cipher::{DataCipher, Sealed, NONCE_LEN};
use crate::storage::rows::{corrupt, parse_key, sealed_from, to_i64, to_u64};
use crate::storage::{token_data, StorageError, TokenDataStore};

/// Keys checked against Redis per round trip when auditing.
const AUDIT_BATCH: usize = 500;

pub struct DistributedTokenDataStore {
    engines: Engines,
    cipher: Arc<DataCipher>,
    clock: Arc<dyn Clock>,
}

/// The Redis value: key id length, key id, nonce, ciphertext.
fn encode(sealed: &Sealed) -> Vec<u8> {
    let id = sealed.key_id.as_bytes();
    let mut out = Vec::with_capacity(1 + id.len() + sealed.nonce.len() + sealed.ciphertext.len());
    // Key ids are at most 32 bytes (checked in configuration).
    out.push(id.len() as u8);
    out.extend_from_slice(id);
    out.extend_from_slice(&sealed.nonce);
    out.extend_from_slice(&sealed.ciphertext);
    out
}

fn decode(key: &TokenKey, bytes: &[u8]) -> Result<Sealed, StorageError> {
    let bad = || corrupt(key.as_str(), "cached record is truncated".into());
    let (&len, rest) = bytes.split_first().ok_or_else(bad)?;
    let len = usize::from(len);
    if rest.len() < len + NONCE_LEN {
        return Err(bad());
    }
    let (id, rest) = rest.split_at(len);
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    Ok(Sealed {
        key_id: String::from_utf8(id.to_vec()).map_err(|_| bad())?,
        nonce: nonce.to_vec(),
        ciphertext: ciphertext.to_vec(),
    })
}

/// Puts a sealed record in Redis for the token's remaining lifetime at
/// `now`; a token already expired is removed instead.
pub(super) async fn cache(
    engines: &Engines,
    key: &TokenKey,
    sealed: &Sealed,
    expires: Option<u64>,
    now: u64,
) -> Result<(), StorageError> {
    let mut redis = engines.redis.clone();
    let name = engines.keys.token(key);
    match expires {
        None => redis.set::<_, _, ()>(&name, encode(sealed)).await?,
        Some(e) if e > now => {
            redis
                .set_ex::<_, _, ()>(&name, encode(sealed), e - now)
                .await?
        }
        Some(_) => redis.del::<_, ()>(&name).await?,
    }
    Ok(())
}

/// Stores (or replaces) the durable copy of a sealed record.
pub(super) async fn write_durable(
    db: impl sqlx::PgExecutor<'_>,
    key: &TokenKey,
    sealed: &Sealed,
    expires: Option<u64>,
) -> Result<(), StorageError> {
    sqlx::query(
        "INSERT INTO token_data (token_key, key_id, nonce, ciphertext, expires)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (token_key) DO UPDATE SET key_id = excluded.key_id,
             nonce = excluded.nonce, ciphertext = excluded.ciphertext,
             expires = excluded.expires",
    )
    .bind(key.as_str())
    .bind(&sealed.key_id)
    .bind(&sealed.nonce)
    .bind(&sealed.ciphertext)
    .bind(expires.map(to_i64))
    .execute(db)
    .await?;
    Ok(())
}

impl DistributedTokenDataStore {
    pub fn new(engines: Engines, cipher: Arc<DataCipher>, clock: Arc<dyn Clock>) -> Self {
        Self {
            engines,
            cipher,
            clock,
        }
    }

    async fn cache(
        &self,
        key: &TokenKey,
        sealed: &Sealed,
        expires: Option<u64>,
    ) -> Result<(), StorageError> {
        cache(&self.engines, key, sealed, expires, self.clock.now()).await
    }

    /// Writes both copies: the row first, and Redis while the row is still
    /// locked by the uncommitted write, so a failure in Redis leaves the
    /// old row.
    async fn write(&self, data: &TokenData, sealed: &Sealed) -> Result<(), StorageError> {
        let key = data.token.key();
        let mut tx = self.engines.pg.begin().await?;
        write_durable(&mut *tx, key, sealed, data.expires).await?;
        self.cache(key, sealed, data.expires).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The durable record of `key`, put back into Redis if the token has
    /// not expired.
    async fn restore(&self, key: &TokenKey) -> Result<Option<TokenData>, StorageError> {
        let mut tx = self.engines.pg.begin().await?;
        let row = sqlx::query(
            "SELECT key_id, nonce, ciphertext, expires FROM token_data
             WHERE token_key = $1 FOR SHARE",
        )
        .bind(key.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let sealed = sealed_from(&row)?;
        let data = token_data::open(&self.cipher, key, &sealed)?;
        let expires = to_u64(row.try_get("expires")?);
        if expires.is_none_or(|e| e > self.clock.now()) {
            self.cache(key, &sealed, expires).await?;
            tracing::info!(%key, "restored token data missing from Redis");
        }
        tx.commit().await?;
        Ok(Some(data))
    }

    async fn delete_locked(
        &self,
        conn: &mut PgConnection,
        key: &TokenKey,
    ) -> Result<bool, StorageError> {
        let durable = sqlx::query("SELECT 1 FROM token_data WHERE token_key = $1 FOR UPDATE")
            .bind(key.as_str())
            .fetch_optional(&mut *conn)
            .await?
            .is_some();
        let mut redis = self.engines.redis.clone();
        let cached: u64 = redis.del(self.engines.keys.token(key)).await?;
        sqlx::query("DELETE FROM token_data WHERE token_key = $1")
            .bind(key.as_str())
            .execute(&mut *conn)
            .await?;
        Ok(durable || cached > 0)
    }

    /// Replaces the record of `key` with what `next` makes of the current
    /// sealed one, under the durable row's lock: a delete (which takes the same
    /// lock) either comes first, and there is nothing to replace, or waits
    /// and removes the new record. False if there was no row.
    async fn replace_locked(
        &self,
        key: &TokenKey,
        next: impl FnOnce(&Sealed) -> Result<TokenData, StorageError> + Send,
    ) -> Result<bool, StorageError> {
        let mut tx = self.engines.pg.begin().await?;
        let row = sqlx::query(
            "SELECT key_id, nonce, ciphertext FROM token_data WHERE token_key = $1 FOR UPDATE",
        )
        .bind(key.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let data = next(&sealed_from(&row)?)?;
        let sealed = token_data::seal(&self.cipher, &data)?;
        write_durable(&mut *tx, key, &sealed, data.expires).await?;
        self.cache(key, &sealed, data.expires).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Every token key in Redis.
    async fn cached_keys(&self) -> Result<Vec<String>, StorageError> {
        let mut redis = self.engines.redis.clone();
        let mut names = Vec::new();
        let mut iter = redis
            .scan_match::<_, String>(self.engines.keys.all_tokens())
            .await?;
        while let Some(name) = iter.next_item().await {
            names.push(name?);
        }
        Ok(names)
    }
}

#[async_trait]
impl TokenDataStore for DistributedTokenDataStore {
    async fn store(&self, data: &TokenData) -> Result<(), StorageError> {
        let sealed = token_data::seal(&self.cipher, data)?;
        self.write(data, &sealed).await
    }

    async fn update(&self, data: &TokenData) -> Result<bool, StorageError> {
        // The current record is not opened: only its being there matters.
        self.replace_locked(data.token.key(), |_| Ok(data.clone()))
            .await
    }

    async fn get(&self, key: &TokenKey) -> Result<Option<TokenData>, StorageError> {
        let mut redis = self.engines.redis.clone();
        let cached: Option<Vec<u8>> = redis.get(self.engines.keys.token(key)).await?;
        match cached {
            Some(bytes) => token_data::open(&self.cipher, key, &decode(key, &bytes)?).map(Some),
            None => self.restore(key).await,
        }
    }

    async fn delete(&self, key: &TokenKey) -> Result<bool, StorageError> {
        let mut tx = self.engines.pg.begin().await?;
        let existed = self.delete_locked(&mut tx, key).await?;
        tx.commit().await?;
        Ok(existed)
    }

    async fn delete_all(&self) -> Result<(), StorageError> {
        let mut tx = self.engines.pg.begin().await?;
        // Locks every row first, so that no restore runs meanwhile.
        sqlx::query("DELETE FROM token_data")
            .execute(&mut *tx)
            .await?;
        let names = self.cached_keys().await?;
        let mut redis = self.engines.redis.clone();
        for chunk in names.chunks(AUDIT_BATCH) {
            redis.del::<_, ()>(chunk).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list(&self) -> Result<Vec<TokenKey>, StorageError> {
        let keys: Vec<String> =
            sqlx::query_scalar("SELECT token_key FROM token_data ORDER BY token_key")
                .fetch_all(&self.engines.pg)
                .await?;
        keys.iter().map(|k| parse_key(k)).collect()
    }

    async fn reseal_all(&self) -> Result<u64, StorageError> {
        let active = self.cipher.active_key();
        let stale: Vec<String> = sqlx::query_scalar(
            "SELECT token_key FROM token_data WHERE key_id <> $1 ORDER BY token_key",
        )
        .bind(&active)
        .fetch_all(&self.engines.pg)
        .await?;
        let mut resealed = 0;
        for key in stale {
            // Opened and sealed again: the active key seals it.
            let key = parse_key(&key)?;
            let open = |sealed: &Sealed| token_data::open(&self.cipher, &key, sealed);
            if self.replace_locked(&key, open).await? {
                resealed += 1;
            }
        }
        Ok(resealed)
    }

    async fn ping(&self) -> Result<(), StorageError> {
        sqlx::query("SELECT 1").execute(&self.engines.pg).await?;
        let mut redis = self.engines.redis.clone();
        redis::cmd("PING").query_async::<()>(&mut redis).await?;
        Ok(())
    }

    async fn ready(&self) -> Result<(), StorageError> {
        self.ping().await?;
        // Another version's `portcullis migrate` may have run since this
        // one started; or none has, behind `migrate_on_start = false`.
        super::require_schema(&self.engines.pg).await
    }

    async fn peek(&self, key: &TokenKey) -> Result<Option<TokenData>, StorageError> {
        let mut redis = self.engines.redis.clone();
        let cached: Option<Vec<u8>> = redis.get(self.engines.keys.token(key)).await?;
        if let Some(bytes) = cached {
            return token_data::open(&self.cipher, key, &decode(key, &bytes)?).map(Some);
        }
        let row =
            sqlx::query("SELECT key_id, nonce, ciphertext FROM token_data WHERE token_key = $1")
                .bind(key.as_str())
                .fetch_optional(&self.engines.pg)
                .await?;
        row.map(|row| token_data::open(&self.cipher, key, &sealed_from(&row)?))
            .transpose()
    }

    async fn list_unrestored(&self, now: u64) -> Result<Vec<TokenKey>, StorageError> {
        let live: Vec<String> = sqlx::query_scalar(
            "SELECT token_key FROM token_data WHERE expires IS NULL OR expires > $1
             ORDER BY token_key",
        )
        .bind(to_i64(now))
        .fetch_all(&self.engines.pg)
        .await?;
        let mut redis = self.engines.redis.clone();
        let mut missing = Vec::new();
        for chunk in live.chunks(AUDIT_BATCH) {
            let mut pipe = redis::pipe();
            for key in chunk {
                pipe.exists(self.engines.keys.token(&parse_key(key)?));
            }
            let present: Vec<bool> = pipe.query_async(&mut redis).await?;
            for (key, present) in chunk.iter().zip(present) {
                if !present {
                    missing.push(parse_key(key)?);
                }
            }
        }
        Ok(missing)
    }
}
