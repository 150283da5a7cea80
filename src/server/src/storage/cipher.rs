//! AES-256-GCM sealing of stored data, with the id of the sealing key kept
//! beside each ciphertext so that old keys keep opening old data.

use std::collections::BTreeMap;
use std::sync::RwLock;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, Key, KeyInit, Nonce};

use crate::config::EncryptionConfig;
use crate::random::{self, RandomError};

pub const NONCE_LEN: usize = 12;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CipherError {
    #[error("sealed with key {0:?}, which is not configured")]
    UnknownKey(String),
    #[error("nonce is not {NONCE_LEN} bytes")]
    BadNonce,
    #[error("ciphertext does not authenticate under its key")]
    Forged,
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// One sealed value, as it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// Where fresh keys come from when data sealed with an unknown one is met.
pub type KeySource = Box<dyn Fn() -> Option<EncryptionConfig> + Send + Sync>;

struct Keyring {
    active: String,
    keys: BTreeMap<String, Aes256Gcm>,
}

impl Keyring {
    fn new(config: &EncryptionConfig) -> Self {
        let keys = config
            .keys
            .iter()
            .map(|(id, material)| {
                let key = Key::<Aes256Gcm>::from_slice(&material.0);
                (id.clone(), Aes256Gcm::new(key))
            })
            .collect();
        Self {
            active: config.active_key.clone(),
            keys,
        }
    }
}

pub struct DataCipher {
    keyring: RwLock<Keyring>,
    source: Option<KeySource>,
}

impl DataCipher {
    pub fn new(config: &EncryptionConfig) -> Self {
        Self {
            keyring: RwLock::new(Keyring::new(config)),
            source: None,
        }
    }

    /// Reloads the keys from `source` when data sealed with an unknown key
    /// is met, so that a key rotation elsewhere needs no restart here.
    pub fn reloading_from(mut self, source: KeySource) -> Self {
        self.source = Some(source);
        self
    }

    /// Id of the key new data is sealed with.
    pub fn active_key(&self) -> String {
        self.read().active.clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Keyring> {
        // A panic while holding the lock cannot leave a keyring half-made:
        // it is replaced whole. So a poisoned lock is still sound.
        self.keyring.read().unwrap_or_else(|p| p.into_inner())
    }

    fn reload(&self) -> bool {
        let Some(config) = self.source.as_ref().and_then(|source| source()) else {
            return false;
        };
        *self.keyring.write().unwrap_or_else(|p| p.into_inner()) = Keyring::new(&config);
        tracing::info!(active = %config.active_key, "reloaded encryption keys");
        true
    }

    /// Seals `plaintext` under the active key. `context` is authenticated but
    /// not stored: binding the row's key to its ciphertext means a row copied
    /// under another token key does not open.
    pub fn seal(&self, context: &[u8], plaintext: &[u8]) -> Result<Sealed, CipherError> {
        let keyring = self.read();
        let cipher = &keyring.keys[&keyring.active];
        let nonce: [u8; NONCE_LEN] = random::bytes()?;
        let ciphertext = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            .map_err(|_| CipherError::Forged)?;
        Ok(Sealed {
            key_id: keyring.active.clone(),
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    pub fn open(&self, context: &[u8], sealed: &Sealed) -> Result<Vec<u8>, CipherError> {
        let known = self.read().keys.contains_key(&sealed.key_id);
        if !known && !self.reload() {
            return Err(CipherError::UnknownKey(sealed.key_id.clone()));
        }
        let keyring = self.read();
        let cipher = keyring
            .keys
            .get(&sealed.key_id)
            .ok_or_else(|| CipherError::UnknownKey(sealed.key_id.clone()))?;
        if sealed.nonce.len() != NONCE_LEN {
            return Err(CipherError::BadNonce);
        }
        cipher
            .decrypt(
                Nonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: context,
                },
            )
            .map_err(|_| CipherError::Forged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KeyMaterial;

    fn cipher(active: &str, keys: &[(&str, u8)]) -> DataCipher {
        DataCipher::new(&EncryptionConfig {
            active_key: active.into(),
            keys: keys
                .iter()
                .map(|(id, byte)| (id.to_string(), KeyMaterial([*byte; 32])))
                .collect(),
        })
    }

    #[test]
    fn sealed_data_opens_and_hides_the_plaintext() {
        let c = cipher("k1", &[("k1", 1)]);
        let sealed = c.seal(b"row", b"the secret data").unwrap();
        assert_eq!(sealed.key_id, "k1");
        assert!(!sealed.ciphertext.windows(6).any(|w| w == b"secret"));
        assert_eq!(c.open(b"row", &sealed).unwrap(), b"the secret data");
    }

    #[test]
    fn each_seal_uses_a_fresh_nonce() {
        let c = cipher("k1", &[("k1", 1)]);
        let a = c.seal(b"row", b"same").unwrap();
        let b = c.seal(b"row", b"same").unwrap();
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn other_context_or_tampering_does_not_open() {
        let c = cipher("k1", &[("k1", 1)]);
        let sealed = c.seal(b"row-a", b"data").unwrap();
        assert_eq!(c.open(b"row-b", &sealed), Err(CipherError::Forged));
        let mut tampered = sealed.clone();
        tampered.ciphertext[0] ^= 1;
        assert_eq!(c.open(b"row-a", &tampered), Err(CipherError::Forged));
    }

    #[test]
    fn old_keys_open_what_they_sealed_and_unknown_keys_are_named() {
        let old = cipher("k1", &[("k1", 1)]);
        let sealed = old.seal(b"row", b"data").unwrap();
        let rotated = cipher("k2", &[("k1", 1), ("k2", 2)]);
        assert_eq!(rotated.open(b"row", &sealed).unwrap(), b"data");
        assert_eq!(rotated.seal(b"row", b"x").unwrap().key_id, "k2");
        let forgot = cipher("k2", &[("k2", 2)]);
        assert_eq!(
            forgot.open(b"row", &sealed),
            Err(CipherError::UnknownKey("k1".into()))
        );
    }

    #[test]
    fn an_unknown_key_is_looked_up_again_at_the_source() {
        let newer = cipher("k2", &[("k1", 1), ("k2", 2)]);
        let sealed = newer.seal(b"row", b"data").unwrap();
        let stale = cipher("k1", &[("k1", 1)]).reloading_from(Box::new(|| {
            Some(EncryptionConfig {
                active_key: "k2".into(),
                keys: [("k1", 1u8), ("k2", 2)]
                    .iter()
                    .map(|(id, b)| (id.to_string(), KeyMaterial([*b; 32])))
                    .collect(),
            })
        }));
        assert_eq!(stale.open(b"row", &sealed).unwrap(), b"data");
        assert_eq!(
            stale.active_key(),
            "k2",
            "and seals with the new active key"
        );
    }
}
