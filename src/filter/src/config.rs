//! The plugin configuration: JSON from Envoy's `configuration` field, parsed
//! and validated once in `on_configure`.

use std::rc::Rc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use portcullis_core::session::SessionSeal;
use serde::Deserialize;

use crate::browser::is_valid_login_url;
use crate::invalid::{parse_json, ConfigError};
use crate::policy::{Policy, RawPolicy};
use crate::routing::{RawMatch, Rule};

/// Longest callout timeout accepted: a check slower than this is an outage.
const MAX_TIMEOUT_MS: u64 = 60_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// Envoy cluster of the companion. Required.
    cluster: String,
    /// `:authority` of the check callout. Default: the cluster name.
    authority: Option<String>,
    /// Callout timeout in milliseconds, 1..=60000. Default: 1000.
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    /// The policy of requests no rule matches. Default: any valid token.
    #[serde(default)]
    policy: RawPolicy,
    /// Rules tried in order; the first whose `match` holds gives the policy.
    #[serde(default)]
    rules: Vec<RawRule>,
    /// The companion's session cookie, opened here. Default: none.
    session_cookie: Option<RawSessionCookie>,
    /// Where a policy's `login_redirect` sends browsers: an http(s) URL or
    /// a local path. Default: none.
    login_url: Option<String>,
    /// Cache check answers per worker. Default: none (every request asks).
    cache: Option<RawCache>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCache {
    /// Longest life of an allowed answer, 1..=86400. Default: 300.
    #[serde(default = "default_ttl")]
    ttl_seconds: u64,
    /// Life of a refusal of a token (401, 403), 0..=3600; 0 caches none.
    /// Default: 5.
    #[serde(default = "default_negative_ttl")]
    negative_ttl_seconds: u64,
    /// Most answers a worker keeps, 1..=1000000. Default: 10000.
    #[serde(default = "default_max_entries")]
    max_entries: usize,
    /// How often a worker asks the companion what was revoked, 100..=60000
    /// ms. Default: 1000.
    #[serde(default = "default_poll_ms")]
    poll_interval_ms: u64,
    /// Longest time since the feed last answered that cached answers are
    /// still served, poll_interval_ms..=600000 ms; past it every request
    /// asks the companion until the feed answers again (a revocation may
    /// be going unheard). Default: three poll intervals.
    max_feed_lag_ms: Option<u64>,
    /// Serve an allowed answer up to this long past its freshness while
    /// the companion fails (stale-if-error), 0..=3600; never past the
    /// token's expiry. Default: 0 (off: a failing companion means 503).
    #[serde(default)]
    stale_if_error_seconds: u64,
    /// Slots of the cross-worker tier in Envoy's shared data, 0..=65536;
    /// 0 keeps answers per worker only. Default: 4096.
    #[serde(default = "default_shared_slots")]
    shared_slots: u32,
}

fn default_shared_slots() -> u32 {
    4096
}

fn default_ttl() -> u64 {
    300
}

fn default_negative_ttl() -> u64 {
    5
}

fn default_max_entries() -> usize {
    10_000
}

fn default_poll_ms() -> u64 {
    1000
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    pub ttl_seconds: u64,
    pub negative_ttl_seconds: u64,
    pub max_entries: usize,
    pub poll_interval: Duration,
    pub max_feed_lag: Duration,
    pub shared_slots: u32,
    pub stale_if_error_seconds: u64,
}

