//! Export and import of the embedded store, each in one transaction.

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::{Acquire as _, Connection as _, SqlitePool};

use super::token_data::write_sealed;
use crate::storage::cipher::DataCipher;
use crate::storage::sql;
use crate::storage::transfer::{existing, read_dump};
use crate::storage::{Dump, StorageError, TransferStore};

pub struct SqliteTransferStore {
    pool: SqlitePool,
    cipher: Arc<DataCipher>,
}

impl SqliteTransferStore {
    pub fn new(pool: SqlitePool, cipher: Arc<DataCipher>) -> Self {
        Self { pool, cipher }
    }
}

#[async_trait]
impl TransferStore for SqliteTransferStore {
    async fn export(&self) -> Result<Dump, StorageError> {
        let mut conn = self.pool.acquire().await?;
        // One read transaction: a consistent snapshot.
        let mut tx = conn.begin().await?;
        let dump = read_dump::<sqlx::Sqlite>(&mut tx).await?;
        tx.commit().await?;
        Ok(dump)
    }

    async fn import(&self, dump: &Dump) -> Result<(), StorageError> {
        dump.open_all(&self.cipher)?;
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        if let Some(what) = existing::<sqlx::Sqlite>(&mut tx).await? {
            return Err(StorageError::ImportConflict(what));
        }
        for record in &dump.data {
            write_sealed(&mut *tx, &record.token, &record.sealed()).await?;
        }
        sql::sqlite::import_records(&mut tx, dump).await?;
        tx.commit().await?;
        Ok(())
    }
}
