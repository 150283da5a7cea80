use async_trait::async_trait;
use portcullis_core::{TokenKey, TokenType};
use sqlx::{Acquire, Connection as _, Row, SqlitePool};

use crate::model::{TokenChanges, TokenInfo, TokenListing};
use crate::storage::rows::{info_from, parse_key, scopes_column, to_i64, TOKEN_COLUMNS as COLUMNS};
use crate::storage::sql;
use crate::storage::{ChildSlot, ReusableChild, StorageError, TokenMetadataStore};

pub struct SqliteTokenMetadataStore {
    pool: SqlitePool,
}

impl SqliteTokenMetadataStore {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl TokenMetadataStore for SqliteTokenMetadataStore {
    async fn add(&self, info: &TokenInfo) -> Result<(), StorageError> {
        let mut conn = self.pool.acquire().await?;
        sql::sqlite::insert_token(&mut *conn, info).await
    }

    async fn add_child_unless_reusable(
        &self,
        info: &TokenInfo,
        reuse: &ReusableChild,
    ) -> Result<ChildSlot, StorageError> {
        let mut conn = self.pool.acquire().await?;
        // IMMEDIATE takes the write lock before the read, so two callers
        // cannot both see no child and both add one.
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let matches_service = match reuse.token_type {
            TokenType::Internal => "AND service IS ? AND scopes = ?",
            _ => "",
        };
        let sql = format!(
            "SELECT token_key FROM tokens WHERE parent = ? AND token_type = ? {matches_service}
             AND (expires IS NULL OR expires >= ?) ORDER BY created DESC, token_key LIMIT 1"
        );
        let mut query = sqlx::query(&sql)
            .bind(reuse.parent.as_str())
            .bind(reuse.token_type.as_str());
        if reuse.token_type == TokenType::Internal {
            query = query
                .bind(&reuse.service)
                .bind(scopes_column(&reuse.scopes));
        }
        let existing = query
            .bind(to_i64(reuse.min_expires))
            .fetch_optional(&mut *tx)
            .await?;
        let slot = match existing {
            Some(row) => ChildSlot::Existing(parse_key(row.try_get("token_key")?)?),
            None => {
                sql::sqlite::insert_token(tx.acquire().await?, info).await?;
                ChildSlot::Added
            }
        };
        tx.commit().await?;
        Ok(slot)
    }

    async fn get_info(&self, key: &TokenKey) -> Result<Option<TokenInfo>, StorageError> {
        sql::sqlite::token_info(&self.pool, key).await
    }

    async fn get_children(&self, key: &TokenKey) -> Result<Vec<TokenInfo>, StorageError> {
        sql::sqlite::descendants(&self.pool, key).await
    }

    async fn list_tokens(&self, listing: &TokenListing) -> Result<Vec<TokenInfo>, StorageError> {
        sql::sqlite::tokens_listed(&self.pool, listing).await
    }

    async fn list_orphaned(&self) -> Result<Vec<TokenInfo>, StorageError> {
        sql::sqlite::orphans(&self.pool).await
    }

    async fn modify(
        &self,
        key: &TokenKey,
        changes: &TokenChanges,
    ) -> Result<Option<TokenInfo>, StorageError> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let sql = format!("SELECT {COLUMNS} FROM tokens WHERE token_key = ?");
        let Some(row) = sqlx::query(&sql)
            .bind(key.as_str())
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let info = changes.applied_to(info_from(&row)?);
        let done = sqlx::query(
            "UPDATE tokens SET token_name = ?, scopes = ?, expires = ? WHERE token_key = ?",
        )
        .bind(&info.token_name)
        .bind(scopes_column(&info.scopes))
        .bind(info.expires.map(to_i64))
        .bind(key.as_str())
        .execute(&mut *tx)
        .await;
        match done {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(StorageError::DuplicateName {
                    username: info.username,
                    name: info.token_name.unwrap_or_default(),
                })
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
        sql::sqlite::record_use(&self.pool, key, now, interval).await
    }

    async fn delete(&self, key: &TokenKey) -> Result<bool, StorageError> {
        sql::sqlite::delete_token(&self.pool, key).await
    }

    async fn delete_tree(&self, key: &TokenKey) -> Result<Vec<TokenInfo>, StorageError> {
        let mut conn = self.pool.acquire().await?;
        // The write lock, held from the first read to the commit, is the
        // lock of every token here: no child is added in between.
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let Some(root) = sql::sqlite::token_info(&mut *tx, key).await? else {
            return Ok(Vec::new());
        };
        let mut doomed = sql::sqlite::descendants(&mut *tx, key).await?;
        doomed.push(root);
        for info in &doomed {
            sql::sqlite::delete_token(&mut *tx, &info.token).await?;
        }
        tx.commit().await?;
        Ok(doomed)
    }

    async fn list_expired(&self, now: u64) -> Result<Vec<TokenInfo>, StorageError> {
        sql::sqlite::expired(&self.pool, now).await
    }

    async fn count_unique_sessions(&self, now: u64) -> Result<u64, StorageError> {
        sql::sqlite::count_at(&self.pool, sql::COUNT_UNIQUE_SESSIONS, now).await
    }

    async fn count_user_tokens(&self, now: u64) -> Result<u64, StorageError> {
        sql::sqlite::count_at(&self.pool, sql::COUNT_USER_TOKENS, now).await
    }
}
