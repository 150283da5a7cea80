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
        sql::postgres::token_info(&self.pool, key).await
    }

    async fn get_children(&self, key: &TokenKey) -> Result<Vec<TokenInfo>, StorageError> {
        sql::postgres::descendants(&self.pool, key).await
    }

    async fn list_tokens(&self, listing: &TokenListing) -> Result<Vec<TokenInfo>, StorageError> {
        sql::postgres::tokens_listed(&self.pool, listing).await
    }

    async fn list_orphaned(&self) -> Result<Vec<TokenInfo>, StorageError> {
        sql::postgres::orphans(&self.pool).await
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
        sql::postgres::record_use(&self.pool, key, now, interval).await
    }

    async fn delete(&self, key: &TokenKey) -> Result<bool, StorageError> {
        sql::postgres::delete_token(&self.pool, key).await
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
        sql::postgres::expired(&self.pool, now).await
    }

    async fn count_unique_sessions(&self, now: u64) -> Result<u64, StorageError> {
        sql::postgres::count_at(&self.pool, sql::COUNT_UNIQUE_SESSIONS, now).await
    }

    async fn count_user_tokens(&self, now: u64) -> Result<u64, StorageError> {
        sql::postgres::count_at(&self.pool, sql::COUNT_USER_TOKENS, now).await
    }
}
