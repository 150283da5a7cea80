//! Token metadata in PostgreSQL.

use std::collections::HashSet;

use async_trait::async_trait;
use portcullis_core::TokenKey;
use sqlx::PgPool;

use crate::model::{HistoryEntry, TokenChanges, TokenInfo, TokenListing};
use crate::storage::rows::{info_from, TOKEN_COLUMNS as COLUMNS};
use crate::storage::sql;
use crate::storage::{ChildSlot, Record, ReusableChild, StorageError, TokenMetadataStore};

use super::history::record_in;

pub struct PgTokenMetadataStore {
    pool: PgPool,
}

impl PgTokenMetadataStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl TokenMetadataStore for PgTokenMetadataStore {
    async fn add(&self, info: &TokenInfo, created: &HistoryEntry) -> Result<(), StorageError> {
        let mut tx = self.pool.begin().await?;
        sql::postgres::insert_token(&mut *tx, info).await?;
        record_in(&mut tx, std::slice::from_ref(created)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn add_child_unless_reusable(
        &self,
        info: &TokenInfo,
        reuse: &ReusableChild,
        created: &HistoryEntry,
    ) -> Result<ChildSlot, StorageError> {
        let mut tx = self.pool.begin().await?;
        // Callers for one parent queue on this lock, whichever replica
        // they reach: each sees the child the one before added.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(reuse.parent.as_str())
            .execute(&mut *tx)
            .await?;
        let slot = sql::postgres::add_child_unless_reusable(&mut tx, info, reuse).await?;
        if slot == ChildSlot::Added {
            record_in(&mut tx, std::slice::from_ref(created)).await?;
        }
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
        record: Record<'_>,
    ) -> Result<Option<TokenInfo>, StorageError> {
        let mut tx = self.pool.begin().await?;
        let modified = sql::postgres::modify_token(&mut tx, key, changes).await?;
        let entries: Vec<HistoryEntry> = modified.iter().filter_map(record).collect();
        record_in(&mut tx, &entries).await?;
        tx.commit().await?;
        Ok(modified)
    }

    async fn record_use(
        &self,
        key: &TokenKey,
        now: u64,
        interval: u64,
    ) -> Result<bool, StorageError> {
        sql::postgres::record_use(&self.pool, key, now, interval).await
    }

    async fn delete(
        &self,
        key: &TokenKey,
        removed: Option<&HistoryEntry>,
    ) -> Result<bool, StorageError> {
        let mut tx = self.pool.begin().await?;
        let deleted = sql::postgres::delete_token(&mut *tx, key).await?;
        if let Some(entry) = removed.filter(|_| deleted) {
            record_in(&mut tx, std::slice::from_ref(entry)).await?;
        }
        tx.commit().await?;
        Ok(deleted)
    }

    async fn delete_tree(
        &self,
        key: &TokenKey,
        record: Record<'_>,
    ) -> Result<Vec<TokenInfo>, StorageError> {
        let mut tx = self.pool.begin().await?;
        // `FOR UPDATE` conflicts with the key-share lock a child's insert
        // takes on its parent through the foreign key. Locking a level
        // before reading the next means each read is complete: a child
        // being added commits first (and is read), or fails once its
        // parent is gone. Levels top-down, each in key order, so that two
        // revocations of one tree lock in the same order.
        let Some(root) = sql::postgres::token_info_for_update(&mut *tx, key).await? else {
            return Ok(Vec::new());
        };
        let mut levels = vec![vec![root]];
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
        let entries: Vec<HistoryEntry> = doomed.iter().filter_map(record).collect();
        record_in(&mut tx, &entries).await?;
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
