//! What the OpenID Connect provider keeps: registered clients, authorization
//! codes (by hash) and the grants behind the access tokens it issued.

use async_trait::async_trait;
use portcullis_core::TokenKey;

use super::StorageError;
use crate::model::{AuthorizationCode, OidcClientRecord, OidcGrant};

/// What redeeming a code found.
#[derive(Debug, PartialEq, Eq)]
pub enum Redemption {
    /// The first redemption: the code, now spent.
    First(AuthorizationCode),
    /// Redeemed before, and what that redemption issued, if it got so far.
    Replayed {
        issued: Option<TokenKey>,
    },
    Unknown,
}

#[async_trait]
pub trait OidcStore: Send + Sync {
    /// Fails with `DuplicateClient` if the id is taken.
    async fn add_client(&self, client: &OidcClientRecord) -> Result<(), StorageError>;
    async fn get_client(&self, client_id: &str) -> Result<Option<OidcClientRecord>, StorageError>;
    async fn list_clients(&self) -> Result<Vec<OidcClientRecord>, StorageError>;
    async fn delete_client(&self, client_id: &str) -> Result<bool, StorageError>;

    async fn add_code(&self, code: &AuthorizationCode) -> Result<(), StorageError>;
    /// Spends the code atomically: of concurrent redemptions exactly one
    /// gets `First`.
    async fn redeem_code(&self, code_sha256: &[u8; 32]) -> Result<Redemption, StorageError>;
    /// Records the access token a code's first redemption issued, with the
    /// grant behind it; false (and nothing recorded) if the code was
    /// replayed meanwhile.
    async fn record_grant(
        &self,
        code_sha256: &[u8; 32],
        grant: &OidcGrant,
    ) -> Result<bool, StorageError>;
    async fn get_grant(&self, token: &TokenKey) -> Result<Option<OidcGrant>, StorageError>;
    /// Removes codes past their expiry; how many.
    async fn delete_expired_codes(&self, now: u64) -> Result<u64, StorageError>;
}
