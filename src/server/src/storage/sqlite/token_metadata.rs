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

    async fn fetch(&self, sql: &str, binds: &[Bind<'_>]) -> Result<Vec<TokenInfo>, StorageError> {
        let mut query = sqlx::query(sql);
        for bind in binds {
            query = match bind {
                Bind::Text(s) => query.bind(*s),
                Bind::Int(i) => query.bind(*i),
                Bind::Null => query.bind(None::<String>),
            };
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(info_from).collect()
    }
}

enum Bind<'a> {
    Text(&'a str),
    Int(i64),
    Null,
}

/// Every descendant of the token bound to `?`, deepest first.
fn descendants_sql() -> String {
    format!(
        "WITH RECURSIVE descendants (token_key, depth) AS (
             SELECT token_key, 1 FROM tokens WHERE parent = ?
             UNION ALL
             SELECT t.token_key, d.depth + 1 FROM tokens t JOIN descendants d ON t.parent = d.token_key
         )
         SELECT {COLUMNS} FROM tokens JOIN descendants USING (token_key)
         ORDER BY depth DESC, token_key"
    )
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
        let sql = format!("SELECT {COLUMNS} FROM tokens WHERE token_key = ?");
        Ok(self.fetch(&sql, &[Bind::Text(key.as_str())]).await?.pop())
    }

    async fn get_children(&self, key: &TokenKey) -> Result<Vec<TokenInfo>, StorageError> {
        self.fetch(&descendants_sql(), &[Bind::Text(key.as_str())])
            .await
    }

    async fn list_tokens(&self, listing: &TokenListing) -> Result<Vec<TokenInfo>, StorageError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM tokens WHERE (?1 IS NULL OR username = ?1)
             AND (?2 IS NULL OR token_type = ?2) ORDER BY created, token_key"
        );
        let username = listing.username.as_deref().map_or(Bind::Null, Bind::Text);
        let token_type = listing
            .token_type
            .map_or(Bind::Null, |t| Bind::Text(t.as_str()));
        self.fetch(&sql, &[username, token_type]).await
    }

    async fn list_orphaned(&self) -> Result<Vec<TokenInfo>, StorageError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM tokens WHERE parent IS NULL
             AND token_type IN ('notebook', 'internal', 'oidc') ORDER BY token_key"
        );
        self.fetch(&sql, &[]).await
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
        let done = sqlx::query(
            "UPDATE tokens SET last_used = ?1 WHERE token_key = ?2 AND (last_used IS NULL OR last_used <= ?3)",
        )
        .bind(to_i64(now))
        .bind(key.as_str())
        .bind(to_i64(now.saturating_sub(interval)))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete(&self, key: &TokenKey) -> Result<bool, StorageError> {
        let done = sqlx::query("DELETE FROM tokens WHERE token_key = ?")
            .bind(key.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_tree(&self, key: &TokenKey) -> Result<Vec<TokenInfo>, StorageError> {
        let mut conn = self.pool.acquire().await?;
        // The write lock, held from the first read to the commit, is the
        // lock of every token here: no child is added in between.
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let Some(root) = sqlx::query(&format!("SELECT {COLUMNS} FROM tokens WHERE token_key = ?"))
            .bind(key.as_str())
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(Vec::new());
        };
        let mut doomed = sqlx::query(&descendants_sql())
            .bind(key.as_str())
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(info_from)
            .collect::<Result<Vec<_>, _>>()?;
        doomed.push(info_from(&root)?);
        for info in &doomed {
            sqlx::query("DELETE FROM tokens WHERE token_key = ?")
                .bind(info.token.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(doomed)
    }

    async fn list_expired(&self, now: u64) -> Result<Vec<TokenInfo>, StorageError> {
        let sql = format!("SELECT {COLUMNS} FROM tokens WHERE expires IS NOT NULL AND expires <= ? ORDER BY expires");
        self.fetch(&sql, &[Bind::Int(to_i64(now))]).await
    }

    async fn count_unique_sessions(&self, now: u64) -> Result<u64, StorageError> {
        count(
            &self.pool,
            "SELECT COUNT(DISTINCT username) FROM tokens WHERE token_type = 'session'
             AND (expires IS NULL OR expires > ?)",
            now,
        )
        .await
    }

    async fn count_user_tokens(&self, now: u64) -> Result<u64, StorageError> {
        count(
            &self.pool,
            "SELECT COUNT(*) FROM tokens WHERE token_type = 'user' AND (expires IS NULL OR expires > ?)",
            now,
        )
        .await
    }
}

async fn count(pool: &SqlitePool, sql: &str, now: u64) -> Result<u64, StorageError> {
    let n: i64 = sqlx::query_scalar(sql)
        .bind(to_i64(now))
        .fetch_one(pool)
        .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}
