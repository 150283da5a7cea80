//! Maintenance runs on one companion at a time: each run first takes this
//! lock and skips its turn when another holds it.

use std::sync::Arc;

use async_trait::async_trait;

use super::StorageError;

/// Held while maintenance runs; dropping it lets the next run in.
pub struct MaintenanceGuard(#[allow(dead_code)] Box<dyn Send>);

impl MaintenanceGuard {
    pub fn holding(held: impl Send + 'static) -> Self {
        Self(Box::new(held))
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

#[async_trait]
impl MaintenanceLock for LocalMaintenanceLock {
    async fn try_acquire(&self) -> Result<Option<MaintenanceGuard>, StorageError> {
        Ok(self
            .0
            .clone()
            .try_lock_owned()
            .ok()
            .map(MaintenanceGuard::holding))
    }
}
