//! Token data: everything known about a token, keyed by its public key and
//! sealed at rest. This store is the truth for whether a token exists.

use async_trait::async_trait;
use portcullis_core::{Group, Scope, Token, TokenKey, TokenSecret, TokenType};
use serde::{Deserialize, Serialize};

use super::cipher::{DataCipher, Sealed};
use super::StorageError;
use crate::model::TokenData;

/// The sealed form: every field but the key, which is the row's name.
#[derive(Serialize, Deserialize)]
struct SealedFields {
    secret: String,
    username: String,
    token_type: TokenType,
    scopes: Vec<Scope>,
    created: u64,
    expires: Option<u64>,
    name: Option<String>,
    email: Option<String>,
    uid: Option<u32>,
    gid: Option<u32>,
    groups: Vec<Group>,
    // Absent from data sealed before it existed.
    #[serde(default)]
    service: Option<String>,
}

impl TokenData {
    /// The JSON that gets sealed.
    pub fn to_plaintext(&self) -> Vec<u8> {
        let fields = SealedFields {
            secret: self.token.secret().expose(),
            username: self.username.clone(),
            token_type: self.token_type,
            scopes: self.scopes.clone(),
            created: self.created,
            expires: self.expires,
            name: self.name.clone(),
            email: self.email.clone(),
            uid: self.uid,
            gid: self.gid,
            groups: self.groups.clone(),
            service: self.service.clone(),
        };
        // Serializing plain fields to a Vec cannot fail.
        serde_json::to_vec(&fields).unwrap_or_default()
    }

    /// Rebuilds token data from the key it was stored under and its opened
    /// plaintext.
    pub fn from_plaintext(key: &TokenKey, plaintext: &[u8]) -> Result<Self, StorageError> {
        let corrupt = |reason: String| StorageError::Corrupt {
            key: key.to_string(),
            reason,
        };
        let f: SealedFields =
            serde_json::from_slice(plaintext).map_err(|e| corrupt(e.to_string()))?;
        let secret: TokenSecret = f.secret.parse().map_err(|_| corrupt("bad secret".into()))?;
        Ok(Self {
            token: Token::from_parts(key.clone(), secret),
            username: f.username,
            token_type: f.token_type,
            scopes: f.scopes,
            created: f.created,
            expires: f.expires,
            name: f.name,
            email: f.email,
            uid: f.uid,
            gid: f.gid,
            groups: f.groups,
            service: f.service,
        })
    }
}

/// Seals a token's data under the active key, bound to the token's key so
/// that a record copied under another key does not open.
pub fn seal(cipher: &DataCipher, data: &TokenData) -> Result<Sealed, StorageError> {
    let key = data.token.key();
    cipher
        .seal(key.as_str().as_bytes(), &data.to_plaintext())
        .map_err(|source| StorageError::Sealed {
            key: key.to_string(),
            source,
        })
}

/// Opens what [`seal`] sealed for `key`.
pub fn open(
    cipher: &DataCipher,
    key: &TokenKey,
    sealed: &Sealed,
) -> Result<TokenData, StorageError> {
    let plaintext = cipher
        .open(key.as_str().as_bytes(), sealed)
        .map_err(|source| StorageError::Sealed {
            key: key.to_string(),
            source,
        })?;
    TokenData::from_plaintext(key, &plaintext)
}

#[async_trait]
pub trait TokenDataStore: Send + Sync {
    /// Stores (or replaces) the data of a token: its first write, or a
    /// restore of a whole store.
    async fn store(&self, data: &TokenData) -> Result<(), StorageError>;
    /// Replaces the data of a token that still exists, atomically with any
    /// delete of it: a change racing a revocation either lands before it
    /// (and is deleted with the token) or finds nothing and writes nothing.
    /// False when there was no token. Every write after the first is this.
    async fn update(&self, data: &TokenData) -> Result<bool, StorageError>;
    /// The data stored under `key`, without any check of a secret: callers
    /// holding a user-supplied token must compare secrets themselves.
    async fn get(&self, key: &TokenKey) -> Result<Option<TokenData>, StorageError>;
    /// Removes a token's data; true if there was any.
    async fn delete(&self, key: &TokenKey) -> Result<bool, StorageError>;
    /// Removes every token's data.
    async fn delete_all(&self) -> Result<(), StorageError>;
    /// Every stored key.
    async fn list(&self) -> Result<Vec<TokenKey>, StorageError>;
    /// Re-seals every record under the active key; how many were sealed
    /// with another key before.
    async fn reseal_all(&self) -> Result<u64, StorageError>;
    /// Succeeds when the store can be reached.
    async fn ping(&self) -> Result<(), StorageError>;
    /// Succeeds when the store can be reached and its schema is the one
    /// this build needs. The embedded store migrates when it opens, so
    /// reaching it is enough.
    async fn ready(&self) -> Result<(), StorageError> {
        self.ping().await
    }
    /// Keys of tokens unexpired at `now` whose durable copy is missing from
    /// the fast copy that checks read; none for a store with one copy.
    async fn list_unrestored(&self, _now: u64) -> Result<Vec<TokenKey>, StorageError> {
        Ok(Vec::new())
    }
    /// The data under `key` as [`get`](Self::get) reads it, but writing
    /// nothing: a store with two copies does not restore the fast one. The
    /// audit's read.
    async fn peek(&self, key: &TokenKey) -> Result<Option<TokenData>, StorageError> {
        self.get(key).await
    }
}
