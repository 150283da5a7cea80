//! Rows as both SQL engines store them: the column encodings and the
//! mapping of a row to a record, written once over sqlx's `Row` so that
//! SQLite and PostgreSQL read tokens, history and clients alike.

use portcullis_core::{Scope, TokenKey};
use sqlx::{ColumnIndex, Decode, Row, Type};

use super::{HistoryEntry, OidcClientRecord, StorageError, TokenChange, TokenInfo};

/// The token metadata columns, in the order inserts bind them.
pub const TOKEN_COLUMNS: &str =
    "token_key, username, token_type, token_name, scopes, service, created, last_used, expires, parent";

/// The history columns but `id` and `ip_bytes`, in the order inserts bind them.
pub const HISTORY_COLUMNS: &str =
    "token_key, username, token_type, token_name, parent, scopes, service, expires, \
     actor, action, old_token_name, old_scopes, old_expires, ip_address, event_time";

fn text<R>(row: &R, column: &str) -> Result<String, StorageError>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    for<'d> String: Decode<'d, R::Database> + Type<R::Database>,
{
    Ok(row.try_get(column)?)
}

fn optional_text<R>(row: &R, column: &str) -> Result<Option<String>, StorageError>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    for<'d> String: Decode<'d, R::Database> + Type<R::Database>,
{
    Ok(row.try_get(column)?)
}

fn optional_int<R>(row: &R, column: &str) -> Result<Option<u64>, StorageError>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    for<'d> i64: Decode<'d, R::Database> + Type<R::Database>,
{
    Ok(to_u64(row.try_get(column)?))
}

/// A token's metadata from a row holding [`TOKEN_COLUMNS`].
pub fn info_from<R>(row: &R) -> Result<TokenInfo, StorageError>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    for<'d> String: Decode<'d, R::Database> + Type<R::Database>,
    for<'d> i64: Decode<'d, R::Database> + Type<R::Database>,
{
    let key = text(row, "token_key")?;
    let token_type = text(row, "token_type")?;
    Ok(TokenInfo {
        token: parse_key(&key)?,
        username: text(row, "username")?,
        token_type: token_type
            .parse()
            .map_err(|e| corrupt(&key, format!("{e}")))?,
        token_name: optional_text(row, "token_name")?,
        scopes: parse_scopes(&text(row, "scopes")?, &key)?,
        service: optional_text(row, "service")?,
        created: optional_int(row, "created")?.unwrap_or(0),
        last_used: optional_int(row, "last_used")?,
        expires: optional_int(row, "expires")?,
        parent: optional_text(row, "parent")?
            .as_deref()
            .map(parse_key)
            .transpose()?,
    })
}

/// A history entry and its row id, from a row holding `id` and
/// [`HISTORY_COLUMNS`].
pub fn entry_from<R>(row: &R) -> Result<(i64, HistoryEntry), StorageError>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    for<'d> String: Decode<'d, R::Database> + Type<R::Database>,
    for<'d> i64: Decode<'d, R::Database> + Type<R::Database>,
{
    let key = text(row, "token_key")?;
    let token_type = text(row, "token_type")?;
    let action = text(row, "action")?;
    let ip = optional_text(row, "ip_address")?;
    let entry = HistoryEntry {
        token: parse_key(&key)?,
        username: text(row, "username")?,
        token_type: token_type
            .parse()
            .map_err(|e| corrupt(&key, format!("{e}")))?,
        token_name: optional_text(row, "token_name")?,
        parent: optional_text(row, "parent")?
            .as_deref()
            .map(parse_key)
            .transpose()?,
        scopes: parse_scopes(&text(row, "scopes")?, &key)?,
        service: optional_text(row, "service")?,
        expires: optional_int(row, "expires")?,
        actor: optional_text(row, "actor")?,
        action: TokenChange::parse(&action)
            .ok_or_else(|| corrupt(&key, format!("action {action:?}")))?,
        old_token_name: optional_text(row, "old_token_name")?,
        old_scopes: optional_text(row, "old_scopes")?
            .as_deref()
            .map(|s| parse_scopes(s, &key))
            .transpose()?,
        old_expires: optional_int(row, "old_expires")?,
        ip_address: ip
            .as_deref()
            .map(|ip| ip.parse().map_err(|_| corrupt(&key, format!("ip {ip:?}"))))
            .transpose()?,
        event_time: optional_int(row, "event_time")?.unwrap_or(0),
    };
    Ok((row.try_get("id")?, entry))
}

/// A registered OpenID Connect client; `public` is read by the caller,
/// since the engines store a flag differently.
pub fn client_from<R>(row: &R, public: bool) -> Result<OidcClientRecord, StorageError>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    for<'d> String: Decode<'d, R::Database> + Type<R::Database>,
    for<'d> i64: Decode<'d, R::Database> + Type<R::Database>,
    for<'d> Vec<u8>: Decode<'d, R::Database> + Type<R::Database>,
{
    let client_id = text(row, "client_id")?;
    let uris = text(row, "redirect_uris")?;
    let secret: Option<Vec<u8>> = row.try_get("secret_sha256")?;
    Ok(OidcClientRecord {
        secret_sha256: secret
            .map(|bytes| hash_from(bytes, &client_id))
            .transpose()?,
        redirect_uris: serde_json::from_str(&uris)
            .map_err(|e| corrupt(&client_id, format!("redirect_uris: {e}")))?,
        public,
        name: optional_text(row, "name")?,
        created: optional_int(row, "created")?.unwrap_or(0),
        client_id,
    })
}

/// A client's redirect URIs as stored: a JSON array.
pub fn uris_column(uris: &[String]) -> String {
    // Serializing strings cannot fail.
    serde_json::to_string(uris).unwrap_or_default()
}

/// A SHA-256 as stored: 32 bytes.
pub fn hash_from(bytes: Vec<u8>, id: &str) -> Result<[u8; 32], StorageError> {
    <[u8; 32]>::try_from(bytes).map_err(|_| corrupt(id, "hash is not 32 bytes".into()))
}

/// Scopes as stored: sorted, space-separated.
pub fn scopes_column(scopes: &[Scope]) -> String {
    let mut sorted: Vec<&str> = scopes.iter().map(Scope::as_str).collect();
    sorted.sort_unstable();
    sorted.join(" ")
}

pub fn parse_scopes(column: &str, key: &str) -> Result<Vec<Scope>, StorageError> {
    column
        .split_whitespace()
        .map(|s| s.parse().map_err(|e| corrupt(key, format!("scope: {e}"))))
        .collect()
}

/// Space-separated words (OpenID scopes) as a list.
pub fn words(column: &str) -> Vec<String> {
    column.split_whitespace().map(str::to_owned).collect()
}

pub fn parse_key(column: &str) -> Result<TokenKey, StorageError> {
    column
        .parse()
        .map_err(|e| corrupt(column, format!("key: {e}")))
}

pub fn corrupt(key: &str, reason: String) -> StorageError {
    StorageError::Corrupt {
        key: key.to_owned(),
        reason,
    }
}

/// Seconds as SQL's signed integer; times beyond i64 cannot come from a clock.
pub fn to_i64(seconds: u64) -> i64 {
    i64::try_from(seconds).unwrap_or(i64::MAX)
}

pub fn to_u64(column: Option<i64>) -> Option<u64> {
    column.map(|v| u64::try_from(v).unwrap_or(0))
}
