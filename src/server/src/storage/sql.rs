//! The SQL both engines run, written once. The engines differ in how they
//! spell placeholders (`?` and `$n`), row locks and a null-safe `=`, so a
//! statement is written with `?` (or `?n` where a value is used twice) and
//! [`Dialect`] spells the rest for each; the values go in by one `bind_*!`
//! macro per record, and [`engine!`] makes each statement's function once
//! per engine (`sql::sqlite`, `sql::postgres`) from one text. What truly
//! differs (transactions and their locks, Redis, arrays) stays with each
//! engine.

use std::borrow::Cow;

use super::StorageError;
use crate::model::{OidcClientRecord, TokenInfo};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// `text` for this engine. For PostgreSQL each bare `?` becomes `$1`,
    /// `$2`, … in order and `?n` becomes `$n`; SQLite reads both as they
    /// are. A statement uses one style or the other, and holds no `?`
    /// inside a literal.
    pub fn sql(self, text: &str) -> Cow<'_, str> {
        match self {
            Dialect::Sqlite => Cow::Borrowed(text),
            Dialect::Postgres => {
                let mut out = String::with_capacity(text.len() + 16);
                let mut n = 0;
                let mut chars = text.chars().peekable();
                while let Some(c) = chars.next() {
                    if c != '?' {
                        out.push(c);
                        continue;
                    }
                    out.push('$');
                    if chars.peek().is_some_and(char::is_ascii_digit) {
                        while let Some(d) = chars.next_if(char::is_ascii_digit) {
                            out.push(d);
                        }
                    } else {
                        n += 1;
                        out.push_str(&n.to_string());
                    }
                }
                Cow::Owned(out)
            }
        }
    }

    /// What ends a `SELECT` that locks the rows it reads until the
    /// transaction ends. SQLite has no row locks: its callers hold the
    /// database's write lock (`BEGIN IMMEDIATE`) instead.
    pub fn for_update(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE",
        }
    }

    /// `=` that holds between two NULLs too.
    pub fn same_as(self) -> &'static str {
        match self {
            Dialect::Sqlite => "IS",
            Dialect::Postgres => "IS NOT DISTINCT FROM",
        }
    }
}

/// Inserts a token's metadata; bound by [`bind_token_info`].
pub const INSERT_TOKEN: &str = "INSERT INTO tokens (token_key, username, token_type, token_name, \
     scopes, service, created, last_used, expires, parent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// Inserts a history entry; bound by [`bind_history`].
pub const INSERT_HISTORY: &str = "INSERT INTO token_history (token_key, username, token_type, \
     token_name, parent, scopes, service, expires, actor, action, old_token_name, old_scopes, \
     old_expires, ip_address, event_time, ip_bytes) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// Inserts an OpenID Connect client; bound by [`bind_client`].
pub const INSERT_CLIENT: &str = "INSERT INTO oidc_clients \
     (client_id, secret_sha256, redirect_uris, public, name, created) VALUES (?, ?, ?, ?, ?, ?)";

/// Inserts the grant behind an access token; bound by [`bind_grant`].
pub const INSERT_GRANT: &str =
    "INSERT INTO oidc_grants (token_key, client_id, scopes, auth_time) VALUES (?, ?, ?, ?)";

/// Every descendant of the token bound to `?`, deepest first (parents
/// after their children, so deleting in order never orphans one).
static DESCENDANTS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH RECURSIVE descendants (token_key, depth) AS (
             SELECT token_key, 1 FROM tokens WHERE parent = ?
             UNION ALL
             SELECT t.token_key, d.depth + 1 FROM tokens t JOIN descendants d ON t.parent = d.token_key
         )
         SELECT {} FROM tokens JOIN descendants USING (token_key)
         ORDER BY depth DESC, token_key",
        super::rows::TOKEN_COLUMNS
    )
});

/// Users with an unexpired session token at `?`.
pub const COUNT_UNIQUE_SESSIONS: &str = "SELECT COUNT(DISTINCT username) FROM tokens \
     WHERE token_type = 'session' AND (expires IS NULL OR expires > ?)";

/// Unexpired user tokens at `?`.
pub const COUNT_USER_TOKENS: &str =
    "SELECT COUNT(*) FROM tokens WHERE token_type = 'user' AND (expires IS NULL OR expires > ?)";

