use async_trait::async_trait;
use portcullis_core::TokenKey;
use sqlx::{Row, SqlitePool};

use crate::model::PendingLogin;
use crate::storage::rows::{hash_from, parse_key, to_i64, to_u64};
use crate::storage::{PendingLoginStore, StorageError};

pub struct SqlitePendingLoginStore {
    pool: SqlitePool,
}

impl SqlitePendingLoginStore {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl PendingLoginStore for SqlitePendingLoginStore {
    async fn add(&self, login: &PendingLogin) -> Result<(), StorageError> {
        sqlx::query(
            "INSERT INTO pending_logins (login_id, poll_sha256, user_code, created, expires) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&login.login_id)
        .bind(login.poll_sha256.to_vec())
        .bind(&login.user_code)
        .bind(to_i64(login.created))
        .bind(to_i64(login.expires))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get(&self, login_id: &str) -> Result<Option<PendingLogin>, StorageError> {
        let row = sqlx::query("SELECT * FROM pending_logins WHERE login_id = ?")
            .bind(login_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            let hash: Vec<u8> = row.try_get("poll_sha256")?;
            let approved: Option<String> = row.try_get("approved_session")?;
            Ok(PendingLogin {
                login_id: login_id.to_owned(),
                poll_sha256: hash_from(hash, login_id)?,
                user_code: row.try_get("user_code")?,
                created: to_u64(row.try_get("created")?).unwrap_or(0),
                expires: to_u64(row.try_get("expires")?).unwrap_or(0),
                approved_session: approved.as_deref().map(parse_key).transpose()?,
            })
        })
        .transpose()
    }

    async fn approve(&self, login_id: &str, session: &TokenKey) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "UPDATE pending_logins SET approved_session = ? \
             WHERE login_id = ? AND approved_session IS NULL",
        )
        .bind(session.as_str())
        .bind(login_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn take_approved(&self, login_id: &str) -> Result<Option<TokenKey>, StorageError> {
        let session: Option<String> = sqlx::query_scalar(
            "DELETE FROM pending_logins WHERE login_id = ? AND approved_session IS NOT NULL \
             RETURNING approved_session",
        )
        .bind(login_id)
        .fetch_optional(&self.pool)
        .await?;
        session.as_deref().map(parse_key).transpose()
    }

    async fn delete_expired(&self, now: u64) -> Result<u64, StorageError> {
        let done = sqlx::query("DELETE FROM pending_logins WHERE expires <= ?")
            .bind(to_i64(now))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
