//! Maintenance runs on one companion at a time: each run first takes this
//! lock and skips its turn when another holds it.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::OwnedMutexGuard;

use super::StorageError;

/// A lock being held, by whatever means the store holds it.
#[async_trait]
pub trait HeldLock: Send {
    async fn release(self: Box<Self>);
}

/// Held while maintenance runs. `release` lets the next run in at once;
/// a guard dropped without it (a panic) is released by the store soon after.
pub struct MaintenanceGuard(Box<dyn HeldLock>);

impl MaintenanceGuard {
    pub fn new(held: impl HeldLock + 'static) -> Self {
        Self(Box::new(held))
    }

    pub async fn release(self) {
        self.0.release().await
    }
}

#[async_trait]
pub trait MaintenanceLock: Send + Sync {
    /// The lock, or `None` while someone else holds it.
    async fn try_acquire(&self) -> Result<Option<MaintenanceGuard>, StorageError>;
}

/// For the embedded store, which one companion serves: runs in this
/// process do not overlap.
#[derive(Default)]
pub struct LocalMaintenanceLock(Arc<tokio::sync::Mutex<()>>);

struct LocalHeld(#[allow(dead_code)] OwnedMutexGuard<()>);

#[async_trait]
impl HeldLock for LocalHeld {
    async fn release(self: Box<Self>) {}
}

#[async_trait]
impl MaintenanceLock for LocalMaintenanceLock {
    async fn try_acquire(&self) -> Result<Option<MaintenanceGuard>, StorageError> {
        Ok(self
            .0
            .clone()
            .try_lock_owned()
            .ok()
            .map(|guard| MaintenanceGuard::new(LocalHeld(guard))))
    }
}