impl RawCache {
    fn validate(self) -> Result<CacheConfig, ConfigError> {
        let range = |field: &str, value: u64, min: u64, max: u64| match (min..=max).contains(&value)
        {
            true => Ok(()),
            false => Err(ConfigError::new(
                field,
                format!("must be between {min} and {max}, not {value}"),
            )),
        };
        range("cache.ttl_seconds", self.ttl_seconds, 1, 86_400)?;
        range(
            "cache.negative_ttl_seconds",
            self.negative_ttl_seconds,
            0,
            3600,
        )?;
        range("cache.max_entries", self.max_entries as u64, 1, 1_000_000)?;
        range("cache.poll_interval_ms", self.poll_interval_ms, 100, 60_000)?;
        let max_feed_lag_ms = self.max_feed_lag_ms.unwrap_or(3 * self.poll_interval_ms);
        range(
            "cache.max_feed_lag_ms",
            max_feed_lag_ms,
            self.poll_interval_ms,
            600_000,
        )?;
        range(
            "cache.stale_if_error_seconds",
            self.stale_if_error_seconds,
            0,
            3600,
        )?;
        range(
            "cache.shared_slots",
            u64::from(self.shared_slots),
            0,
            65_536,
        )?;
        Ok(CacheConfig {
            ttl_seconds: self.ttl_seconds,
            negative_ttl_seconds: self.negative_ttl_seconds,
            max_entries: self.max_entries,
            poll_interval: Duration::from_millis(self.poll_interval_ms),
            max_feed_lag: Duration::from_millis(max_feed_lag_ms),
            shared_slots: self.shared_slots,
            stale_if_error_seconds: self.stale_if_error_seconds,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSessionCookie {
    /// Default: portcullis_session.
    #[serde(default = "default_cookie_name")]
    name: String,
    /// The companion's `session.key`: 32 bytes in standard base64.
    key: String,
}

fn default_cookie_name() -> String {
    "portcullis_session".to_owned()
}

/// The session cookie's name and the seal that opens it.
#[derive(Clone)]
pub struct SessionCookie {
    pub name: String,
    pub seal: Rc<SessionSeal>,
}

impl std::fmt::Debug for SessionCookie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionCookie({}, key <redacted>)", self.name)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(rename = "match")]
    matcher: RawMatch,
    policy: RawPolicy,
}

fn default_timeout_ms() -> u64 {
    1000
}

/// The validated configuration, with everything the per-request path needs
/// computed once.
#[derive(Debug, Clone)]
pub struct FilterConfig {
    pub cluster: String,
    pub authority: String,
    pub timeout: Duration,
    pub default_policy: Rc<Policy>,
    pub rules: Vec<Rule>,
    /// Whether any rule matches on the route name, so that the per-request
    /// path reads `xds.route_name` only when it matters.
    pub reads_route_name: bool,
    pub session_cookie: Option<SessionCookie>,
    pub login_url: Option<String>,
    pub cache: Option<CacheConfig>,
}

impl FilterConfig {
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        parse_json::<RawConfig>(bytes)?.validate()
    }
}

impl RawConfig {
    fn validate(self) -> Result<FilterConfig, ConfigError> {
        if !is_plain_name(&self.cluster) {
            return Err(ConfigError::new(
                "cluster",
                "must be a non-empty Envoy cluster name without spaces or control characters",
            ));
        }
        let authority = self.authority.unwrap_or_else(|| self.cluster.clone());
        if !is_plain_name(&authority) {
            return Err(ConfigError::new(
                "authority",
                "must be a non-empty host[:port] without spaces or control characters",
            ));
        }
        if !(1..=MAX_TIMEOUT_MS).contains(&self.timeout_ms) {
            return Err(ConfigError::new(
                "timeout_ms",
                format!(
                    "must be between 1 and {MAX_TIMEOUT_MS}, not {}",
                    self.timeout_ms
                ),
            ));
        }
        let rules = self
            .rules
            .into_iter()
            .enumerate()
            .map(|(i, rule)| {
                Ok(Rule {
                    matcher: rule.matcher.validate(&format!("rules[{i}].match"))?,
                    policy: Rc::new(rule.policy.validate(&format!("rules[{i}].policy"))?),
                })
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        let session_cookie = self
            .session_cookie
            .map(RawSessionCookie::validate)
            .transpose()?;
        if self
            .login_url
            .as_deref()
            .is_some_and(|u| !is_valid_login_url(u))
        {
            return Err(ConfigError::new(
                "login_url",
                "must be an http(s) URL or a path starting with one /",
            ));
        }
        let default_policy = Rc::new(self.policy.validate("policy")?);
        let redirects =
            default_policy.login_redirect || rules.iter().any(|r| r.policy.login_redirect);
        if redirects && self.login_url.is_none() {
            return Err(ConfigError::new(
                "login_url",
                "is needed by a policy with login_redirect",
            ));
        }
        Ok(FilterConfig {
            session_cookie,
            cluster: self.cluster,
            authority,
            timeout: Duration::from_millis(self.timeout_ms),
            default_policy,
            login_url: self.login_url,
            cache: self.cache.map(RawCache::validate).transpose()?,
            reads_route_name: rules.iter().any(|r| r.matcher.uses_route_name()),
            rules,
        })
    }
}

impl RawSessionCookie {
    fn validate(self) -> Result<SessionCookie, ConfigError> {
        if self.name.is_empty()
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        {
            return Err(ConfigError::new(
                "session_cookie.name",
                "must be an RFC 6265 cookie name",
            ));
        }
        let key: [u8; 32] = STANDARD
            .decode(self.key.trim())
            .ok()
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| {
                ConfigError::new("session_cookie.key", "must be 32 bytes in standard base64")
            })?;
        Ok(SessionCookie {
            name: self.name,
            seal: Rc::new(SessionSeal::new(&key)),
        })
    }
}

fn is_plain_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::{select, RequestFacts};

    fn err(json: &str) -> ConfigError {
        FilterConfig::from_json(json.as_bytes()).unwrap_err()
    }

    #[test]
    fn full_configuration_is_read_with_rules_in_order() {
        let config = FilterConfig::from_json(
            br#"{"cluster":"portcullis","authority":"auth.local:8080","timeout_ms":250,
                 "policy":{"scopes":["read:all"]},
                 "rules":[{"match":{"prefix":"/public/"},"policy":{"anonymous":true}},
                          {"match":{"route":"admin"},"policy":{"scopes":["admin:token"]}}]}"#,
        )
        .unwrap();
        assert_eq!(config.cluster, "portcullis");
        assert_eq!(config.authority, "auth.local:8080");
        assert_eq!(config.timeout, Duration::from_millis(250));
        assert_eq!(
            config.default_policy.check_path,
            "/ingress/auth?scope=read%3Aall&satisfy=all"
        );
        assert_eq!(config.rules.len(), 2);
        assert!(config.reads_route_name);
        let facts = RequestFacts {
            path: b"/public/a",
            method: "GET",
            ..Default::default()
        };
        assert!(
            select(&config.rules, &config.default_policy, &facts)
                .unwrap()
                .anonymous
        );
    }

    #[test]
    fn defaults_fill_everything_but_the_cluster() {
        let config = FilterConfig::from_json(br#"{"cluster":"c"}"#).unwrap();
        assert_eq!(config.authority, "c");
        assert_eq!(config.timeout, Duration::from_millis(1000));
        assert!(config.rules.is_empty());
        assert!(!config.reads_route_name);
        assert_eq!(
            config.default_policy.check_path,
            "/ingress/auth?satisfy=all"
        );
    }

    #[test]
    fn each_error_names_its_field() {
        let cases = [
            (r#"{}"#, "cluster", "missing field"),
            (r#"{"cluster":""}"#, "cluster", "non-empty"),
            (
                r#"{"cluster":"c","authority":"a b"}"#,
                "authority",
                "spaces",
            ),
            (
                r#"{"cluster":"c","timeout_ms":0}"#,
                "timeout_ms",
                "between 1 and 60000",
            ),
            (
                r#"{"cluster":"c","cache":{"poll_interval_ms":1000,"max_feed_lag_ms":999}}"#,
                "cache.max_feed_lag_ms",
                "between 1000 and 600000",
            ),
            (
                r#"{"cluster":"c","timeout_ms":"1s"}"#,
                "timeout_ms",
                "invalid type",
            ),
            (
                r#"{"cluster":"c","scopes":["x"]}"#,
                "scopes",
                "unknown field",
            ),
            (
                r#"{"cluster":"c","policy":{"scopes":["read all"]}}"#,
                "policy.scopes[0]",
                "scope-token",
            ),
            (
                r#"{"cluster":"c","policy":{"colour":1}}"#,
                "policy.colour",
                "unknown field",
            ),
            (
                r#"{"cluster":"c","policy":{"use_authorization":true}}"#,
                "policy.use_authorization",
                "needs",
            ),
            (
                r#"{"cluster":"c","rules":[{"policy":{}}]}"#,
                "rules[0].match",
                "missing field",
            ),
            (
                r#"{"cluster":"c","rules":[{"match":{"path":"x"},"policy":{}}]}"#,
                "rules[0].match.path",
                "start with /",
            ),
            (
                r#"{"cluster":"c","rules":[{"match":{"path":"/x"},"policy":{"satisfy":"most"}}]}"#,
                "rules[0].policy.satisfy",
                "unknown variant",
            ),
            (r#"not json"#, "(root)", "expected"),
            (
                r#"{"cluster":"c","cache":{"ttl_seconds":0}}"#,
                "cache.ttl_seconds",
                "between 1 and 86400",
            ),
            (
                r#"{"cluster":"c","cache":{"poll_interval_ms":10}}"#,
                "cache.poll_interval_ms",
                "between 100",
            ),
            (
                r#"{"cluster":"c","cache":{"size":1}}"#,
                "cache.size",
                "unknown field",
            ),
            (
                r#"{"cluster":"c","policy":{"login_redirect":true}}"#,
                "login_url",
                "is needed",
            ),
            (
                r#"{"cluster":"c","login_url":"login"}"#,
                "login_url",
                "http(s) URL",
            ),
            (
                r#"{"cluster":"c","session_cookie":{"key":"c2hvcnQ="}}"#,
                "session_cookie.key",
                "32 bytes",
            ),
            (
                r#"{"cluster":"c","session_cookie":{"name":"a b","key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}}"#,
                "session_cookie.name",
                "RFC 6265",
            ),
        ];
        for (json, field, reason) in cases {
            let e = err(json);
            assert_eq!(e.field, field, "{json}: {e}");
            assert!(e.reason.contains(reason), "{json}: {e}");
            assert!(!e.reason.contains(" at line "), "{e}");
        }
    }

    #[test]
    fn error_message_reads_as_one_line() {
        assert_eq!(
            err(r#"{"cluster":"c","timeout_ms":0}"#).to_string(),
            "invalid plugin configuration: field `timeout_ms`: must be between 1 and 60000, not 0"
        );
    }
}
