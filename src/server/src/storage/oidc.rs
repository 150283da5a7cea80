//! What the OpenID Connect provider keeps: registered clients, authorization
//! codes (by hash) and the grants behind the access tokens it issued.

use async_trait::async_trait;
use portcullis_core::TokenKey;
use serde::{Deserialize, Serialize};

use super::StorageError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcClientRecord {
    pub client_id: String,
    /// `None` for a public client.
    pub secret_sha256: Option<[u8; 32]>,
    pub redirect_uris: Vec<String>,
    pub public: bool,
    pub name: Option<String>,
    pub created: u64,
}

/// An authorization code, stored by the SHA-256 of the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCode {
    pub code_sha256: [u8; 32],
    pub client_id: String,
    pub redirect_uri: String,
    pub session: TokenKey,
    pub scopes: Vec<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub auth_time: u64,
    pub expires: u64,
}

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

/// The client and OpenID scopes behind an issued access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcGrant {
    pub token: TokenKey,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub auth_time: u64,
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
