//! The companion's configuration: one TOML file, typed and validated at load
//! with errors that name the field. Defaults are given beside each field.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ipnet::IpNet;
use portcullis_core::challenge::is_valid_realm;
use portcullis_core::{Scope, Token};
use serde::Deserialize;
use url::Url;

mod openid;

pub use openid::{
    generate_signing_key, ConfiguredClient, LoginConfig, ProviderConfig, Secret, SigningKey,
};

/// Longest key id; ids are stored beside every ciphertext.
const MAX_KEY_ID_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write configuration file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("configuration field `{field}`: {reason}")]
    Invalid { field: String, reason: String },
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// Address the HTTP server listens on. Default: 127.0.0.1:8300.
    #[serde(default = "default_listen")]
    listen: SocketAddr,
    /// Address of the ingress listener: the checks (`/ingress/auth`,
    /// `/ingress/ext-authz`), the change feed and `/metrics`, none of which
    /// the public listener serves. Only the proxy's network may reach it:
    /// whoever can, can ask for delegated tokens. Default: 127.0.0.1:8303.
    #[serde(default = "default_ingress_listen")]
    ingress_listen: SocketAddr,
    /// Longest time a client may take to send a request's headers, on
    /// either listener, in seconds. Default: 10.
    #[serde(default = "default_header_read_timeout")]
    header_read_timeout_seconds: u64,
    /// Longest time a request may take to be answered, reading its body
    /// included, in seconds; then 503. Default: 30.
    #[serde(default = "default_request_timeout")]
    request_timeout_seconds: u64,
    /// Most connections each listener serves at once; more wait to be
    /// accepted. Default: 1024.
    #[serde(default = "default_max_connections")]
    max_connections: usize,
    /// The URL browsers and clients reach the companion at: the OpenID
    /// Connect issuer and the base of every URL the companion hands out.
    /// Default: http://<listen>.
    public_url: Option<String>,
    /// Realm named in every `WWW-Authenticate` challenge. Default: portcullis.
    #[serde(default = "default_realm")]
    realm: String,
    /// Admin token for the API; never accepted at the ingress. Default: none.
    bootstrap_token: Option<String>,
    /// Longest time a check answer may be cached by the filter, in seconds.
    /// Default: 300.
    #[serde(default = "default_cache_ttl")]
    check_cache_ttl_seconds: u64,
    /// Lifetime of session tokens, in seconds. Default: 30 days.
    #[serde(default = "default_session_lifetime")]
    session_lifetime_seconds: u64,
    /// Boundary's idle staleness: a token unused for longer is invalid and
    /// removed. Default: none (tokens never go stale).
    time_to_stale_seconds: Option<u64>,
    /// `last_used` is written at most once per this many seconds. Default: 60.
    #[serde(default = "default_last_used_interval")]
    last_used_interval_seconds: u64,
    /// History older than this many days is dropped by maintenance. Default: 365.
    #[serde(default = "default_history_retention_days")]
    history_retention_days: u64,
    /// Seconds between the server's maintenance runs. Default: 300.
    #[serde(default = "default_maintenance_interval")]
    maintenance_interval_seconds: u64,
    /// Known scopes and their descriptions; tokens may hold only these.
    /// Default: the scopes listed in `default_scopes`.
    #[serde(default = "default_scopes")]
    scopes: BTreeMap<String, String>,
    /// Proxies whose `X-Forwarded-For` is believed when recording a
    /// client's address in history. Default: none (the peer is the client).
    #[serde(default)]
    trusted_proxies: Vec<IpNet>,
    /// The session cookie. Default: none (no cookies are made).
    session: Option<RawSession>,
    /// Login through an upstream OpenID Connect provider. Default: none.
    login: Option<openid::RawLogin>,
    /// The OpenID Connect provider for downstream applications. Default: off.
    oidc_server: Option<openid::RawProvider>,
    storage: RawStorage,
    encryption: RawEncryption,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSession {
    /// Name of the cookie. Default: portcullis_session.
    #[serde(default = "default_cookie_name")]
    cookie_name: String,
    /// 32 bytes in standard base64, shared with the filter, which opens
    /// the cookie itself.
    key: String,
    /// The cookie's Domain attribute. Default: none (this host only).
    domain: Option<String>,
    /// Mark the cookie Secure (HTTPS only). Default: true; false only for
    /// plain-http development.
    #[serde(default = "default_secure")]
    secure: bool,
    /// Where `/logout` sends the browser afterwards. Default: /.
    #[serde(default = "default_logout_url")]
    logout_url: String,
}

