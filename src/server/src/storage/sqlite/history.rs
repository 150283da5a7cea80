use async_trait::async_trait;
use sqlx::SqlitePool;

use crate::model::{HistoryCursor, HistoryEntry, HistoryFilter, HistoryPage};
use crate::storage::history::ChangeFeed;
use crate::storage::rows::{entry_from, to_i64, HISTORY_COLUMNS};
use crate::storage::sql;
use crate::storage::{StorageError, TokenHistoryStore};

/// Every filter is `(?n IS NULL OR …)`, so one statement serves all
/// combinations and every value is bound, never spliced.
const WHERE: &str = "(?1 IS NULL OR event_time >= ?1) AND (?2 IS NULL OR event_time <= ?2)
     AND (?3 IS NULL OR username = ?3) AND (?4 IS NULL OR actor = ?4)
     AND (?5 IS NULL OR token_key = ?5 OR parent = ?5) AND (?6 IS NULL OR token_key = ?6)
     AND (?7 IS NULL OR token_type = ?7) AND (?8 IS NULL OR ip_bytes BETWEEN ?8 AND ?9)";

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
        let backwards = cursor.is_some_and(|c| c.previous);
        let (position, order) = match backwards {
            false => ("(event_time, id) < (?10, ?11)", "DESC"),
            true => ("(event_time, id) > (?10, ?11)", "ASC"),
        };
        let query = format!(
            "SELECT id, {HISTORY_COLUMNS} FROM token_history WHERE {WHERE} AND (?10 IS NULL OR {position})
             ORDER BY event_time {order}, id {order} LIMIT ?12"
        );
        let rows = sql::bind_history_query!(sqlx::query(&query), filter, cursor, limit)
            .fetch_all(&self.pool)
            .await?;
        let found = rows.iter().map(entry_from).collect::<Result<Vec<_>, _>>()?;
        Ok(HistoryPage::from_rows(found, cursor, limit))
    }

    async fn changes_since(&self, after: i64, limit: u32) -> Result<ChangeFeed, StorageError> {
        // One read transaction: in WAL mode it reads one snapshot, so the
        // bounds agree with the rows.
        let mut tx = self.pool.begin().await?;
        let rows: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT id, action, token_key FROM token_history WHERE id > ? ORDER BY id LIMIT ?",
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
        let done = sqlx::query("DELETE FROM token_history WHERE event_time < ?")
            .bind(to_i64(cutoff))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
