//! Rows as both SQL engines store them: the column encodings and the
//! mapping of a row to a record, written once over sqlx's `Row` so that
//! SQLite and PostgreSQL read tokens, history, clients and grants alike.

use portcullis_core::{Scope, TokenKey};
use sqlx::{ColumnIndex, Decode, Row, Type};

use super::cipher::Sealed;
use super::StorageError;
use crate::model::{HistoryEntry, OidcClientRecord, OidcGrant, TokenChange, TokenInfo};

/// The token metadata columns, in the order inserts bind them.
pub const TOKEN_COLUMNS: &str =
    "token_key, username, token_type, token_name, scopes, service, created, last_used, expires, parent";

/// The history columns but `id` and `ip_bytes`, in the order inserts bind them.
pub const HISTORY_COLUMNS: &str =
    "token_key, username, token_type, token_name, parent, scopes, service, expires, \
     actor, action, old_token_name, old_scopes, old_expires, ip_address, event_time";

/// A row of either engine, read column by column. The decoding bounds are
/// stated once here; the mappers below need only `R: SqlRow`.
pub trait SqlRow {
    fn text(&self, column: &str) -> Result<String, StorageError>;
    fn optional_text(&self, column: &str) -> Result<Option<String>, StorageError>;
    /// A non-negative integer column (seconds, counts).
    fn optional_int(&self, column: &str) -> Result<Option<u64>, StorageError>;
    fn int(&self, column: &str) -> Result<i64, StorageError>;
    fn optional_bytes(&self, column: &str) -> Result<Option<Vec<u8>>, StorageError>;
    fn bytes(&self, column: &str) -> Result<Vec<u8>, StorageError>;
    /// A yes/no column: `BOOLEAN` in PostgreSQL, 0 or 1 in SQLite.
    fn flag(&self, column: &str) -> Result<bool, StorageError>;
}

impl<R> SqlRow for R
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    for<'d> String: Decode<'d, R::Database> + Type<R::Database>,
    for<'d> i64: Decode<'d, R::Database> + Type<R::Database>,
    for<'d> Vec<u8>: Decode<'d, R::Database> + Type<R::Database>,
    for<'d> bool: Decode<'d, R::Database> + Type<R::Database>,
{
    fn text(&self, column: &str) -> Result<String, StorageError> {
        Ok(self.try_get(column)?)
    }

    fn optional_text(&self, column: &str) -> Result<Option<String>, StorageError> {
        Ok(self.try_get(column)?)
    }

    fn optional_int(&self, column: &str) -> Result<Option<u64>, StorageError> {
        Ok(to_u64(self.try_get(column)?))
    }

    fn int(&self, column: &str) -> Result<i64, StorageError> {
        Ok(self.try_get(column)?)
    }

    fn optional_bytes(&self, column: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.try_get(column)?)
    }

    fn bytes(&self, column: &str) -> Result<Vec<u8>, StorageError> {
        Ok(self.try_get(column)?)
    }

    fn flag(&self, column: &str) -> Result<bool, StorageError> {
        Ok(self.try_get(column)?)
    }
}

/// A sealed record from a row holding `key_id, nonce, ciphertext`.
pub fn sealed_from<R: SqlRow>(row: &R) -> Result<Sealed, StorageError> {
    Ok(Sealed {
        key_id: row.text("key_id")?,
        nonce: row.bytes("nonce")?,
        ciphertext: row.bytes("ciphertext")?,
    })
}

/// The grant behind an OpenID Connect access token, from an `oidc_grants` row.
pub fn grant_from<R: SqlRow>(row: &R) -> Result<OidcGrant, StorageError> {
    Ok(OidcGrant {
        token: parse_key(&row.text("token_key")?)?,
        client_id: row.text("client_id")?,
        scopes: words(&row.text("scopes")?),
        auth_time: row.optional_int("auth_time")?.unwrap_or(0),
    })
}

/// A token's metadata from a row holding [`TOKEN_COLUMNS`].
pub fn info_from<R: SqlRow>(row: &R) -> Result<TokenInfo, StorageError> {
    let key = row.text("token_key")?;
    let token_type = row.text("token_type")?;
    Ok(TokenInfo {
        token: parse_key(&key)?,
        username: row.text("username")?,
        token_type: token_type
            .parse()
            .map_err(|e| corrupt(&key, format!("{e}")))?,
        token_name: row.optional_text("token_name")?,
        scopes: parse_scopes(&row.text("scopes")?, &key)?,
        service: row.optional_text("service")?,
        created: row.optional_int("created")?.unwrap_or(0),
        last_used: row.optional_int("last_used")?,
        expires: row.optional_int("expires")?,
        parent: row
            .optional_text("parent")?
            .as_deref()
            .map(parse_key)
            .transpose()?,
    })
}

/// A history entry and its row id, from a row holding `id` and
/// [`HISTORY_COLUMNS`].
pub fn entry_from<R: SqlRow>(row: &R) -> Result<(i64, HistoryEntry), StorageError> {
    let key = row.text("token_key")?;
    let token_type = row.text("token_type")?;
    let action = row.text("action")?;
    let ip = row.optional_text("ip_address")?;
    let entry = HistoryEntry {
        token: parse_key(&key)?,
        username: row.text("username")?,
        token_type: token_type
            .parse()
            .map_err(|e| corrupt(&key, format!("{e}")))?,
        token_name: row.optional_text("token_name")?,
        parent: row
            .optional_text("parent")?
            .as_deref()
            .map(parse_key)
            .transpose()?,
        scopes: parse_scopes(&row.text("scopes")?, &key)?,
        service: row.optional_text("service")?,
        expires: row.optional_int("expires")?,
        actor: row.optional_text("actor")?,
        action: TokenChange::parse(&action)
            .ok_or_else(|| corrupt(&key, format!("action {action:?}")))?,
        old_token_name: row.optional_text("old_token_name")?,
        old_scopes: row
            .optional_text("old_scopes")?
            .as_deref()
            .map(|s| parse_scopes(s, &key))
            .transpose()?,
        old_expires: row.optional_int("old_expires")?,
        ip_address: ip
            .as_deref()
            .map(|ip| ip.parse().map_err(|_| corrupt(&key, format!("ip {ip:?}"))))
            .transpose()?,
        event_time: row.optional_int("event_time")?.unwrap_or(0),
    };
    Ok((row.int("id")?, entry))
}

/// A registered OpenID Connect client.
pub fn client_from<R: SqlRow>(row: &R) -> Result<OidcClientRecord, StorageError> {
    let client_id = row.text("client_id")?;
    let uris = row.text("redirect_uris")?;
    let secret = row.optional_bytes("secret_sha256")?;
    Ok(OidcClientRecord {
        secret_sha256: secret
            .map(|bytes| hash_from(bytes, &client_id))
            .transpose()?,
        redirect_uris: serde_json::from_str(&uris)
            .map_err(|e| corrupt(&client_id, format!("redirect_uris: {e}")))?,
        public: row.flag("public")?,
        name: row.optional_text("name")?,
        created: row.optional_int("created")?.unwrap_or(0),
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
