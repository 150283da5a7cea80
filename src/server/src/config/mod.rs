//! The companion's configuration: one TOML file, typed and validated at load
//! with errors that name the field. Defaults are given beside each field.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use portcullis_core::challenge::is_valid_realm;
use portcullis_core::{Scope, Token};
use serde::Deserialize;
use url::Url;

mod encryption;
mod init;
mod keys;
mod openid;
mod session;
mod storage;
mod tls;

pub use encryption::{EncryptionConfig, KeyMaterial};
pub use init::{initial_toml, InitialSecrets, InitialStorage};
pub use keys::{add_active_key, carry_secrets};
pub use session::SessionConfig;
pub use storage::{without_password, DistributedConfig, StorageConfig};
pub use tls::IngressTls;

pub use openid::{
    generate_signing_key, ConfiguredClient, LoginConfig, ProviderConfig, Secret, SigningKey,
};

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

/// A TOML error as "line L, column C: what": never the parser's own
/// rendering, which quotes the offending line, and that line may be a
/// secret under a misspelt key (`bootstrap_tokn = "gt-…"`).
pub(crate) fn parse_message(
    message: &str,
    span: Option<std::ops::Range<usize>>,
    text: &str,
) -> String {
    let Some(at) = span.map(|s| s.start.min(text.len())) else {
        return message.trim_end().to_owned();
    };
    let before = text.get(..at).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let start = before.rsplit('\n').next().unwrap_or_default();
    let column = start.chars().count() + 1;
    // The key the error is about, when the line has one that is a plain
    // name: never the value after it.
    let key = start
        .split_once('=')
        .map(|(key, _)| key.trim())
        .filter(|k| {
            (1..=64).contains(&k.len())
                && k.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.".contains(&b))
        })
        .map(|k| format!(" (`{k}`)"))
        .unwrap_or_default();
    format!(
        "line {line}, column {column}{key}: {}",
        portcullis_core::redact::without_quoted_value(message.trim_end())
    )
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
    /// TLS (and optionally mutual TLS) on the ingress listener. Default:
    /// none (plain HTTP, for a proxy on the same host or network).
    ingress_tls: Option<tls::RawIngressTls>,
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
    session: Option<session::RawSession>,
    /// Login through an upstream OpenID Connect provider. Default: none.
    login: Option<openid::RawLogin>,
    /// The OpenID Connect provider for downstream applications. Default: off.
    oidc_server: Option<openid::RawProvider>,
    storage: storage::RawStorage,
    encryption: encryption::RawEncryption,
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
    pub ingress_tls: Option<IngressTls>,
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
        warn_if_world_readable(path);
        Ok(config)
    }

    /// Parses configuration text; relative paths are resolved against `base`.
    pub fn from_toml(text: &str, base: &Path) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::new(),
            message: parse_message(e.message(), e.span(), text),
        })?;
        raw.validate(base)
    }
}

