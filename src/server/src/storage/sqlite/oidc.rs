use async_trait::async_trait;
use portcullis_core::TokenKey;
use sqlx::{Row, SqlitePool};

use crate::model::{AuthorizationCode, OidcClientRecord, OidcGrant};
use crate::storage::rows::{parse_key, to_i64, to_u64, words};
use crate::storage::sql;
use crate::storage::{OidcStore, Redemption, StorageError};

pub struct SqliteOidcStore {
    pool: SqlitePool,
}

impl SqliteOidcStore {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl OidcStore for SqliteOidcStore {
    async fn add_client(&self, client: &OidcClientRecord) -> Result<(), StorageError> {
        sql::sqlite::insert_client(&self.pool, client).await
    }

    async fn get_client(&self, client_id: &str) -> Result<Option<OidcClientRecord>, StorageError> {
        sql::sqlite::client(&self.pool, client_id).await
    }

    async fn list_clients(&self) -> Result<Vec<OidcClientRecord>, StorageError> {
        sql::sqlite::clients(&self.pool).await
    }

    async fn delete_client(&self, client_id: &str) -> Result<bool, StorageError> {
        sql::sqlite::delete_client(&self.pool, client_id).await
    }

    async fn add_code(&self, code: &AuthorizationCode) -> Result<(), StorageError> {
        sqlx::query(
            "INSERT INTO oidc_codes (code_sha256, client_id, redirect_uri, session_key, scopes, \
             nonce, code_challenge, auth_time, expires) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(code.code_sha256.to_vec())
        .bind(&code.client_id)
        .bind(&code.redirect_uri)
        .bind(code.session.as_str())
        .bind(code.scopes.join(" "))
        .bind(&code.nonce)
        .bind(&code.code_challenge)
        .bind(to_i64(code.auth_time))
        .bind(to_i64(code.expires))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn redeem_code(&self, code_sha256: &[u8; 32]) -> Result<Redemption, StorageError> {
        // One statement, so that of two concurrent redemptions one wins.
        let spent = sqlx::query(
            "UPDATE oidc_codes SET redeemed = 1 WHERE code_sha256 = ? AND redeemed = 0 RETURNING *",
        )
        .bind(code_sha256.to_vec())
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = spent {
            let session: String = row.try_get("session_key")?;
            return Ok(Redemption::First(AuthorizationCode {
                code_sha256: *code_sha256,
                client_id: row.try_get("client_id")?,
                redirect_uri: row.try_get("redirect_uri")?,
                session: parse_key(&session)?,
                scopes: words(row.try_get("scopes")?),
                nonce: row.try_get("nonce")?,
                code_challenge: row.try_get("code_challenge")?,
                auth_time: to_u64(row.try_get("auth_time")?).unwrap_or(0),
                expires: to_u64(row.try_get("expires")?).unwrap_or(0),
            }));
        }
        // Marked as replayed, so that a first redemption still under way
        // cannot record what it issues.
        let issued: Option<Option<String>> = sqlx::query_scalar(
            "UPDATE oidc_codes SET redeemed = 2 WHERE code_sha256 = ? RETURNING issued_key",
        )
        .bind(code_sha256.to_vec())
        .fetch_optional(&self.pool)
        .await?;
        Ok(match issued {
            None => Redemption::Unknown,
            Some(key) => Redemption::Replayed {
                issued: key.as_deref().map(parse_key).transpose()?,
            },
        })
    }

    async fn record_grant(
        &self,
        code_sha256: &[u8; 32],
        grant: &OidcGrant,
    ) -> Result<bool, StorageError> {
        let mut tx = self.pool.begin().await?;
        let recorded = sqlx::query(
            "UPDATE oidc_codes SET issued_key = ? WHERE code_sha256 = ? AND redeemed = 1",
        )
        .bind(grant.token.as_str())
        .bind(code_sha256.to_vec())
        .execute(&mut *tx)
        .await?;
        if recorded.rows_affected() == 0 {
            return Ok(false);
        }
        sql::sqlite::insert_grant(&mut *tx, grant).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn get_grant(&self, token: &TokenKey) -> Result<Option<OidcGrant>, StorageError> {
        sql::sqlite::grant(&self.pool, token).await
    }

    async fn delete_expired_codes(&self, now: u64) -> Result<u64, StorageError> {
        let done = sqlx::query("DELETE FROM oidc_codes WHERE expires <= ?")
            .bind(to_i64(now))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
