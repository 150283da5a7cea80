//! Export and import of the distributed store. PostgreSQL holds all of it,
//! so both are one PostgreSQL transaction; an import then fills Redis with
//! the live tokens (any it misses are restored on first use).

use std::sync::Arc;

use async_trait::async_trait;

use super::history::lock_history;
use super::token_data::{cache, write_durable};
use super::Engines;
use crate::clock::Clock;
use crate::storage::cipher::DataCipher;
use crate::storage::sql;
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
        let dump = read_dump::<sqlx::Postgres>(&mut tx).await?;
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
        sql::postgres::import_records(&mut tx, dump).await?;
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