/// Every filter is `(?n IS NULL OR …)`, so one statement serves all
/// combinations and every value is bound, never spliced; the values are
/// [`bind_history_query`]'s. The casts give PostgreSQL a type for a
/// value that is only tested for NULL.
const HISTORY_WHERE: &str = "(CAST(?1 AS BIGINT) IS NULL OR event_time >= ?1)
     AND (CAST(?2 AS BIGINT) IS NULL OR event_time <= ?2)
     AND (CAST(?3 AS TEXT) IS NULL OR username = ?3) AND (CAST(?4 AS TEXT) IS NULL OR actor = ?4)
     AND (CAST(?5 AS TEXT) IS NULL OR token_key = ?5 OR parent = ?5)
     AND (CAST(?6 AS TEXT) IS NULL OR token_key = ?6)
     AND (CAST(?7 AS TEXT) IS NULL OR token_type = ?7)
     AND (?8 IS NULL OR ip_bytes BETWEEN ?8 AND ?9)";

/// Links an imported token to its parent, once every token is in.
pub const LINK_PARENT: &str = "UPDATE tokens SET parent = ? WHERE token_key = ?";

/// Binds a [`TokenInfo`] to [`INSERT_TOKEN`].
macro_rules! bind_token_info {
    ($query:expr, $info:expr) => {{
        use $crate::storage::rows::{scopes_column, to_i64};
        let info: &$crate::model::TokenInfo = $info;
        $query
            .bind(info.token.as_str())
            .bind(info.username.as_str())
            .bind(info.token_type.as_str())
            .bind(info.token_name.as_deref())
            .bind(scopes_column(&info.scopes))
            .bind(info.service.as_deref())
            .bind(to_i64(info.created))
            .bind(info.last_used.map(to_i64))
            .bind(info.expires.map(to_i64))
            .bind(info.parent.as_ref().map(|p| p.as_str()))
    }};
}

/// Binds a [`HistoryEntry`](crate::model::HistoryEntry) to [`INSERT_HISTORY`].
macro_rules! bind_history {
    ($query:expr, $entry:expr) => {{
        use $crate::storage::history::ip_bytes;
        use $crate::storage::rows::{scopes_column, to_i64};
        let e: &$crate::model::HistoryEntry = $entry;
        $query
            .bind(e.token.as_str())
            .bind(e.username.as_str())
            .bind(e.token_type.as_str())
            .bind(e.token_name.as_deref())
            .bind(e.parent.as_ref().map(|p| p.as_str()))
            .bind(scopes_column(&e.scopes))
            .bind(e.service.as_deref())
            .bind(e.expires.map(to_i64))
            .bind(e.actor.as_deref())
            .bind(e.action.as_str())
            .bind(e.old_token_name.as_deref())
            .bind(e.old_scopes.as_deref().map(scopes_column))
            .bind(e.old_expires.map(to_i64))
            .bind(e.ip_address.map(|ip| ip.to_string()))
            .bind(to_i64(e.event_time))
            .bind(e.ip_address.map(|ip| ip_bytes(ip).to_vec()))
    }};
}

/// Binds an [`OidcClientRecord`] to [`INSERT_CLIENT`].
macro_rules! bind_client {
    ($query:expr, $client:expr) => {{
        use $crate::storage::rows::{to_i64, uris_column};
        let c: &$crate::model::OidcClientRecord = $client;
        $query
            .bind(c.client_id.as_str())
            .bind(c.secret_sha256.map(|h| h.to_vec()))
            .bind(uris_column(&c.redirect_uris))
            .bind(c.public)
            .bind(c.name.as_deref())
            .bind(to_i64(c.created))
    }};
}

/// Binds an [`OidcGrant`](crate::model::OidcGrant) to [`INSERT_GRANT`].
macro_rules! bind_grant {
    ($query:expr, $grant:expr) => {{
        use $crate::storage::rows::to_i64;
        let g: &$crate::model::OidcGrant = $grant;
        $query
            .bind(g.token.as_str())
            .bind(g.client_id.as_str())
            .bind(g.scopes.join(" "))
            .bind(to_i64(g.auth_time))
    }};
}

