//! Names of the Redis keys, all under the configured prefix.

use portcullis_core::TokenKey;

#[derive(Debug, Clone)]
pub struct RedisKeys {
    prefix: String,
}

impl RedisKeys {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// A token's sealed data.
    pub fn token(&self, key: &TokenKey) -> String {
        format!("{}token:{key}", self.prefix)
    }

    /// The pattern every token key matches.
    pub fn all_tokens(&self) -> String {
        format!("{}token:*", self.prefix)
    }

    /// An authorization code, by the SHA-256 of the code.
    pub fn code(&self, code_sha256: &[u8; 32]) -> String {
        format!("{}code:{}", self.prefix, hex::encode(code_sha256))
    }

    /// Sorted set of code keys by expiry, for maintenance to count.
    pub fn codes_by_expiry(&self) -> String {
        format!("{}codes-by-expiry", self.prefix)
    }

    pub fn pending_login(&self, login_id: &str) -> String {
        format!("{}login:{login_id}", self.prefix)
    }

    pub fn pending_logins_by_expiry(&self) -> String {
        format!("{}logins-by-expiry", self.prefix)
    }
}
