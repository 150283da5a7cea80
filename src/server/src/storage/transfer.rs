//! Moving a whole store: every token (its sealed data and its metadata),
//! link, history entry, OpenID Connect client and grant, so that a
//! deployment can move between the embedded and the distributed store and
//! keep its tokens. Codes and pending logins live minutes and stay behind.

use std::collections::HashMap;

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use portcullis_core::TokenKey;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sqlx::{Database, Executor, IntoArguments};

use super::cipher::{DataCipher, Sealed};
use super::rows::{
    client_from, entry_from, grant_from, info_from, parse_key, sealed_from, SqlRow,
    HISTORY_COLUMNS, TOKEN_COLUMNS,
};
use super::{token_data, StorageError};
use crate::model::{HistoryEntry, OidcClientRecord, OidcGrant, TokenInfo};

/// A token's data exactly as stored: sealed, so that an export holds no
/// secret in the clear. The target must have the same encryption keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedRecord {
    pub token: TokenKey,
    pub key_id: String,
    #[serde(with = "base64_bytes")]
    pub nonce: Vec<u8>,
    #[serde(with = "base64_bytes")]
    pub ciphertext: Vec<u8>,
}

impl SealedRecord {
    pub fn new(token: TokenKey, sealed: Sealed) -> Self {
        Self {
            token,
            key_id: sealed.key_id,
            nonce: sealed.nonce,
            ciphertext: sealed.ciphertext,
        }
    }

    pub fn sealed(&self) -> Sealed {
        Sealed {
            key_id: self.key_id.clone(),
            nonce: self.nonce.clone(),
            ciphertext: self.ciphertext.clone(),
        }
    }
}

/// Everything a store exports, in an order that imports: history oldest
/// first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dump {
    pub data: Vec<SealedRecord>,
    pub tokens: Vec<TokenInfo>,
    pub history: Vec<HistoryEntry>,
    pub oidc_clients: Vec<OidcClientRecord>,
    pub oidc_grants: Vec<OidcGrant>,
}

impl Dump {
    /// When each token's data expires, read from the data itself; fails,
    /// naming the token, unless every record opens under `cipher`: an
    /// import must not store what the companion could never read.
    pub fn open_all(
        &self,
        cipher: &DataCipher,
    ) -> Result<HashMap<TokenKey, Option<u64>>, StorageError> {
        self.data
            .iter()
            .map(|r| {
                let data = token_data::open(cipher, &r.token, &r.sealed())?;
                Ok((r.token.clone(), data.expires))
            })
            .collect()
    }
}

/// Reads every table an export holds, which both engines name and shape
/// alike, on `conn` (a transaction, for one snapshot).
pub async fn read_dump<DB>(conn: &mut DB::Connection) -> Result<Dump, StorageError>
where
    DB: Database,
    DB::Row: SqlRow,
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
{
    let data = sqlx::query::<DB>(
        "SELECT token_key, key_id, nonce, ciphertext FROM token_data ORDER BY token_key",
    )
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|row| {
        Ok(SealedRecord::new(
            parse_key(&row.text("token_key")?)?,
            sealed_from(row)?,
        ))
    })
    .collect::<Result<_, StorageError>>()?;
    let tokens = sqlx::query::<DB>(&format!(
        "SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created, token_key"
    ))
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(info_from)
    .collect::<Result<_, _>>()?;
    let history = sqlx::query::<DB>(&format!(
        "SELECT id, {HISTORY_COLUMNS} FROM token_history ORDER BY id"
    ))
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|row| entry_from(row).map(|(_, e)| e))
    .collect::<Result<_, _>>()?;
    let oidc_clients = sqlx::query::<DB>("SELECT * FROM oidc_clients ORDER BY client_id")
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(client_from)
        .collect::<Result<_, _>>()?;
    let oidc_grants = sqlx::query::<DB>("SELECT * FROM oidc_grants ORDER BY token_key")
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(grant_from)
        .collect::<Result<_, _>>()?;
    Ok(Dump {
        data,
        tokens,
        history,
        oidc_clients,
        oidc_grants,
    })
}

/// What an import into the store behind `conn` would collide with; `None`
/// when it is empty.
pub async fn existing<DB>(conn: &mut DB::Connection) -> Result<Option<String>, StorageError>
where
    DB: Database,
    DB::Row: SqlRow,
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
{
    for (table, what) in [
        ("token_data", "tokens"),
        ("tokens", "token metadata"),
        ("token_history", "history entries"),
        ("oidc_clients", "OpenID Connect clients"),
    ] {
        let row = sqlx::query::<DB>(&format!("SELECT COUNT(*) AS n FROM {table}"))
            .fetch_one(&mut *conn)
            .await?;
        match row.int("n")? {
            0 => {}
            n => return Ok(Some(format!("{n} {what}"))),
        }
    }
    Ok(None)
}

#[async_trait]
pub trait TransferStore: Send + Sync {
    async fn export(&self) -> Result<Dump, StorageError>;
    /// Adds all of `dump` or, on any error, nothing. Tokens and clients
    /// that already exist are refused (`ImportConflict`), not overwritten.
    async fn import(&self, dump: &Dump) -> Result<(), StorageError>;
}

mod base64_bytes {
    use super::*;

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}