/// Binds a history query's twelve values: the filter's (`?1`–`?9`), the
/// cursor's (`?10`, `?11`) and one row more than `limit` (`?12`, which says
/// whether there is more).
macro_rules! bind_history_query {
    ($query:expr, $filter:expr, $cursor:expr, $limit:expr) => {{
        use $crate::storage::history::net_range;
        use $crate::storage::rows::to_i64;
        let filter: &$crate::model::HistoryFilter = $filter;
        let cursor: Option<$crate::model::HistoryCursor> = $cursor;
        let range = filter.ip_or_cidr.as_ref().map(net_range);
        $query
            .bind(filter.since.map(to_i64))
            .bind(filter.until.map(to_i64))
            .bind(filter.username.as_deref())
            .bind(filter.actor.as_deref())
            .bind(filter.key.as_ref().map(|k| k.as_str()))
            .bind(filter.token.as_ref().map(|k| k.as_str()))
            .bind(filter.token_type.map(|t| t.as_str()))
            .bind(range.map(|r| r.0.to_vec()))
            .bind(range.map(|r| r.1.to_vec()))
            .bind(cursor.map(|c| to_i64(c.time)))
            .bind(cursor.map(|c| c.id))
            .bind(i64::from($limit) + 1)
    }};
}

/// Every shared statement, once, for an engine: its dialect, its executor
/// and its connection.
macro_rules! engine {
    ($name:ident, $dialect:expr, $executor:path, $connection:ty) => {
        pub mod $name {
            use super::*;
            use portcullis_core::{TokenKey, TokenType};

            use crate::storage::history::ChangeFeed;

            use crate::model::{
                HistoryCursor, HistoryEntry, HistoryFilter, HistoryPage, OidcGrant, TokenChanges,
                TokenInfo, TokenListing,
            };
            use crate::storage::rows::{
                client_from, entry_from, grant_from, info_from, parse_key, scopes_column,
                to_i64, HISTORY_COLUMNS, TOKEN_COLUMNS,
            };
            use crate::storage::transfer::Dump;
            use crate::storage::{ChildSlot, ReusableChild};
            use sqlx::Row as _;

            pub async fn insert_token(
                db: impl $executor,
                info: &TokenInfo,
            ) -> Result<(), StorageError> {
                let sql = $dialect.sql(INSERT_TOKEN);
                match bind_token_info!(sqlx::query(&sql), info).execute(db).await {
                    Ok(_) => Ok(()),
                    Err(e) => Err(token_insert_error(e, info)),
                }
            }

            /// Adds a history entry; the caller holds what orders them.
            pub async fn insert_entry(
                db: impl $executor,
                entry: &HistoryEntry,
            ) -> Result<(), StorageError> {
                let sql = $dialect.sql(INSERT_HISTORY);
                bind_history!(sqlx::query(&sql), entry).execute(db).await?;
                Ok(())
            }

            pub async fn insert_client(
                db: impl $executor,
                client: &OidcClientRecord,
            ) -> Result<(), StorageError> {
                let sql = $dialect.sql(INSERT_CLIENT);
                match bind_client!(sqlx::query(&sql), client).execute(db).await {
                    Ok(_) => Ok(()),
                    Err(e) => Err(client_insert_error(e, client)),
                }
            }

            pub async fn insert_grant(
                db: impl $executor,
                grant: &OidcGrant,
            ) -> Result<(), StorageError> {
                let sql = $dialect.sql(INSERT_GRANT);
                bind_grant!(sqlx::query(&sql), grant).execute(db).await?;
                Ok(())
            }

            /// A token's metadata.
            pub async fn token_info(
                db: impl $executor,
                key: &TokenKey,
            ) -> Result<Option<TokenInfo>, StorageError> {
                let text = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE token_key = ?");
                let sql = $dialect.sql(&text);
                let row = sqlx::query(&sql).bind(key.as_str()).fetch_optional(db).await?;
                row.as_ref().map(info_from).transpose()
            }

            /// A token's metadata, its row locked until the transaction
            /// ends (in SQLite, the caller holds the write lock).
            pub async fn token_info_for_update(
                db: impl $executor,
                key: &TokenKey,
            ) -> Result<Option<TokenInfo>, StorageError> {
                let text = format!(
                    "SELECT {TOKEN_COLUMNS} FROM tokens WHERE token_key = ?{}",
                    $dialect.for_update()
                );
                let sql = $dialect.sql(&text);
                let row = sqlx::query(&sql).bind(key.as_str()).fetch_optional(db).await?;
                row.as_ref().map(info_from).transpose()
            }

            /// Applies `changes` to the token's row, in the caller's
            /// transaction; the token as it now is, if it exists.
            pub async fn modify_token(
                conn: &mut $connection,
                key: &TokenKey,
                changes: &TokenChanges,
            ) -> Result<Option<TokenInfo>, StorageError> {
                let Some(found) = token_info_for_update(&mut *conn, key).await? else {
                    return Ok(None);
                };
                let info = changes.applied_to(found);
                let sql = $dialect.sql(
                    "UPDATE tokens SET token_name = ?, scopes = ?, expires = ? WHERE token_key = ?",
                );
                let done = sqlx::query(&sql)
                    .bind(&info.token_name)
                    .bind(scopes_column(&info.scopes))
                    .bind(info.expires.map(to_i64))
                    .bind(key.as_str())
                    .execute(&mut *conn)
                    .await;
                match done {
                    Ok(_) => Ok(Some(info)),
                    Err(e) => Err(token_insert_error(e, &info)),
                }
            }

            /// Adds `info` unless the parent has a child `reuse` accepts,
            /// in the caller's transaction, which holds what serializes
            /// the callers for one parent.
            pub async fn add_child_unless_reusable(
                conn: &mut $connection,
                info: &TokenInfo,
                reuse: &ReusableChild,
            ) -> Result<ChildSlot, StorageError> {
                let matches_service = match reuse.token_type {
                    TokenType::Internal => {
                        format!("AND service {} ? AND scopes = ?", $dialect.same_as())
                    }
                    _ => String::new(),
                };
                let text = format!(
                    "SELECT token_key FROM tokens WHERE parent = ? AND token_type = ?
                     AND (expires IS NULL OR expires >= ?) {matches_service}
                     ORDER BY created DESC, token_key LIMIT 1"
                );
                let sql = $dialect.sql(&text);
                let mut query = sqlx::query(&sql)
                    .bind(reuse.parent.as_str())
                    .bind(reuse.token_type.as_str())
                    .bind(to_i64(reuse.min_expires));
                if reuse.token_type == TokenType::Internal {
                    query = query
                        .bind(reuse.service.as_deref())
                        .bind(scopes_column(&reuse.scopes));
                }
                match query.fetch_optional(&mut *conn).await? {
                    Some(row) => Ok(ChildSlot::Existing(parse_key(row.try_get("token_key")?)?)),
                    None => {
                        insert_token(&mut *conn, info).await?;
                        Ok(ChildSlot::Added)
                    }
                }
            }

            /// Every descendant of `key`, deepest first.
            pub async fn descendants(
                db: impl $executor,
                key: &TokenKey,
            ) -> Result<Vec<TokenInfo>, StorageError> {
                let sql = $dialect.sql(&DESCENDANTS);
                let rows = sqlx::query(&sql).bind(key.as_str()).fetch_all(db).await?;
                rows.iter().map(info_from).collect()
            }

            pub async fn tokens_listed(
                db: impl $executor,
                listing: &TokenListing,
            ) -> Result<Vec<TokenInfo>, StorageError> {
                let text = format!(
                    "SELECT {TOKEN_COLUMNS} FROM tokens
                     WHERE (CAST(? AS TEXT) IS NULL OR username = ?)
                     AND (CAST(? AS TEXT) IS NULL OR token_type = ?) ORDER BY created, token_key"
                );
                let sql = $dialect.sql(&text);
                let (username, token_type) = (
                    listing.username.as_deref(),
                    listing.token_type.map(|t| t.as_str()),
                );
                let rows = sqlx::query(&sql)
                    .bind(username)
                    .bind(username)
                    .bind(token_type)
                    .bind(token_type)
                    .fetch_all(db)
                    .await?;
                rows.iter().map(info_from).collect()
            }

            /// Child-type tokens whose parent is gone.
            pub async fn orphans(db: impl $executor) -> Result<Vec<TokenInfo>, StorageError> {
                let sql = format!(
                    "SELECT {TOKEN_COLUMNS} FROM tokens WHERE parent IS NULL
                     AND token_type IN ('notebook', 'internal', 'oidc') ORDER BY token_key"
                );
                let rows = sqlx::query(&sql).fetch_all(db).await?;
                rows.iter().map(info_from).collect()
            }

            /// Tokens whose expiry is at or before `now`.
            pub async fn expired(db: impl $executor, now: u64) -> Result<Vec<TokenInfo>, StorageError> {
                let text = format!(
                    "SELECT {TOKEN_COLUMNS} FROM tokens
                     WHERE expires IS NOT NULL AND expires <= ? ORDER BY expires"
                );
                let sql = $dialect.sql(&text);
                let rows = sqlx::query(&sql).bind(to_i64(now)).fetch_all(db).await?;
                rows.iter().map(info_from).collect()
            }

            /// Sets `last_used` unless it was set less than `interval` ago.
            pub async fn record_use(
                db: impl $executor,
                key: &TokenKey,
                now: u64,
                interval: u64,
            ) -> Result<bool, StorageError> {
                let sql = $dialect.sql(
                    "UPDATE tokens SET last_used = ? WHERE token_key = ?
                     AND (last_used IS NULL OR last_used <= ?)",
                );
                let done = sqlx::query(&sql)
                    .bind(to_i64(now))
                    .bind(key.as_str())
                    .bind(to_i64(now.saturating_sub(interval)))
                    .execute(db)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            pub async fn delete_token(db: impl $executor, key: &TokenKey) -> Result<bool, StorageError> {
                let sql = $dialect.sql("DELETE FROM tokens WHERE token_key = ?");
                let done = sqlx::query(&sql).bind(key.as_str()).execute(db).await?;
                Ok(done.rows_affected() > 0)
            }

            /// How many rows `counting` (a `SELECT COUNT…` with one `?` for
            /// `now`) counts.
            pub async fn count_at(
                db: impl $executor,
                counting: &str,
                now: u64,
            ) -> Result<u64, StorageError> {
                let sql = $dialect.sql(counting);
                let n: i64 = sqlx::query_scalar(&sql).bind(to_i64(now)).fetch_one(db).await?;
                Ok(u64::try_from(n).unwrap_or(0))
            }

            /// A page of history, newest first, from `cursor`'s place.
            pub async fn history_page(
                db: impl $executor,
                filter: &HistoryFilter,
                cursor: Option<HistoryCursor>,
                limit: u32,
            ) -> Result<HistoryPage, StorageError> {
                let backwards = cursor.is_some_and(|c| c.previous);
                let (position, order) = match backwards {
                    false => ("(event_time, id) < (?10, ?11)", "DESC"),
                    true => ("(event_time, id) > (?10, ?11)", "ASC"),
                };
                let text = format!(
                    "SELECT id, {HISTORY_COLUMNS} FROM token_history WHERE {HISTORY_WHERE}
                     AND (CAST(?10 AS BIGINT) IS NULL OR {position})
                     ORDER BY event_time {order}, id {order} LIMIT ?12"
                );
                let sql = $dialect.sql(&text);
                let rows = bind_history_query!(sqlx::query(&sql), filter, cursor, limit)
                    .fetch_all(db)
                    .await?;
                let found = rows.iter().map(entry_from).collect::<Result<Vec<_>, _>>()?;
                Ok(HistoryPage::from_rows(found, cursor, limit))
            }

            /// Drops the history recorded before `cutoff`.
            pub async fn delete_history_before(
                db: impl $executor,
                cutoff: u64,
            ) -> Result<u64, StorageError> {
                let sql = $dialect.sql("DELETE FROM token_history WHERE event_time < ?");
                let done = sqlx::query(&sql).bind(to_i64(cutoff)).execute(db).await?;
                Ok(done.rows_affected())
            }

            /// The feed's rows after `after` and the bounds of what is
            /// kept, read in the caller's transaction so that they agree.
            pub async fn feed_rows(
                conn: &mut $connection,
                after: i64,
                limit: u32,
            ) -> Result<ChangeFeed, StorageError> {
                let sql = $dialect.sql(
                    "SELECT id, action, token_key FROM token_history WHERE id > ? ORDER BY id LIMIT ?",
                );
                let rows: Vec<(i64, String, String)> = sqlx::query_as(&sql)
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(&mut *conn)
                    .await?;
                let (oldest, newest): (Option<i64>, Option<i64>) =
                    sqlx::query_as("SELECT MIN(id), MAX(id) FROM token_history")
                        .fetch_one(&mut *conn)
                        .await?;
                ChangeFeed::from_rows(rows, oldest, newest)
            }

            pub async fn client(
                db: impl $executor,
                client_id: &str,
            ) -> Result<Option<OidcClientRecord>, StorageError> {
                let sql = $dialect.sql("SELECT * FROM oidc_clients WHERE client_id = ?");
                let row = sqlx::query(&sql).bind(client_id).fetch_optional(db).await?;
                row.as_ref().map(client_from).transpose()
            }

            pub async fn clients(db: impl $executor) -> Result<Vec<OidcClientRecord>, StorageError> {
                let rows = sqlx::query("SELECT * FROM oidc_clients ORDER BY client_id")
                    .fetch_all(db)
                    .await?;
                rows.iter().map(client_from).collect()
            }

            pub async fn delete_client(db: impl $executor, client_id: &str) -> Result<bool, StorageError> {
                let sql = $dialect.sql("DELETE FROM oidc_clients WHERE client_id = ?");
                let done = sqlx::query(&sql).bind(client_id).execute(db).await?;
                Ok(done.rows_affected() > 0)
            }

            /// The grant behind an OpenID Connect access token.
            pub async fn grant(db: impl $executor, token: &TokenKey) -> Result<Option<OidcGrant>, StorageError> {
                let sql = $dialect.sql("SELECT * FROM oidc_grants WHERE token_key = ?");
                let row = sqlx::query(&sql).bind(token.as_str()).fetch_optional(db).await?;
                row.as_ref().map(grant_from).transpose()
            }

            /// All of a dump but its token data, into the caller's open
            /// transaction. Parents may come after their children: links
            /// are set once every token is in.
            pub async fn import_records(
                conn: &mut $connection,
                dump: &Dump,
            ) -> Result<(), StorageError> {
                for info in &dump.tokens {
                    let unlinked = TokenInfo {
                        parent: None,
                        ..info.clone()
                    };
                    insert_token(&mut *conn, &unlinked).await?;
                }
                let link = $dialect.sql(LINK_PARENT);
                for info in dump.tokens.iter().filter(|i| i.parent.is_some()) {
                    sqlx::query(&link)
                        .bind(info.parent.as_ref().map(|p| p.as_str()))
                        .bind(info.token.as_str())
                        .execute(&mut *conn)
                        .await?;
                }
                for entry in &dump.history {
                    insert_entry(&mut *conn, entry).await?;
                }
                for client in &dump.oidc_clients {
                    insert_client(&mut *conn, client).await?;
                }
                for grant in &dump.oidc_grants {
                    insert_grant(&mut *conn, grant).await?;
                }
                Ok(())
            }
        }
    };
}

engine!(
    sqlite,
    Dialect::Sqlite,
    sqlx::SqliteExecutor<'_>,
    sqlx::SqliteConnection
);
engine!(
    postgres,
    Dialect::Postgres,
    sqlx::PgExecutor<'_>,
    sqlx::PgConnection
);

/// What inserting `info` failing with `e` means: a name its owner already
/// uses, a parent revoked before the child could name it, or the engine's
/// own error.
pub fn token_insert_error(e: sqlx::Error, info: &TokenInfo) -> StorageError {
    match e {
        sqlx::Error::Database(e) if e.is_unique_violation() && info.token_name.is_some() => {
            StorageError::DuplicateName {
                username: info.username.clone(),
                name: info.token_name.clone().unwrap_or_default(),
            }
        }
        // The parent's row was removed before this one could name it.
        sqlx::Error::Database(e) if e.is_foreign_key_violation() => StorageError::ParentGone,
        e => e.into(),
    }
}

/// What inserting `client` failing with `e` means.
pub fn client_insert_error(e: sqlx::Error, client: &OidcClientRecord) -> StorageError {
    match e {
        sqlx::Error::Database(e) if e.is_unique_violation() => {
            StorageError::DuplicateClient(client.client_id.clone())
        }
        e => e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres_only() {
        assert_eq!(Dialect::Sqlite.sql(LINK_PARENT), LINK_PARENT);
        assert_eq!(
            Dialect::Postgres.sql(LINK_PARENT),
            "UPDATE tokens SET parent = $1 WHERE token_key = $2"
        );
        assert!(Dialect::Postgres.sql(INSERT_HISTORY).contains("$16)"));
    }

    #[test]
    fn numbered_placeholders_keep_their_numbers() {
        assert_eq!(
            Dialect::Postgres.sql("(?10, ?11) LIMIT ?12 OR ?1"),
            "($10, $11) LIMIT $12 OR $1"
        );
        assert_eq!(Dialect::Sqlite.sql("?10 ?"), "?10 ?");
        let pg = Dialect::Postgres.sql(HISTORY_WHERE);
        assert!(!pg.contains('?') && pg.contains("$9"));
    }
}