fn default_secure() -> bool {
    true
}

fn default_logout_url() -> String {
    "/".to_owned()
}

fn default_cookie_name() -> String {
    "portcullis_session".to_owned()
}

/// The session cookie: its name and the key that seals it.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub cookie_name: String,
    pub key: KeyMaterial,
    pub domain: Option<String>,
    pub secure: bool,
    pub logout_url: String,
}

fn default_session_lifetime() -> u64 {
    30 * 24 * 3600
}

fn default_last_used_interval() -> u64 {
    60
}

fn default_history_retention_days() -> u64 {
    365
}

fn default_maintenance_interval() -> u64 {
    300
}

/// Scopes every installation starts with.
pub fn default_scopes() -> BTreeMap<String, String> {
    [
        ("admin:token", "Create and manage any user's tokens"),
        ("admin:oidc", "Register and remove OpenID Connect clients"),
        ("user:token", "Create and manage your own user tokens"),
        ("read:all", "Read access to every service"),
        ("write:all", "Write access to every service"),
        ("exec:notebook", "Run notebooks"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8300))
}

pub fn default_ingress_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8303))
}

fn default_header_read_timeout() -> u64 {
    10
}

fn default_request_timeout() -> u64 {
    30
}

fn default_max_connections() -> usize {
    1024
}

fn default_realm() -> String {
    "portcullis".to_owned()
}

fn default_cache_ttl() -> u64 {
    300
}

#[derive(Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase", deny_unknown_fields)]
enum RawStorage {
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEncryption {
    /// Id of the key new ciphertext is sealed with; must be in `keys`.
    active_key: String,
    /// Key id → 32 bytes in standard base64. Old keys stay listed until
    /// everything sealed with them has been re-encrypted.
    keys: BTreeMap<String, String>,
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

/// The token rules that configuration sets.
#[derive(Debug, Clone)]
pub struct TokenPolicy {
    pub known_scopes: BTreeMap<Scope, String>,
    pub session_lifetime: u64,
    pub time_to_stale: Option<u64>,
    pub last_used_interval: u64,
    pub history_retention: u64,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was loaded from, if any.
    pub source: Option<PathBuf>,
    pub listen: SocketAddr,
    pub ingress_listen: SocketAddr,
    pub header_read_timeout: Duration,
    pub request_timeout: Duration,
    pub max_connections: usize,
    /// Without a trailing slash.
    pub public_url: String,
    pub realm: String,
    pub bootstrap_token: Option<Token>,
    pub check_cache_ttl: Duration,
    pub policy: TokenPolicy,
    pub maintenance_interval: Duration,
    pub trusted_proxies: Vec<IpNet>,
    pub session: Option<SessionConfig>,
    pub login: Option<LoginConfig>,
    pub oidc_server: Option<ProviderConfig>,
    pub storage: StorageConfig,
    pub encryption: EncryptionConfig,
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut config = Self::from_toml(&text, base).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })?;
        config.source = Some(path.to_owned());
        Ok(config)
    }

    /// Parses configuration text; relative paths are resolved against `base`.
    pub fn from_toml(text: &str, base: &Path) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::new(),
            message: e.to_string(),
        })?;
        raw.validate(base)
    }
}

