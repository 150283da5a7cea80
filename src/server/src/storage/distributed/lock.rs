//! The maintenance lock across replicas: a PostgreSQL advisory lock held by
//! an open transaction, so that it goes when the transaction ends, even if
//! the replica holding it dies.

use async_trait::async_trait;
use sqlx::PgPool;

use crate::storage::{MaintenanceGuard, MaintenanceLock, StorageError};

/// Names the maintenance lock among advisory locks.
const MAINTENANCE_LOCK: i64 = 0x706f_7274_6d61_696e;

pub struct PgMaintenanceLock {
    pool: PgPool,
}

impl PgMaintenanceLock {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl MaintenanceLock for PgMaintenanceLock {
    async fn try_acquire(&self) -> Result<Option<MaintenanceGuard>, StorageError> {
        let mut tx = self.pool.begin().await?;
        let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(MAINTENANCE_LOCK)
            .fetch_one(&mut *tx)
            .await?;
        // Dropping the transaction rolls it back, which releases the lock.
        Ok(taken.then(|| MaintenanceGuard::holding(tx)))
    }
}
