//! `[storage]`: where tokens are kept, the embedded SQLite file or the
//! distributed PostgreSQL and Redis.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use super::{invalid, ConfigError};

#[derive(Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase", deny_unknown_fields)]
pub(super) enum RawStorage {
    /// One SQLite file; a relative path is taken from the config file's folder.
    Embedded { path: PathBuf },
    /// PostgreSQL for what must last, Redis for what is read on every check.
    Distributed {
        /// `postgres://user@host/database`.
        database_url: String,
        /// `redis://host:port/db`.
        redis_url: String,
        /// Prefix of every Redis key, so that deployments can share a Redis.
        /// Default: `portcullis:`.
        #[serde(default = "default_key_prefix")]
        key_prefix: String,
        /// Apply pending database migrations at start-up; otherwise a
        /// companion refuses to start until `portcullis migrate` has run.
        /// Default: false.
        #[serde(default)]
        migrate_on_start: bool,
        /// Most PostgreSQL connections one companion holds. Default: 10.
        #[serde(default = "default_pool_size")]
        pool_size: u32,
        /// Longest wait for a connection or an answer, in seconds, before a
        /// request fails with 503. Default: 3.
        #[serde(default = "default_storage_timeout")]
        timeout_seconds: u64,
    },
}

fn default_key_prefix() -> String {
    "portcullis:".to_owned()
}

fn default_pool_size() -> u32 {
    10
}

fn default_storage_timeout() -> u64 {
    3
}

/// Where token data is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageConfig {
    Embedded { path: PathBuf },
    Distributed(DistributedConfig),
}

#[derive(Clone, PartialEq, Eq)]
pub struct DistributedConfig {
    pub database_url: String,
    pub redis_url: String,
    pub key_prefix: String,
    pub migrate_on_start: bool,
    pub pool_size: u32,
    pub timeout: Duration,
}

/// The URLs may carry passwords: shown without them.
impl fmt::Debug for DistributedConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DistributedConfig")
            .field("database_url", &without_password(&self.database_url))
            .field("redis_url", &without_password(&self.redis_url))
            .field("key_prefix", &self.key_prefix)
            .field("migrate_on_start", &self.migrate_on_start)
            .field("pool_size", &self.pool_size)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// `url` with any password replaced, for messages and logs.
pub fn without_password(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("redacted"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<not a URL>".to_owned(),
    }
}

impl RawStorage {
    /// Relative paths are taken from `base`, the configuration's folder.
    pub(super) fn validate(self, base: &Path) -> Result<StorageConfig, ConfigError> {
        Ok(match self {
            Self::Embedded { path } if path.as_os_str().is_empty() => {
                return Err(invalid("storage.path", "must not be empty"));
            }
            Self::Embedded { path } => StorageConfig::Embedded {
                path: base.join(path),
            },
            Self::Distributed {
                database_url,
                redis_url,
                key_prefix,
                migrate_on_start,
                pool_size,
                timeout_seconds,
            } => {
                let scheme_of = |url: &str| Url::parse(url).ok().map(|u| u.scheme().to_owned());
                if !matches!(
                    scheme_of(&database_url).as_deref(),
                    Some("postgres" | "postgresql")
                ) {
                    return Err(invalid("storage.database_url", "must be a postgres:// URL"));
                }
                if !matches!(scheme_of(&redis_url).as_deref(), Some("redis" | "rediss")) {
                    return Err(invalid(
                        "storage.redis_url",
                        "must be a redis:// or rediss:// URL",
                    ));
                }
                // No glob characters: the prefix is also a SCAN pattern.
                let prefix_ok = (1..=64).contains(&key_prefix.len())
                    && key_prefix
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b":-_./".contains(&b));
                if !prefix_ok {
                    return Err(invalid(
                        "storage.key_prefix",
                        "must be 1 to 64 of A-Z a-z 0-9 : - _ . /",
                    ));
                }
                for (field, value) in [
                    ("storage.pool_size", u64::from(pool_size)),
                    ("storage.timeout_seconds", timeout_seconds),
                ] {
                    if value == 0 {
                        return Err(invalid(field, "must be at least 1"));
                    }
                }
                StorageConfig::Distributed(DistributedConfig {
                    database_url,
                    redis_url,
                    key_prefix,
                    migrate_on_start,
                    pool_size,
                    timeout: Duration::from_secs(timeout_seconds),
                })
            }
        })
    }
}
