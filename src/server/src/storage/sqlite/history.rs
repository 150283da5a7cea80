use async_trait::async_trait;
use sqlx::SqlitePool;

use crate::model::{HistoryCursor, HistoryEntry, HistoryFilter, HistoryPage};
use crate::storage::history::ChangeFeed;
use crate::storage::sql;
use crate::storage::{StorageError, TokenHistoryStore};

pub struct SqliteHistoryStore {
    pool: SqlitePool,
}

impl SqliteHistoryStore {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl TokenHistoryStore for SqliteHistoryStore {
    async fn add(&self, e: &HistoryEntry) -> Result<(), StorageError> {
        sql::sqlite::insert_entry(&self.pool, e).await
    }

    async fn list(
        &self,
        filter: &HistoryFilter,
        cursor: Option<HistoryCursor>,
        limit: u32,
    ) -> Result<HistoryPage, StorageError> {
        sql::sqlite::history_page(&self.pool, filter, cursor, limit).await
    }

    async fn changes_since(&self, after: i64, limit: u32) -> Result<ChangeFeed, StorageError> {
        // One read transaction: in WAL mode it reads one snapshot, so the
        // bounds agree with the rows.
        let mut tx = self.pool.begin().await?;
        let feed = sql::sqlite::feed_rows(&mut tx, after, limit).await?;
        tx.commit().await?;
        Ok(feed)
    }

    async fn delete_older_than(&self, cutoff: u64) -> Result<u64, StorageError> {
        sql::sqlite::delete_history_before(&self.pool, cutoff).await
    }
}