/// Whether two listeners would be one socket (port 0 picks a free port
/// for each): the ingress must never be reachable where the public API is.
fn same_socket(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

impl RawConfig {
    fn validate(self, base: &Path) -> Result<Config, ConfigError> {
        if same_socket(self.listen, self.ingress_listen) {
            return Err(invalid(
                "ingress_listen",
                "must differ from listen: the ingress is for the proxy only",
            ));
        }
        if !is_valid_realm(&self.realm) {
            return Err(invalid("realm", "must be non-empty printable ASCII"));
        }
        let bootstrap_token = self
            .bootstrap_token
            .map(|t| {
                // The parse error is safe to show; the value never is.
                t.parse::<Token>()
                    .map_err(|e| invalid("bootstrap_token", format!("not a Portcullis token: {e}")))
            })
            .transpose()?;
        let mut known_scopes = BTreeMap::new();
        for (name, description) in self.scopes {
            let scope: Scope = name
                .parse()
                .map_err(|e| invalid(format!("scopes.{name}"), format!("{e}")))?;
            known_scopes.insert(scope, description);
        }
        // Bounded above too: every one is added to the clock somewhere.
        const DAY: u64 = 24 * 3600;
        const TEN_YEARS: u64 = 3650 * DAY;
        for (field, value, most) in [
            ("check_cache_ttl_seconds", self.check_cache_ttl_seconds, DAY),
            (
                "session_lifetime_seconds",
                self.session_lifetime_seconds,
                TEN_YEARS,
            ),
            (
                "last_used_interval_seconds",
                self.last_used_interval_seconds,
                TEN_YEARS,
            ),
            (
                "history_retention_days",
                self.history_retention_days,
                36_500,
            ),
            (
                "header_read_timeout_seconds",
                self.header_read_timeout_seconds,
                3600,
            ),
            (
                "request_timeout_seconds",
                self.request_timeout_seconds,
                3600,
            ),
            ("max_connections", self.max_connections as u64, 1_000_000),
            (
                "maintenance_interval_seconds",
                self.maintenance_interval_seconds,
                DAY,
            ),
            (
                "time_to_stale_seconds",
                self.time_to_stale_seconds.unwrap_or(1),
                TEN_YEARS,
            ),
        ] {
            if !(1..=most).contains(&value) {
                return Err(invalid(field, format!("must be from 1 to {most}")));
            }
        }
        let storage = match self.storage {
            RawStorage::Embedded { path } if path.as_os_str().is_empty() => {
                return Err(invalid("storage.path", "must not be empty"));
            }
            RawStorage::Embedded { path } => StorageConfig::Embedded {
                path: base.join(path),
            },
            RawStorage::Distributed {
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
        };
        let public_url = match &self.public_url {
            None => Url::parse(&format!("http://{}", self.listen)).ok(),
            Some(text) => Url::parse(text.trim_end_matches('/')).ok().filter(|u| {
                matches!(u.scheme(), "https" | "http")
                    && u.has_host()
                    && u.query().is_none()
                    && u.fragment().is_none()
            }),
        }
        .ok_or_else(|| {
            invalid(
                "public_url",
                "must be an http(s) URL without query or fragment",
            )
        })?;
        let login = match self.login {
            Some(_) if self.session.is_none() => {
                return Err(invalid("login", "needs a [session] to keep logins in"))
            }
            Some(raw) => Some(raw.validate(&public_url, &known_scopes)?),
            None => None,
        };
        if self.oidc_server.is_some() && self.session.is_none() {
            return Err(invalid(
                "oidc_server",
                "needs a [session] to know who is logged in",
            ));
        }
        Ok(Config {
            source: None,
            listen: self.listen,
            ingress_listen: self.ingress_listen,
            header_read_timeout: Duration::from_secs(self.header_read_timeout_seconds),
            request_timeout: Duration::from_secs(self.request_timeout_seconds),
            max_connections: self.max_connections,
            public_url: public_url.as_str().trim_end_matches('/').to_owned(),
            realm: self.realm,
            bootstrap_token,
            check_cache_ttl: Duration::from_secs(self.check_cache_ttl_seconds),
            policy: TokenPolicy {
                known_scopes,
                session_lifetime: self.session_lifetime_seconds,
                time_to_stale: self.time_to_stale_seconds,
                last_used_interval: self.last_used_interval_seconds,
                history_retention: self.history_retention_days * 24 * 3600,
            },
            maintenance_interval: Duration::from_secs(self.maintenance_interval_seconds),
            trusted_proxies: self.trusted_proxies,
            session: self.session.map(RawSession::validate).transpose()?,
            login,
            oidc_server: self.oidc_server.map(|p| p.validate()).transpose()?,
            storage,
            encryption: self.encryption.validate()?,
        })
    }
}

impl RawSession {
    fn validate(self) -> Result<SessionConfig, ConfigError> {
        // RFC 6265 cookie-name: a token (no separators, no controls).
        let valid_name = !self.cookie_name.is_empty()
            && self
                .cookie_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !valid_name {
            return Err(invalid(
                "session.cookie_name",
                "must be an RFC 6265 cookie name",
            ));
        }
        let plain = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_graphic() && b != b';' && b != b',')
        };
        if self.domain.as_deref().is_some_and(|d| !plain(d)) {
            return Err(invalid("session.domain", "must be a host name"));
        }
        let local = self.logout_url.starts_with('/') && !self.logout_url.starts_with("//");
        let absolute =
            self.logout_url.starts_with("https://") || self.logout_url.starts_with("http://");
        if !(local || absolute) || !plain(&self.logout_url) {
            return Err(invalid(
                "session.logout_url",
                "must be an http(s) URL or a path starting with one /",
            ));
        }
        Ok(SessionConfig {
            domain: self.domain,
            secure: self.secure,
            logout_url: self.logout_url,
            cookie_name: self.cookie_name,
            key: decode_key(&self.key)
                .ok_or_else(|| invalid("session.key", "must be 32 bytes in standard base64"))?,
        })
    }
}

