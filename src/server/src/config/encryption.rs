//! `[encryption]`: the keys that seal token data at rest, one active.

use std::collections::BTreeMap;
use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::Deserialize;

use super::{invalid, ConfigError};

/// Longest key id; ids are stored beside every ciphertext.
const MAX_KEY_ID_LEN: usize = 32;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEncryption {
    /// Id of the key new ciphertext is sealed with; must be in `keys`.
    active_key: String,
    /// Key id → 32 bytes in standard base64. Old keys stay listed until
    /// everything sealed with them has been re-encrypted.
    keys: BTreeMap<String, String>,
}

/// 32 bytes of AES-256 key. `Debug` prints a redaction.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyMaterial(pub [u8; 32]);

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyMaterial(<redacted>)")
    }
}

#[derive(Debug, Clone)]
pub struct EncryptionConfig {
    pub active_key: String,
    pub keys: BTreeMap<String, KeyMaterial>,
}

/// 32 bytes of key from standard base64.
pub(super) fn decode_key(encoded: &str) -> Option<KeyMaterial> {
    let bytes: [u8; 32] = STANDARD.decode(encoded.trim()).ok()?.try_into().ok()?;
    Some(KeyMaterial(bytes))
}

impl RawEncryption {
    pub(super) fn validate(self) -> Result<EncryptionConfig, ConfigError> {
        let mut keys = BTreeMap::new();
        for (id, encoded) in self.keys {
            let field = format!("encryption.keys.{id}");
            if !is_valid_key_id(&id) {
                return Err(invalid(
                    field,
                    format!("key id must be 1 to {MAX_KEY_ID_LEN} of A-Z a-z 0-9 _ -"),
                ));
            }
            let key = decode_key(&encoded)
                .ok_or_else(|| invalid(&field, "must be 32 bytes in standard base64"))?;
            keys.insert(id, key);
        }
        if !keys.contains_key(&self.active_key) {
            return Err(invalid(
                "encryption.active_key",
                format!("{:?} is not one of encryption.keys", self.active_key),
            ));
        }
        Ok(EncryptionConfig {
            active_key: self.active_key,
            keys,
        })
    }
}

fn is_valid_key_id(id: &str) -> bool {
    (1..=MAX_KEY_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
