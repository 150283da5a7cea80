//! Export and import of the distributed store. PostgreSQL holds all of it,
//! so both are one PostgreSQL transaction; an import then fills Redis with
//! the live tokens (any it misses are restored on first use).

use std::sync::Arc;

use async_trait::async_trait;

use super::history::{insert_entry, lock_history};
use super::oidc::{client, insert_client, insert_grant};
use super::token_data::{cache, write_durable};
use super::token_metadata::insert;
use super::Engines;
use crate::clock::Clock;
use crate::model::TokenInfo;
use crate::storage::cipher::DataCipher;
use crate::storage::transfer::{existing, read_dump};
use crate::storage::{Dump, StorageError, TransferStore};

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

#[async_trait]
impl TransferStore for DistributedTransferStore {
    async fn export(&self) -> Result<Dump, StorageError> {
        // One snapshot of everything, however the store changes meanwhile.
        let mut tx = self.engines.pg.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        let dump = read_dump::<sqlx::Postgres>(&mut tx, client).await?;
        tx.commit().await?;
        Ok(dump)
    }

    async fn import(&self, dump: &Dump) -> Result<(), StorageError> {
        let expiries = dump.open_all(&self.cipher)?;
        let mut tx = self.engines.pg.begin().await?;
        lock_history(&mut *tx).await?;
        if let Some(what) = existing::<sqlx::Postgres>(&mut tx).await? {
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