/// 32 bytes of key from standard base64.
fn decode_key(encoded: &str) -> Option<KeyMaterial> {
    let bytes: [u8; 32] = STANDARD.decode(encoded.trim()).ok()?.try_into().ok()?;
    Some(KeyMaterial(bytes))
}

impl RawEncryption {
    fn validate(self) -> Result<EncryptionConfig, ConfigError> {
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

/// Adds `key` to the file's `[encryption.keys]` under a new id and makes it
/// the active key, keeping the rest of the file (comments included). The
/// file is replaced atomically and stays mode 0600. Returns the new id.
pub fn add_active_key(path: &Path, key: [u8; 32]) -> Result<String, ConfigError> {
    let read_error = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    let text = std::fs::read_to_string(path).map_err(read_error)?;
    // Validate first: never rotate a configuration that would not load.
    Config::from_toml(&text, path.parent().unwrap_or(Path::new(".")))?;
    let mut doc: toml_edit::DocumentMut =
        text.parse()
            .map_err(|e: toml_edit::TomlError| ConfigError::Parse {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
    let keys = doc["encryption"]["keys"]
        .as_table_like_mut()
        .ok_or_else(|| invalid("encryption.keys", "must be a table"))?;
    let mut n = keys.len() + 1;
    while keys.contains_key(&format!("k{n}")) {
        n += 1;
    }
    let id = format!("k{n}");
    keys.insert(&id, toml_edit::value(STANDARD.encode(key)));
    doc["encryption"]["active_key"] = toml_edit::value(id.as_str());

    crate::private_file::write_private(path, doc.to_string().as_bytes()).map_err(|source| {
        ConfigError::Write {
            path: path.to_owned(),
            source,
        }
    })?;
    Ok(id)
}

/// A fresh configuration with a new random key and bootstrap token, for
/// `portcullis config init`.
/// The random material a new configuration holds.
pub struct InitialSecrets {
    pub data_key: [u8; 32],
    pub session_key: [u8; 32],
    pub bootstrap: Token,
    /// PKCS#8 PEM of the OpenID Connect provider's first signing key.
    pub signing_key: String,
}

/// Where `config init` puts the tokens.
pub enum InitialStorage<'a> {
    /// A SQLite file, relative to the configuration file's folder.
    Embedded(&'a Path),
    Distributed {
        database_url: &'a str,
        redis_url: &'a str,
        key_prefix: &'a str,
    },
}

impl InitialStorage<'_> {
    fn toml(&self) -> String {
        match self {
            InitialStorage::Embedded(path) => format!(
                "backend = \"embedded\"\n\
                 # SQLite file; relative paths are taken from this file's folder.\n\
                 path = {:?}\n",
                path.display().to_string()
            ),
            InitialStorage::Distributed {
                database_url,
                redis_url,
                key_prefix,
            } => format!(
                "backend = \"distributed\"\n\
                 database_url = {database_url:?}\n\
                 redis_url = {redis_url:?}\n\
                 # Prefix of every Redis key.\n\
                 key_prefix = {key_prefix:?}\n\
                 # Apply database migrations at start-up; otherwise run `portcullis migrate`\n\
                 # before starting a companion of a new version.\n\
                 migrate_on_start = false\n"
            ),
        }
    }
}

/// `items` as a TOML array of strings.
fn toml_list(items: &[IpNet]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|n| format!("{:?}", n.to_string()))
        .collect();
    format!("[{}]", quoted.join(", "))
}

pub fn initial_toml(
    listen: SocketAddr,
    ingress_listen: SocketAddr,
    trusted_proxies: &[IpNet],
    storage: &InitialStorage,
    secrets: &InitialSecrets,
) -> String {
    let scopes: String = default_scopes()
        .iter()
        .map(|(name, description)| format!("{name:?} = {description:?}\n"))
        .collect();
    format!(
        r#"# Portcullis companion configuration. Keep this file private (mode 0600):
# it holds the encryption key and the bootstrap token.

# Address of the public listener: the token API, login, the OpenID Connect
# provider.
listen = "{listen}"
# Address of the ingress listener: the checks Envoy makes, the change feed,
# /metrics. Only the proxy's network may reach it.
ingress_listen = "{ingress_listen}"
# Proxies (CIDR blocks) whose X-Forwarded-For is believed, read from the
# right: the address history records is the nearest hop none of these added.
trusted_proxies = {trusted_proxies}
# The URL browsers and applications reach the companion at (the OpenID
# Connect issuer). Default: http://<listen>.
# public_url = "https://auth.example.org"
# Realm named in WWW-Authenticate challenges.
realm = "portcullis"
# Admin token for the token API. Never accepted at the ingress.
bootstrap_token = "{bootstrap}"
# Longest time the filter may cache a check answer.
check_cache_ttl_seconds = 300
# Session tokens last this long.
session_lifetime_seconds = 2592000
# Uncomment to make tokens unused for this long invalid (Boundary's staleness).
# time_to_stale_seconds = 604800

[storage]
{storage}
# The session cookie. The filter opens it itself, so its configuration
# needs the same key.
[session]
cookie_name = "portcullis_session"
key = "{session_key}"

# Uncomment to log users in through an upstream OpenID Connect provider.
# [login]
# issuer = "https://idp.example.org"
# client_id = "portcullis"
# client_secret = "..."
# [login.group_scopes]
# staff = ["read:all", "user:token"]

# Portcullis as an OpenID Connect provider for downstream applications.
# Register clients with `portcullis oidc-client create`.
[oidc_server]
id_token_lifetime_seconds = 3600
active_key = "s1"

[[oidc_server.keys]]
kid = "s1"
private_key = '''
{signing_key}'''

# The scopes tokens may hold, with what each grants.
[scopes]
{scopes}
[encryption]
# Key that seals new token data. `portcullis keys rotate` adds one and
# re-encrypts everything with it.
active_key = "k1"

[encryption.keys]
k1 = "{key}"
"#,
        bootstrap = secrets.bootstrap.expose(),
        trusted_proxies = toml_list(trusted_proxies),
        storage = storage.toml(),
        key = STANDARD.encode(secrets.data_key),
        session_key = STANDARD.encode(secrets.session_key),
        signing_key = secrets.signing_key,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("/etc/portcullis"))
    }

    fn minimal(extra: &str) -> String {
        format!(
            "{extra}\n[storage]\nbackend = \"embedded\"\npath = \"db.sqlite\"\n\
             [encryption]\nactive_key = \"k1\"\n[encryption.keys]\nk1 = \"{KEY}\"\n"
        )
    }

    fn field_of(e: ConfigError) -> String {
        match e {
            ConfigError::Invalid { field, .. } => field,
            other => panic!("not a field error: {other}"),
        }
    }

    #[test]
    fn minimal_file_gets_documented_defaults() {
        let config = parse(&minimal("")).unwrap();
        assert_eq!(config.listen, "127.0.0.1:8300".parse().unwrap());
        assert_eq!(config.realm, "portcullis");
        assert!(config.bootstrap_token.is_none());
        assert_eq!(config.check_cache_ttl, Duration::from_secs(300));
        assert!(config.trusted_proxies.is_empty(), "no peer is a proxy");
        assert_eq!(config.ingress_listen, default_ingress_listen());
        assert_eq!(
            (
                config.header_read_timeout,
                config.request_timeout,
                config.max_connections
            ),
            (Duration::from_secs(10), Duration::from_secs(30), 1024)
        );
        assert_eq!(
            config.storage,
            StorageConfig::Embedded {
                path: "/etc/portcullis/db.sqlite".into()
            }
        );
    }

    fn secrets(token: &Token) -> InitialSecrets {
        InitialSecrets {
            data_key: [9; 32],
            session_key: [10; 32],
            bootstrap: token.clone(),
            signing_key: generate_signing_key().unwrap(),
        }
    }

    #[test]
    fn initial_toml_loads_back() {
        let token = Token::from_random([3; 16], [4; 16]);
        let text = initial_toml(
            default_listen(),
            default_ingress_listen(),
            &[],
            &InitialStorage::Embedded(Path::new("data/p.sqlite")),
            &secrets(&token),
        );
        let config = parse(&text).unwrap();
        assert_eq!(config.bootstrap_token.unwrap().key(), token.key());
        assert_eq!(config.encryption.keys["k1"], KeyMaterial([9; 32]));
    }

    fn distributed(fields: &str) -> String {
        minimal("").replace(
            "backend = \"embedded\"\npath = \"db.sqlite\"",
            &format!("backend = \"distributed\"\n{fields}"),
        )
    }

    const ENGINES: &str =
        "database_url = \"postgres://app:hunter2@db/p\"\nredis_url = \"redis://cache:6379/1\"\n";

    #[test]
    fn distributed_storage_gets_defaults_and_hides_passwords() {
        let config = parse(&distributed(ENGINES)).unwrap();
        let StorageConfig::Distributed(d) = &config.storage else {
            panic!("not distributed: {:?}", config.storage);
        };
        assert_eq!(d.key_prefix, "portcullis:");
        assert!(!d.migrate_on_start);
        assert_eq!((d.pool_size, d.timeout), (10, Duration::from_secs(3)));
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("redacted"),
            "{shown}"
        );
    }