/// The file holds the encryption keys (and usually the session key and the
/// bootstrap token): say so when any user of the host can read it.
fn warn_if_world_readable(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o004 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{mode:o}"),
                "the configuration file holds keys and every user of this host can read it; \
                 chmod 600 it"
            );
        }
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
            ingress_tls: self.ingress_tls.map(|t| t.validate(base)).transpose()?,
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
            session: self
                .session
                .map(session::RawSession::validate)
                .transpose()?,
            login,
            oidc_server: self.oidc_server.map(|p| p.validate()).transpose()?,
            storage: self.storage.validate(base)?,
            encryption: self.encryption.validate()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;

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
    fn ingress_tls_files_that_cannot_serve_are_refused_by_field_and_never_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| dir.path().join(name).display().to_string();
        std::fs::write(at("empty.pem"), "no certificate here\n").unwrap();
        let secret = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgSECRETSECRET";
        std::fs::write(
            at("garbage.key"),
            format!("-----BEGIN PRIVATE KEY-----\n{secret}\n-----END PRIVATE KEY-----\n"),
        )
        .unwrap();
        let tls = |certificate: &str, key: &str| {
            minimal(&format!(
                "[ingress_tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"\n",
                at(certificate),
                at(key)
            ))
        };
        for (text, field) in [
            (tls("missing.pem", "garbage.key"), "ingress_tls.certificate"),
            (tls("empty.pem", "garbage.key"), "ingress_tls.certificate"),
        ] {
            assert_eq!(field_of(parse(&text).unwrap_err()), field);
        }
        // No TLS section: plain HTTP, as before.
        assert!(parse(&minimal("")).unwrap().ingress_tls.is_none());
        // An unknown field in the section is named.
        let e = parse(&minimal("[ingress_tls]\ncertificat = \"x\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `certificat`"), "{e}");
        // A key that does not parse: named, and its bytes never shown.
        let cert = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n";
        std::fs::write(at("cert.pem"), cert).unwrap();
        let e = parse(&tls("cert.pem", "garbage.key")).unwrap_err();
        let shown = e.to_string();
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(
            ["ingress_tls.certificate", "ingress_tls.private_key"].contains(&field_of(e).as_str())
        );
    }

    #[test]
    fn carried_secrets_are_the_old_files_and_the_rest_is_the_new_ones() {
        let old_key = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
        let old = format!(
            "listen = \"127.0.0.1:1\"\nbootstrap_token = \"gt-AAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBA\"\n\
             [session]\nkey = \"{old_key}\"\n\
             [storage]\nbackend = \"embedded\"\npath = \"db.sqlite\"\n\
             [encryption]\nactive_key = \"k2\"\n[encryption.keys]\nk1 = \"{KEY}\"\nk2 = \"{old_key}\"\n"
        );
        let new = format!(
            "listen = \"127.0.0.1:2\"\n[session]\nkey = \"{KEY}\"\n\
             [storage]\nbackend = \"distributed\"\ndatabase_url = \"postgres://h/d\"\nredis_url = \"redis://h\"\n\
             [encryption]\nactive_key = \"k1\"\n[encryption.keys]\nk1 = \"{KEY}\"\n"
        );
        let carried = carry_secrets(&old, Path::new("/etc"), &new).unwrap();
        let config = parse(&carried).unwrap();
        assert_eq!(config.listen.port(), 2, "the new file's own settings");
        assert!(matches!(config.storage, StorageConfig::Distributed(_)));
        assert!(
            carried.contains(&format!("k2 = \"{old_key}\"")),
            "{carried}"
        );
        assert!(carried.contains("active_key = \"k2\""), "{carried}");
        assert!(
            carried.contains(&format!("[session]\nkey = \"{old_key}\"")),
            "{carried}"
        );
        assert!(config.bootstrap_token.is_some());
        // An old file that would not load is refused, not half carried.
        assert!(carry_secrets("realm = 5", Path::new("/etc"), &new).is_err());
    }

    #[test]
    fn parse_errors_point_at_the_place_and_never_quote_the_line() {
        // A misspelt key: the parser's own rendering would quote the line,
        // and with it the secret.
        let secret = "gt-AAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBA";
        let e = parse(&minimal(&format!("bootstrap_tokn = \"{secret}\"")))
            .unwrap_err()
            .to_string();
        assert!(!e.contains("BBBBBBBBBB"), "{e}");
        assert!(
            e.contains("line 1, column 1: unknown field `bootstrap_tokn`"),
            "{e}"
        );
        let e = parse(&minimal("realm = 5")).unwrap_err().to_string();
        assert!(
            e.contains("line 1, column 9 (`realm`): invalid type: integer `5`"),
            "{e}"
        );
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
        assert!(!text.contains("{{"), "every placeholder filled:\n{text}");
        let config = parse(&text).unwrap();
        assert_eq!(config.bootstrap_token.unwrap().key(), token.key());
        assert_eq!(config.encryption.keys["k1"], KeyMaterial([9; 32]));
        assert_eq!(config.ingress_listen, default_ingress_listen());
        assert_eq!(
            config.storage,
            StorageConfig::Embedded {
                path: "/etc/portcullis/data/p.sqlite".into()
            }
        );
        assert!(config.session.is_some() && config.oidc_server.is_some());
        // The distributed form, with proxies, loads back too.
        let proxies = ["10.0.0.0/8".parse().unwrap()];
        let text = initial_toml(
            default_listen(),
            default_ingress_listen(),
            &proxies,
            &InitialStorage::Distributed {
                database_url: "postgres://db/p",
                redis_url: "redis://cache/0",
                key_prefix: "p:",
            },
            &secrets(&token),
        );
        let config = parse(&text).unwrap();
        assert_eq!(config.trusted_proxies, proxies);
        assert!(matches!(config.storage, StorageConfig::Distributed(_)));
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
        assert!(!e.contains("etcd"), "the value is not quoted: {e}");
        assert!(e.contains("(`backend`): unknown variant, expected"), "{e}");
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
