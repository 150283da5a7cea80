//! Token metadata in PostgreSQL.

use std::collections::HashSet;

use async_trait::async_trait;
use portcullis_core::{TokenKey, TokenType};
use sqlx::{PgPool, Row};

use crate::model::{TokenChanges, TokenInfo, TokenListing};
use crate::storage::rows::{info_from, parse_key, scopes_column, to_i64, TOKEN_COLUMNS as COLUMNS};
use crate::storage::sql;
use crate::storage::{ChildSlot, ReusableChild, StorageError, TokenMetadataStore};

pub struct PgTokenMetadataStore {
    pool: PgPool,
}

impl PgTokenMetadataStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn duplicate_name(info: &TokenInfo) -> StorageError {
    StorageError::DuplicateName {
        username: info.username.clone(),
        name: info.token_name.clone().unwrap_or_default(),
    }
}

async fn count(pool: &PgPool, sql: &str, now: u64) -> Result<u64, StorageError> {
    let n: i64 = sqlx::query_scalar(sql)
        .bind(to_i64(now))
        .fetch_one(pool)
        .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

#[async_trait]
impl TokenMetadataStore for PgTokenMetadataStore {
    async fn add(&self, info: &TokenInfo) -> Result<(), StorageError> {
        let mut conn = self.pool.acquire().await?;
        sql::postgres::insert_token(&mut *conn, info).await
    }

    async fn add_child_unless_reusable(
        &self,
        info: &TokenInfo,
        reuse: &ReusableChild,
    ) -> Result<ChildSlot, StorageError> {
        let mut tx = self.pool.begin().await?;
        // Callers for one parent queue on this lock, whichever replica
        // they reach: each sees the child the one before added.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(reuse.parent.as_str())
            .execute(&mut *tx)
            .await?;
        let matches_service = match reuse.token_type {
            TokenType::Internal => "AND service IS NOT DISTINCT FROM $4 AND scopes = $5",
            _ => "",
        };
        let sql = format!(
            "SELECT token_key FROM tokens WHERE parent = $1 AND token_type = $2 {matches_service}
             AND (expires IS NULL OR expires >= $3) ORDER BY created DESC, token_key LIMIT 1"
        );
        let mut query = sqlx::query(&sql)
            .bind(reuse.parent.as_str())
            .bind(reuse.token_type.as_str())
            .bind(to_i64(reuse.min_expires));
        if reuse.token_type == TokenType::Internal {
            query = query
                .bind(&reuse.service)
                .bind(scopes_column(&reuse.scopes));
        }
        let slot = match query.fetch_optional(&mut *tx).await? {
            Some(row) => ChildSlot::Existing(parse_key(row.try_get("token_key")?)?),
            None => {
                sql::postgres::insert_token(&mut *tx, info).await?;
                ChildSlot::Added
            }
        };
        tx.commit().await?;
        Ok(slot)
    }

    async fn get_info(&self, key: &TokenKey) -> Result<Option<TokenInfo>, StorageError> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM tokens WHERE token_key = $1"
        ))
        .bind(key.as_str())
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(info_from)
        .transpose()
    }

    async fn get_children(&self, key: &TokenKey) -> Result<Vec<TokenInfo>, StorageError> {
        let sql = format!(
            "WITH RECURSIVE descendants (token_key, depth) AS (
                 SELECT token_key, 1 FROM tokens WHERE parent = $1
                 UNION ALL
                 SELECT t.token_key, d.depth + 1 FROM tokens t JOIN descendants d ON t.parent = d.token_key
             )
             SELECT {COLUMNS} FROM tokens JOIN descendants USING (token_key)
             ORDER BY depth DESC, token_key"
        );
        let rows = sqlx::query(&sql)
            .bind(key.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(info_from).collect()
    }

    async fn list_tokens(&self, listing: &TokenListing) -> Result<Vec<TokenInfo>, StorageError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM tokens WHERE ($1::text IS NULL OR username = $1)
             AND ($2::text IS NULL OR token_type = $2) ORDER BY created, token_key"
        );
        let rows = sqlx::query(&sql)
            .bind(&listing.username)
            .bind(listing.token_type.map(|t| t.as_str()))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(info_from).collect()
    }

    async fn list_orphaned(&self) -> Result<Vec<TokenInfo>, StorageError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM tokens WHERE parent IS NULL
             AND token_type IN ('notebook', 'internal', 'oidc') ORDER BY token_key"
        );
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(info_from).collect()
    }

    async fn modify(
        &self,
        key: &TokenKey,
        changes: &TokenChanges,
    ) -> Result<Option<TokenInfo>, StorageError> {
        let mut tx = self.pool.begin().await?;
        let Some(row) = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM tokens WHERE token_key = $1 FOR UPDATE"
        ))
        .bind(key.as_str())
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(None);
        };
        let info = changes.applied_to(info_from(&row)?);
        let done = sqlx::query(
            "UPDATE tokens SET token_name = $1, scopes = $2, expires = $3 WHERE token_key = $4",
        )
        .bind(&info.token_name)
        .bind(scopes_column(&info.scopes))
        .bind(info.expires.map(to_i64))
        .bind(key.as_str())
        .execute(&mut *tx)
        .await;
        match done {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(duplicate_name(&info))
            }
            other => other?,
        };
        tx.commit().await?;
        Ok(Some(info))
    }

    async fn record_use(
        &self,
        key: &TokenKey,
        now: u64,
        interval: u64,
    ) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "UPDATE tokens SET last_used = $1 WHERE token_key = $2
             AND (last_used IS NULL OR last_used <= $3)",
        )
        .bind(to_i64(now))
        .bind(key.as_str())
        .bind(to_i64(now.saturating_sub(interval)))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete(&self, key: &TokenKey) -> Result<bool, StorageError> {
        let done = sqlx::query("DELETE FROM tokens WHERE token_key = $1")
            .bind(key.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_tree(&self, key: &TokenKey) -> Result<Vec<TokenInfo>, StorageError> {
        let mut tx = self.pool.begin().await?;
        // `FOR UPDATE` conflicts with the key-share lock a child's insert
        // takes on its parent through the foreign key. Locking a level
        // before reading the next means each read is complete: a child
        // being added commits first (and is read), or fails once its
        // parent is gone. Levels top-down, each in key order, so that two
        // revocations of one tree lock in the same order.
        let Some(root) = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM tokens WHERE token_key = $1 FOR UPDATE"
        ))
        .bind(key.as_str())
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(Vec::new());
        };
        let mut levels = vec![vec![info_from(&root)?]];
        let mut seen: HashSet<TokenKey> = HashSet::from([key.clone()]);
        loop {
            let parents: Vec<&str> = levels
                .last()
                .map(|level| level.iter().map(|i| i.token.as_str()).collect())
                .unwrap_or_default();
            let rows = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM tokens WHERE parent = ANY($1)
                 ORDER BY token_key FOR UPDATE"
            ))
            .bind(&parents)
            .fetch_all(&mut *tx)
            .await?;
            let mut level = Vec::new();
            for row in &rows {
                let info = info_from(row)?;
                // A cycle (corrupt data) ends the walk.
                if seen.insert(info.token.clone()) {
                    level.push(info);
                }
            }
            if level.is_empty() {
                break;
            }
            levels.push(level);
        }
        let doomed: Vec<TokenInfo> = levels.into_iter().rev().flatten().collect();
        let keys: Vec<&str> = doomed.iter().map(|i| i.token.as_str()).collect();
        sqlx::query("DELETE FROM tokens WHERE token_key = ANY($1)")
            .bind(&keys)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(doomed)
    }

    async fn list_expired(&self, now: u64) -> Result<Vec<TokenInfo>, StorageError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM tokens WHERE expires IS NOT NULL AND expires <= $1 ORDER BY expires"
        );
        let rows = sqlx::query(&sql)
            .bind(to_i64(now))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(info_from).collect()
    }

    async fn count_unique_sessions(&self, now: u64) -> Result<u64, StorageError> {
        count(
            &self.pool,
            "SELECT COUNT(DISTINCT username) FROM tokens WHERE token_type = 'session'
             AND (expires IS NULL OR expires > $1)",
            now,
        )
        .await
    }

    async fn count_user_tokens(&self, now: u64) -> Result<u64, StorageError> {
        count(
            &self.pool,
            "SELECT COUNT(*) FROM tokens WHERE token_type = 'user' AND (expires IS NULL OR expires > $1)",
            now,
        )
        .await
    }
}
