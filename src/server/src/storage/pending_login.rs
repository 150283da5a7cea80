//! CLI logins waiting for a browser, after Boundary's pending tokens.

use async_trait::async_trait;
use portcullis_core::TokenKey;

use super::StorageError;
use crate::model::PendingLogin;

#[async_trait]
pub trait PendingLoginStore: Send + Sync {
    async fn add(&self, login: &PendingLogin) -> Result<(), StorageError>;
    async fn get(&self, login_id: &str) -> Result<Option<PendingLogin>, StorageError>;
    /// Records the approving session, if the login is still pending and
    /// unapproved; whether it was.
    async fn approve(&self, login_id: &str, session: &TokenKey) -> Result<bool, StorageError>;
    /// Removes an approved login and returns the approving session; of
    /// concurrent polls exactly one gets it.
    async fn take_approved(&self, login_id: &str) -> Result<Option<TokenKey>, StorageError>;
    /// Closes logins past their expiry that were never completed; how many.
    async fn delete_expired(&self, now: u64) -> Result<u64, StorageError>;
}