    #[test]
    fn bad_distributed_storage_names_its_field() {
        for (fields, field) in [
            (
                ENGINES.replace("postgres://", "mysql://"),
                "storage.database_url",
            ),
            (ENGINES.replace("redis://", "http://"), "storage.redis_url"),
            (
                format!("{ENGINES}key_prefix = \"a*\"\n"),
                "storage.key_prefix",
            ),
            (
                format!("{ENGINES}key_prefix = \"\"\n"),
                "storage.key_prefix",
            ),
            (format!("{ENGINES}pool_size = 0\n"), "storage.pool_size"),
            (
                format!("{ENGINES}timeout_seconds = 0\n"),
                "storage.timeout_seconds",
            ),
        ] {
            let e = parse(&distributed(&fields)).unwrap_err();
            assert_eq!(field_of(e), field, "{fields}");
        }
        assert!(matches!(
            parse(&distributed("redis_url = \"redis://x\"\n")),
            Err(ConfigError::Parse { .. })
        ));
    }

    #[test]
    fn bad_values_name_their_field() {
        let cases = [
            (minimal("realm = \"a\\nb\""), "realm"),
            (minimal("bootstrap_token = \"gt-nope\""), "bootstrap_token"),
            (
                minimal("check_cache_ttl_seconds = 0"),
                "check_cache_ttl_seconds",
            ),
            (
                minimal("").replace("active_key = \"k1\"", "active_key = \"k2\""),
                "encryption.active_key",
            ),
            (minimal("").replace(KEY, "c2hvcnQ="), "encryption.keys.k1"),
            (
                minimal("").replace("k1 = ", "\"bad id\" = "),
                "encryption.keys.bad id",
            ),
            (minimal("").replace("\"db.sqlite\"", "\"\""), "storage.path"),
            (
                minimal("time_to_stale_seconds = 0"),
                "time_to_stale_seconds",
            ),
            (
                minimal("session_lifetime_seconds = 18446744073709551615"),
                "session_lifetime_seconds",
            ),
            (
                minimal("time_to_stale_seconds = 9223372036854775807"),
                "time_to_stale_seconds",
            ),
            (
                minimal("check_cache_ttl_seconds = 86401"),
                "check_cache_ttl_seconds",
            ),
            (
                minimal("request_timeout_seconds = 0"),
                "request_timeout_seconds",
            ),
            (
                minimal("").replace(
                    "[storage]",
                    &format!(
                        "[session]\nkey = \"{KEY}\"\n[login]\nissuer = \"http://idp.example\"\n\
                         client_id = \"a\"\nclient_secret = \"b\"\n[login.group_scopes]\n[storage]"
                    ),
                ),
                "login.issuer",
            ),
            (minimal("max_connections = 0"), "max_connections"),
            (
                minimal("listen = \"127.0.0.1:9000\"\ningress_listen = \"127.0.0.1:9000\""),
                "ingress_listen",
            ),
            (
                minimal("listen = \"0.0.0.0:9000\"\ningress_listen = \"127.0.0.1:9000\""),
                "ingress_listen",
            ),
            (
                minimal("").replace(
                    "[storage]",
                    &format!(
                        "[session]\nkey = \"{KEY}\"\nlogout_url = \"//evil.example\"\n[storage]"
                    ),
                ),
                "session.logout_url",
            ),
            (
                minimal("").replace(
                    "[storage]",
                    &format!("[session]\nkey = \"{KEY}\"\ndomain = \"a;b\"\n[storage]"),
                ),
                "session.domain",
            ),
            (
                minimal("").replace("[storage]", "[session]\nkey = \"c2hvcnQ=\"\n[storage]"),
                "session.key",
            ),
            (
                minimal("[scopes]\n\"bad scope\" = \"x\""),
                "scopes.bad scope",
            ),
        ];
        for (text, field) in cases {
            assert_eq!(field_of(parse(&text).unwrap_err()), field, "{text}");
        }
    }

