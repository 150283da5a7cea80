//! Token history in PostgreSQL. Its row ids are also the cursor of the
//! revocation feed, which every replica serves alike.

use async_trait::async_trait;
use sqlx::PgPool;

use crate::model::{HistoryCursor, HistoryEntry, HistoryFilter, HistoryPage};
use crate::storage::history::ChangeFeed;
use crate::storage::sql;
use crate::storage::{StorageError, TokenHistoryStore};

/// Takes the lock that serializes history writes until the transaction ends.
pub(super) async fn lock_history(db: impl sqlx::PgExecutor<'_>) -> Result<(), StorageError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(HISTORY_WRITE_LOCK)
        .execute(db)
        .await?;
    Ok(())
}

/// Records `entries` in the transaction `tx`, under the history lock, which
/// is held to its commit. Taken last in every transaction that writes
/// tokens too, after their rows' locks, so that no two lock in opposite
/// orders.
pub(super) async fn record_in(
    tx: &mut sqlx::PgConnection,
    entries: &[HistoryEntry],
) -> Result<(), StorageError> {
    if entries.is_empty() {
        return Ok(());
    }
    lock_history(&mut *tx).await?;
    for entry in entries {
        sql::postgres::insert_entry(&mut *tx, entry).await?;
    }
    Ok(())
}

/// Serializes history writes (any constant would do, if unique to them).
const HISTORY_WRITE_LOCK: i64 = 0x706f_7274_6869_7374;

pub struct PgHistoryStore {
    pool: PgPool,
}

impl PgHistoryStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl TokenHistoryStore for PgHistoryStore {
    async fn add(&self, e: &HistoryEntry) -> Result<(), StorageError> {
        let mut tx = self.pool.begin().await?;
        // A sequence hands out ids in the order inserts start, not the
        // order they commit: without this lock, a feed reader could see id
        // 8 committed, move its cursor past it, and never see id 7.
        record_in(&mut tx, std::slice::from_ref(e)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list(
        &self,
        filter: &HistoryFilter,
        cursor: Option<HistoryCursor>,
        limit: u32,
    ) -> Result<HistoryPage, StorageError> {
        sql::postgres::history_page(&self.pool, filter, cursor, limit).await
    }

    async fn changes_since(&self, after: i64, limit: u32) -> Result<ChangeFeed, StorageError> {
        // One snapshot for both statements (read committed would take one
        // each): the bounds agree with the rows.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let feed = sql::postgres::feed_rows(&mut tx, after, limit).await?;
        tx.commit().await?;
        Ok(feed)
    }

    async fn delete_older_than(&self, cutoff: u64) -> Result<u64, StorageError> {
        sql::postgres::delete_history_before(&self.pool, cutoff).await
    }
}
