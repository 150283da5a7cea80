//! The maintenance lock across replicas: a PostgreSQL session advisory
//! lock on a connection of its own, out of the pool. Released by unlocking
//! and closing the connection; if the replica holding it dies, its session
//! ends and the lock goes with it.

use async_trait::async_trait;
use sqlx::{Connection as _, PgConnection, PgPool};

use crate::storage::maintenance_lock::HeldLock;
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

struct PgHeld(PgConnection);

#[async_trait]
impl HeldLock for PgHeld {
    async fn release(self: Box<Self>) {
        let mut conn = self.0;
        let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(MAINTENANCE_LOCK)
            .execute(&mut conn)
            .await;
        if let Err(e) = unlocked {
            tracing::warn!(error = %e, "could not unlock maintenance; closing its session");
        }
        // Closing ends the session, which drops the lock in any case.
        let _ = conn.close().await;
    }
}

#[async_trait]
impl MaintenanceLock for PgMaintenanceLock {
    async fn try_acquire(&self) -> Result<Option<MaintenanceGuard>, StorageError> {
        // Out of the pool: a pooled session would keep the lock after use.
        let mut conn = self.pool.acquire().await?.detach();
        let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(MAINTENANCE_LOCK)
            .fetch_one(&mut conn)
            .await?;
        if !taken {
            let _ = conn.close().await;
            return Ok(None);
        }
        Ok(Some(MaintenanceGuard::new(PgHeld(conn))))
    }
}
