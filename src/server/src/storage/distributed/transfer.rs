//! Export and import of the distributed store. PostgreSQL holds all of it,
//! so both are one PostgreSQL transaction; an import then fills Redis with
//! the live tokens (any it misses are restored on first use).

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::{PgConnection, Row};

use super::history::{insert_entry, lock_history};
use super::oidc::{client, insert_client, insert_grant};
use super::token_data::{cache, sealed_from, write_durable};
use super::token_metadata::insert;
use super::Engines;
use crate::clock::Clock;
use crate::storage::cipher::DataCipher;
use crate::storage::rows::{
    entry_from, info_from, parse_key, to_u64, words, HISTORY_COLUMNS, TOKEN_COLUMNS,
};
use crate::storage::{Dump, OidcGrant, SealedRecord, StorageError, TokenInfo, TransferStore};

pub struct DistributedTransferStore {
    engines: Engines,
    cipher: Arc<DataCipher>,
    clock: Arc<dyn Clock>,
}

impl DistributedTransferStore {
    pub fn new(engines: Engines, cipher: Arc<DataCipher>, clock: Arc<dyn Clock>) -> Self {
        Self {
            engines,
            cipher,
            clock,
        }
    }
}

/// What an import would collide with; `None` for an empty store.
async fn existing(conn: &mut PgConnection) -> Result<Option<String>, StorageError> {
    for (table, what) in [
        ("token_data", "tokens"),
        ("tokens", "token metadata"),
        ("token_history", "history entries"),
        ("oidc_clients", "OpenID Connect clients"),
    ] {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&mut *conn)
            .await?;
        if n > 0 {
            return Ok(Some(format!("{n} {what}")));
        }
    }
    Ok(None)
}

#[async_trait]
impl TransferStore for DistributedTransferStore {
    async fn export(&self) -> Result<Dump, StorageError> {
        // One snapshot of everything, however the store changes meanwhile.
        let mut tx = self.engines.pg.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        let data = sqlx::query(
            "SELECT token_key, key_id, nonce, ciphertext FROM token_data ORDER BY token_key",
        )
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|row| {
            Ok(SealedRecord::new(
                parse_key(row.try_get("token_key")?)?,
                sealed_from(row)?,
            ))
        })
        .collect::<Result<_, StorageError>>()?;
        let tokens = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created, token_key"
        ))
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(info_from)
        .collect::<Result<_, _>>()?;
        let history = sqlx::query(&format!(
            "SELECT id, {HISTORY_COLUMNS} FROM token_history ORDER BY id"
        ))
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|row| entry_from(row).map(|(_, e)| e))
        .collect::<Result<_, _>>()?;
        let oidc_clients = sqlx::query("SELECT * FROM oidc_clients ORDER BY client_id")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(client)
            .collect::<Result<_, _>>()?;
        let oidc_grants = sqlx::query("SELECT * FROM oidc_grants ORDER BY token_key")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| {
                Ok(OidcGrant {
                    token: parse_key(row.try_get("token_key")?)?,
                    client_id: row.try_get("client_id")?,
                    scopes: words(row.try_get("scopes")?),
                    auth_time: to_u64(row.try_get("auth_time")?).unwrap_or(0),
                })
            })
            .collect::<Result<_, StorageError>>()?;
        tx.commit().await?;
        Ok(Dump {
            data,
            tokens,
            history,
            oidc_clients,
            oidc_grants,
        })
    }

    async fn import(&self, dump: &Dump) -> Result<(), StorageError> {
        let expiries = dump.open_all(&self.cipher)?;
        let mut tx = self.engines.pg.begin().await?;
        lock_history(&mut *tx).await?;
        if let Some(what) = existing(&mut tx).await? {
            return Err(StorageError::ImportConflict(what));
        }
        for record in &dump.data {
            let expires = expiries[&record.token];
            write_durable(&mut *tx, &record.token, &record.sealed(), expires).await?;
        }
        // Parents may come after their children: links are set once every
        // token is in.
        for info in &dump.tokens {
            let unlinked = TokenInfo {
                parent: None,
                ..info.clone()
            };
            insert(&mut tx, &unlinked).await?;
        }
        for info in dump.tokens.iter().filter(|i| i.parent.is_some()) {
            sqlx::query("UPDATE tokens SET parent = $1 WHERE token_key = $2")
                .bind(info.parent.as_ref().map(|p| p.as_str()))
                .bind(info.token.as_str())
                .execute(&mut *tx)
                .await?;
        }
        for entry in &dump.history {
            insert_entry(&mut *tx, entry).await?;
        }
        for client in &dump.oidc_clients {
            insert_client(&mut *tx, client).await?;
        }
        for grant in &dump.oidc_grants {
            insert_grant(&mut *tx, grant).await?;
        }
        tx.commit().await?;
        let now = self.clock.now();
        for record in &dump.data {
            let expires = expiries[&record.token];
            if let Err(e) =
                cache(&self.engines, &record.token, &record.sealed(), expires, now).await
            {
                tracing::warn!(error = %e, "imported tokens not all in Redis; first use restores them");
                break;
            }
        }
        Ok(())
    }
}
