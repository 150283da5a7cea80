//! Moving a whole store: every token (its sealed data and its metadata),
//! link, history entry, OpenID Connect client and grant, so that a
//! deployment can move between the embedded and the distributed store and
//! keep its tokens. Codes and pending logins live minutes and stay behind.

use std::collections::HashMap;

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use portcullis_core::TokenKey;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::cipher::{DataCipher, Sealed};
use super::{token_data, HistoryEntry, OidcClientRecord, OidcGrant, StorageError, TokenInfo};

/// A token's data exactly as stored: sealed, so that an export holds no
/// secret in the clear. The target must have the same encryption keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedRecord {
    pub token: TokenKey,
    pub key_id: String,
    #[serde(with = "base64_bytes")]
    pub nonce: Vec<u8>,
    #[serde(with = "base64_bytes")]
    pub ciphertext: Vec<u8>,
}

impl SealedRecord {
    pub fn new(token: TokenKey, sealed: Sealed) -> Self {
        Self {
            token,
            key_id: sealed.key_id,
            nonce: sealed.nonce,
            ciphertext: sealed.ciphertext,
        }
    }

    pub fn sealed(&self) -> Sealed {
        Sealed {
            key_id: self.key_id.clone(),
            nonce: self.nonce.clone(),
            ciphertext: self.ciphertext.clone(),
        }
    }
}

/// Everything a store exports, in an order that imports: history oldest
/// first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dump {
    pub data: Vec<SealedRecord>,
    pub tokens: Vec<TokenInfo>,
    pub history: Vec<HistoryEntry>,
    pub oidc_clients: Vec<OidcClientRecord>,
    pub oidc_grants: Vec<OidcGrant>,
}

impl Dump {
    /// When each token's data expires, read from the data itself; fails,
    /// naming the token, unless every record opens under `cipher`: an
    /// import must not store what the companion could never read.
    pub fn open_all(
        &self,
        cipher: &DataCipher,
    ) -> Result<HashMap<TokenKey, Option<u64>>, StorageError> {
        self.data
            .iter()
            .map(|r| {
                let data = token_data::open(cipher, &r.token, &r.sealed())?;
                Ok((r.token.clone(), data.expires))
            })
            .collect()
    }
}

#[async_trait]
pub trait TransferStore: Send + Sync {
    async fn export(&self) -> Result<Dump, StorageError>;
    /// Adds all of `dump` or, on any error, nothing. Tokens and clients
    /// that already exist are refused (`ImportConflict`), not overwritten.
    async fn import(&self, dump: &Dump) -> Result<(), StorageError>;
}

mod base64_bytes {
    use super::*;

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}
