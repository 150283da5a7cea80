//! Token history in PostgreSQL. Its row ids are also the cursor of the
//! revocation feed, which every replica serves alike.

use async_trait::async_trait;
use sqlx::PgPool;

use crate::model::{HistoryCursor, HistoryEntry, HistoryFilter, HistoryPage};
use crate::storage::history::ChangeFeed;
use crate::storage::rows::{entry_from, to_i64, HISTORY_COLUMNS};
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

/// Serializes history writes (any constant would do, if unique to them).
const HISTORY_WRITE_LOCK: i64 = 0x706f_7274_6869_7374;

/// Every filter is `($n IS NULL OR …)`, so one statement serves all
/// combinations and every value is bound, never spliced.
const WHERE: &str = "($1::bigint IS NULL OR event_time >= $1) AND ($2::bigint IS NULL OR event_time <= $2)
     AND ($3::text IS NULL OR username = $3) AND ($4::text IS NULL OR actor = $4)
     AND ($5::text IS NULL OR token_key = $5 OR parent = $5) AND ($6::text IS NULL OR token_key = $6)
     AND ($7::text IS NULL OR token_type = $7)
     AND ($8::bytea IS NULL OR ip_bytes BETWEEN $8 AND $9::bytea)";

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
        lock_history(&mut *tx).await?;
        sql::postgres::insert_entry(&mut *tx, e).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list(
        &self,
        filter: &HistoryFilter,
        cursor: Option<HistoryCursor>,
        limit: u32,
    ) -> Result<HistoryPage, StorageError> {
        let backwards = cursor.is_some_and(|c| c.previous);
        let (position, order) = match backwards {
            false => ("(event_time, id) < ($10, $11)", "DESC"),
            true => ("(event_time, id) > ($10, $11)", "ASC"),
        };
        let query = format!(
            "SELECT id, {HISTORY_COLUMNS} FROM token_history WHERE {WHERE}
             AND ($10::bigint IS NULL OR {position})
             ORDER BY event_time {order}, id {order} LIMIT $12"
        );
        let rows = sql::bind_history_query!(sqlx::query(&query), filter, cursor, limit)
            .fetch_all(&self.pool)
            .await?;
        let found = rows.iter().map(entry_from).collect::<Result<Vec<_>, _>>()?;
        Ok(HistoryPage::from_rows(found, cursor, limit))
    }

    async fn changes_since(&self, after: i64, limit: u32) -> Result<ChangeFeed, StorageError> {
        // One snapshot for both statements (read committed would take one
        // each): the bounds agree with the rows.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let rows: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT id, action, token_key FROM token_history WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        let (oldest, newest): (Option<i64>, Option<i64>) =
            sqlx::query_as("SELECT MIN(id), MAX(id) FROM token_history")
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        ChangeFeed::from_rows(rows, oldest, newest)
    }

    async fn delete_older_than(&self, cutoff: u64) -> Result<u64, StorageError> {
        let done = sqlx::query("DELETE FROM token_history WHERE event_time < $1")
            .bind(to_i64(cutoff))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
