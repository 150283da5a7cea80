//! Export and import of the embedded store, each in one transaction.

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::{Acquire as _, Connection as _, SqlitePool};

use super::history::insert_entry;
use super::oidc::{client, insert_client, insert_grant};
use super::token_data::write_sealed;
use super::token_metadata::insert;
use crate::storage::cipher::DataCipher;
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
        let dump = read_dump::<sqlx::Sqlite>(&mut tx, client).await?;
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
        // Parents may come after their children: links are set once every
        // token is in.
        for info in &dump.tokens {
            let unlinked = crate::model::TokenInfo {
                parent: None,
                ..info.clone()
            };
            insert(tx.acquire().await?, &unlinked).await?;
        }
        for info in dump.tokens.iter().filter(|i| i.parent.is_some()) {
            sqlx::query("UPDATE tokens SET parent = ? WHERE token_key = ?")
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
        Ok(())
    }
}