    #[test]
    fn syntax_and_type_errors_are_parse_errors_that_say_where() {
        let e = parse(&minimal("listen = 8300")).unwrap_err().to_string();
        assert!(e.contains("listen"), "{e}");
        let e = parse(&minimal("colour = \"red\"")).unwrap_err().to_string();
        assert!(e.contains("colour"), "{e}");
        let e = parse(&minimal("").replace("embedded", "etcd"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("etcd"), "{e}");
    }

    #[test]
    fn add_active_key_keeps_the_file_and_switches_the_active_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        let token = Token::from_random([3; 16], [4; 16]);
        std::fs::write(
            &path,
            initial_toml(
                default_listen(),
                default_ingress_listen(),
                &[],
                &InitialStorage::Embedded(Path::new("p.sqlite")),
                &secrets(&token),
            ),
        )
        .unwrap();
        let id = add_active_key(&path, [7; 32]).unwrap();
        assert_eq!(id, "k2");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("# Portcullis companion configuration"),
            "comments kept"
        );
        let config = Config::load(&path).unwrap();
        assert_eq!(config.encryption.active_key, "k2");
        assert_eq!(config.encryption.keys["k1"], KeyMaterial([9; 32]));
        assert_eq!(config.encryption.keys["k2"], KeyMaterial([7; 32]));
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(add_active_key(&path, [6; 32]).unwrap(), "k3");
    }

    #[test]
    fn debug_output_redacts_keys_and_bootstrap_token() {
        let token = Token::from_random([3; 16], [4; 16]);
        let text = initial_toml(
            default_listen(),
            default_ingress_listen(),
            &[],
            &InitialStorage::Embedded(Path::new("p.sqlite")),
            &secrets(&token),
        );
        let shown = format!("{:?}", parse(&text).unwrap());
        assert!(!shown.contains(&token.secret().expose()), "{shown}");
        assert!(!shown.contains(&STANDARD.encode([9u8; 32])), "{shown}");
    }
}
