use async_trait::async_trait;
use portcullis_core::TokenKey;
use sqlx::{Connection as _, SqlitePool};

use crate::model::{HistoryEntry, TokenChanges, TokenInfo, TokenListing};
use crate::storage::sql;
use crate::storage::{ChildSlot, Record, ReusableChild, StorageError, TokenMetadataStore};

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
    async fn add(&self, info: &TokenInfo, created: &HistoryEntry) -> Result<(), StorageError> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        sql::sqlite::insert_token(&mut *tx, info).await?;
        sql::sqlite::insert_entry(&mut *tx, created).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn add_child_unless_reusable(
        &self,
        info: &TokenInfo,
        reuse: &ReusableChild,
        created: &HistoryEntry,
    ) -> Result<ChildSlot, StorageError> {
        let mut conn = self.pool.acquire().await?;
        // IMMEDIATE takes the write lock before the read, so two callers
        // cannot both see no child and both add one.
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let slot = sql::sqlite::add_child_unless_reusable(&mut tx, info, reuse).await?;
        if slot == ChildSlot::Added {
            sql::sqlite::insert_entry(&mut *tx, created).await?;
        }
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
        record: Record<'_>,
    ) -> Result<Option<TokenInfo>, StorageError> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let modified = sql::sqlite::modify_token(&mut tx, key, changes).await?;
        if let Some(entry) = modified.as_ref().and_then(record) {
            sql::sqlite::insert_entry(&mut *tx, &entry).await?;
        }
        tx.commit().await?;
        Ok(modified)
    }

    async fn record_use(
        &self,
        key: &TokenKey,
        now: u64,
        interval: u64,
    ) -> Result<bool, StorageError> {
        sql::sqlite::record_use(&self.pool, key, now, interval).await
    }

    async fn delete(
        &self,
        key: &TokenKey,
        removed: Option<&HistoryEntry>,
    ) -> Result<bool, StorageError> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let deleted = sql::sqlite::delete_token(&mut *tx, key).await?;
        if let Some(entry) = removed.filter(|_| deleted) {
            sql::sqlite::insert_entry(&mut *tx, entry).await?;
        }
        tx.commit().await?;
        Ok(deleted)
    }

    async fn delete_tree(
        &self,
        key: &TokenKey,
        record: Record<'_>,
    ) -> Result<Vec<TokenInfo>, StorageError> {
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
            if let Some(entry) = record(info) {
                sql::sqlite::insert_entry(&mut *tx, &entry).await?;
            }
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
