use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};

use super::{corrupt, parse_key, parse_scopes, scopes_column, to_i64, to_u64};
use crate::storage::history::ChangeFeed;
use crate::storage::history::{ip_bytes, net_range};
use crate::storage::{
    HistoryCursor, HistoryEntry, HistoryFilter, HistoryPage, StorageError, TokenChange,
    TokenHistoryStore,
};

const COLUMNS: &str =
    "id, token_key, username, token_type, token_name, parent, scopes, service, expires, \
     actor, action, old_token_name, old_scopes, old_expires, ip_address, event_time";

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

fn entry_from(row: &SqliteRow) -> Result<(i64, HistoryEntry), StorageError> {
    let key: String = row.try_get("token_key")?;
    let token_type: String = row.try_get("token_type")?;
    let action: String = row.try_get("action")?;
    let parent: Option<String> = row.try_get("parent")?;
    let old_scopes: Option<String> = row.try_get("old_scopes")?;
    let ip: Option<String> = row.try_get("ip_address")?;
    let entry = HistoryEntry {
        token: parse_key(&key)?,
        username: row.try_get("username")?,
        token_type: token_type
            .parse()
            .map_err(|e| corrupt(&key, format!("{e}")))?,
        token_name: row.try_get("token_name")?,
        parent: parent.as_deref().map(parse_key).transpose()?,
        scopes: parse_scopes(row.try_get("scopes")?, &key)?,
        service: row.try_get("service")?,
        expires: to_u64(row.try_get("expires")?),
        actor: row.try_get("actor")?,
        action: TokenChange::parse(&action)
            .ok_or_else(|| corrupt(&key, format!("action {action:?}")))?,
        old_token_name: row.try_get("old_token_name")?,
        old_scopes: old_scopes
            .as_deref()
            .map(|s| parse_scopes(s, &key))
            .transpose()?,
        old_expires: to_u64(row.try_get("old_expires")?),
        ip_address: ip
            .as_deref()
            .map(|ip| ip.parse().map_err(|_| corrupt(&key, format!("ip {ip:?}"))))
            .transpose()?,
        event_time: to_u64(row.try_get("event_time")?).unwrap_or(0),
    };
    Ok((row.try_get("id")?, entry))
}

#[async_trait]
impl TokenHistoryStore for SqliteHistoryStore {
    async fn add(&self, e: &HistoryEntry) -> Result<(), StorageError> {
        sqlx::query(&format!(
            "INSERT INTO token_history ({}, ip_bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            &COLUMNS["id, ".len()..]
        ))
        .bind(e.token.as_str())
        .bind(&e.username)
        .bind(e.token_type.as_str())
        .bind(&e.token_name)
        .bind(e.parent.as_ref().map(|p| p.as_str()))
        .bind(scopes_column(&e.scopes))
        .bind(&e.service)
        .bind(e.expires.map(to_i64))
        .bind(&e.actor)
        .bind(e.action.as_str())
        .bind(&e.old_token_name)
        .bind(e.old_scopes.as_deref().map(scopes_column))
        .bind(e.old_expires.map(to_i64))
        .bind(e.ip_address.map(|ip| ip.to_string()))
        .bind(to_i64(e.event_time))
        .bind(e.ip_address.map(|ip| ip_bytes(ip).to_vec()))
        .execute(&self.pool)
        .await?;
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
            false => ("(event_time, id) < (?10, ?11)", "DESC"),
            true => ("(event_time, id) > (?10, ?11)", "ASC"),
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM token_history WHERE {WHERE} AND (?10 IS NULL OR {position})
             ORDER BY event_time {order}, id {order} LIMIT ?12"
        );
        let range = filter.ip_or_cidr.as_ref().map(net_range);
        let rows = sqlx::query(&sql)
            .bind(filter.since.map(to_i64))
            .bind(filter.until.map(to_i64))
            .bind(&filter.username)
            .bind(&filter.actor)
            .bind(filter.key.as_ref().map(|k| k.as_str()))
            .bind(filter.token.as_ref().map(|k| k.as_str()))
            .bind(filter.token_type.map(|t| t.as_str()))
            .bind(range.map(|r| r.0.to_vec()))
            .bind(range.map(|r| r.1.to_vec()))
            .bind(cursor.map(|c| to_i64(c.time)))
            .bind(cursor.map(|c| c.id))
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.pool)
            .await?;
        let mut found = rows.iter().map(entry_from).collect::<Result<Vec<_>, _>>()?;
        let more = found.len() > limit as usize;
        found.truncate(limit as usize);
        if backwards {
            found.reverse();
        }
        let at = |(id, e): &(i64, HistoryEntry), previous| HistoryCursor {
            time: e.event_time,
            id: *id,
            previous,
        };
        // Newest first now: `previous` leads to newer entries, `next` to older.
        let (has_newer, has_older) = match backwards {
            false => (cursor.is_some(), more),
            true => (more, true),
        };
        Ok(HistoryPage {
            previous: found.first().filter(|_| has_newer).map(|f| at(f, true)),
            next: found.last().filter(|_| has_older).map(|l| at(l, false)),
            entries: found.into_iter().map(|(_, e)| e).collect(),
        })
    }

    async fn changes_since(&self, after: i64, limit: u32) -> Result<ChangeFeed, StorageError> {
        let rows = sqlx::query(
            "SELECT id, token_key FROM token_history WHERE id > ? AND action IN ('revoke', 'expire', 'edit')
             ORDER BY id LIMIT ?",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let changes = rows
            .iter()
            .map(|row| Ok((row.try_get("id")?, parse_key(row.try_get("token_key")?)?)))
            .collect::<Result<Vec<_>, StorageError>>()?;
        let (oldest, newest): (Option<i64>, Option<i64>) =
            sqlx::query_as("SELECT MIN(id), MAX(id) FROM token_history")
                .fetch_one(&self.pool)
                .await?;
        Ok(ChangeFeed {
            changes,
            oldest,
            newest,
        })
    }

    async fn delete_older_than(&self, cutoff: u64) -> Result<u64, StorageError> {
        let done = sqlx::query("DELETE FROM token_history WHERE event_time < ?")
            .bind(to_i64(cutoff))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
