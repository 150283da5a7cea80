//! The plugin configuration: JSON from Envoy's `configuration` field, parsed
//! and validated once in `on_configure`.

use std::time::Duration;

use portcullis_core::check::{service_name, CHECK_PATH};
use portcullis_core::{AuthType, CheckRequest, Delegation, Satisfy, Scope};
use serde::Deserialize;

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
    /// Scopes every request must hold. Default: none (any valid token).
    #[serde(default)]
    scopes: Vec<Scope>,
    /// `all` (default) or `any` of `scopes`.
    #[serde(default)]
    satisfy: Satisfy,
    /// `bearer` (default) or `basic`: which challenge a refused caller gets.
    #[serde(default)]
    auth_type: AuthType,
    /// Delegate an internal token for this service to the upstream, in
    /// `X-Auth-Request-Token`. Default: none.
    delegate_to: Option<String>,
    /// Scopes of the delegated internal token (those the caller holds).
    #[serde(default)]
    delegate_scopes: Vec<Scope>,
    /// Delegate a notebook token instead. Default: false.
    #[serde(default)]
    notebook: bool,
    /// Seconds the caller's token, and the delegated one, must have left.
    minimum_lifetime: Option<u64>,
    /// Also put the delegated token in `Authorization`. Default: false.
    #[serde(default)]
    use_authorization: bool,
}

fn default_timeout_ms() -> u64 {
    1000
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid plugin configuration: field `{field}`: {reason}")]
pub struct ConfigError {
    pub field: String,
    pub reason: String,
}

impl ConfigError {
    fn new(field: &str, reason: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }
}

/// The validated configuration, with everything the per-request path needs
/// computed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterConfig {
    pub cluster: String,
    pub authority: String,
    pub timeout: Duration,
    pub check: CheckRequest,
    /// `:path` of the check callout, query included.
    pub check_path: String,
}

impl FilterConfig {
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            // serde_json names a missing or unknown field only in its message,
            // at the path of the enclosing object (".").
            let field = match path.as_str() {
                "." => field_named_in(&inner.to_string()).unwrap_or_else(|| "(root)".to_owned()),
                _ => path,
            };
            ConfigError::new(&field, strip_position(&inner.to_string()))
        })?;
        raw.validate()
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
        let delegation = match (self.delegate_to, self.notebook) {
            (Some(_), true) => {
                return Err(ConfigError::new(
                    "notebook",
                    "cannot be set with delegate_to",
                ))
            }
            (Some(service), false) => {
                let service = service_name(&service)
                    .map_err(|e| ConfigError::new("delegate_to", e.to_string()))?;
                Some(Delegation::Internal {
                    service,
                    scopes: self.delegate_scopes,
                })
            }
            (None, _) if !self.delegate_scopes.is_empty() => {
                return Err(ConfigError::new("delegate_scopes", "needs delegate_to"))
            }
            (None, true) => Some(Delegation::Notebook),
            (None, false) => None,
        };
        if self.use_authorization && delegation.is_none() {
            return Err(ConfigError::new(
                "use_authorization",
                "needs delegate_to or notebook",
            ));
        }
        if self.minimum_lifetime == Some(0) {
            return Err(ConfigError::new(
                "minimum_lifetime",
                "must be at least 1 second",
            ));
        }
        let check = CheckRequest {
            scopes: self.scopes,
            satisfy: self.satisfy,
            auth_type: self.auth_type,
            delegation,
            minimum_lifetime: self.minimum_lifetime,
            use_authorization: self.use_authorization,
        };
        Ok(FilterConfig {
            check_path: format!("{CHECK_PATH}?{}", check.to_query()),
            cluster: self.cluster,
            authority,
            timeout: Duration::from_millis(self.timeout_ms),
            check,
        })
    }
}

fn is_plain_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic())
}

/// The field in serde_json's "missing field `x`" / "unknown field `x`".
fn field_named_in(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_owned())
}

/// Drops serde_json's " at line L column C": the configuration is one
/// string in Envoy's YAML, so the position would mislead more than help.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> ConfigError {
        FilterConfig::from_json(json.as_bytes()).unwrap_err()
    }

    #[test]
    fn full_configuration_is_read_and_the_check_path_precomputed() {
        let config = FilterConfig::from_json(
            br#"{"cluster":"portcullis","authority":"auth.local:8080","timeout_ms":250,
                 "scopes":["read:all","exec:notebook"],"satisfy":"any"}"#,
        )
        .unwrap();
        assert_eq!(config.cluster, "portcullis");
        assert_eq!(config.authority, "auth.local:8080");
        assert_eq!(config.timeout, Duration::from_millis(250));
        assert_eq!(config.check.satisfy, Satisfy::Any);
        assert_eq!(
            config.check_path,
            "/ingress/auth?scope=read%3Aall&scope=exec%3Anotebook&satisfy=any"
        );
    }

    #[test]
    fn delegation_goes_into_the_check_path() {
        let config = FilterConfig::from_json(
            br#"{"cluster":"c","delegate_to":"tap","delegate_scopes":["read:all"],
                 "minimum_lifetime":600,"use_authorization":true,"auth_type":"basic"}"#,
        )
        .unwrap();
        assert_eq!(
            config.check_path,
            "/ingress/auth?satisfy=all&auth_type=basic&delegate_to=tap&delegate_scope=read%3Aall\
             &minimum_lifetime=600&use_authorization=true"
        );
        assert!(config.check.use_authorization);
    }

    #[test]
    fn defaults_fill_everything_but_the_cluster() {
        let config = FilterConfig::from_json(br#"{"cluster":"c"}"#).unwrap();
        assert_eq!(config.authority, "c");
        assert_eq!(config.timeout, Duration::from_millis(1000));
        assert!(config.check.scopes.is_empty());
        assert_eq!(config.check.satisfy, Satisfy::All);
        assert_eq!(config.check_path, "/ingress/auth?satisfy=all");
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
                r#"{"cluster":"c","timeout_ms":"1s"}"#,
                "timeout_ms",
                "invalid type",
            ),
            (
                r#"{"cluster":"c","scopes":["read all"]}"#,
                "scopes[0]",
                "scope-token",
            ),
            (
                r#"{"cluster":"c","satisfy":"most"}"#,
                "satisfy",
                "unknown variant",
            ),
            (r#"{"cluster":"c","scope":["x"]}"#, "scope", "unknown field"),
            (r#"not json"#, "(root)", "expected"),
            (
                r#"{"cluster":"c","delegate_to":"a","notebook":true}"#,
                "notebook",
                "cannot be set",
            ),
            (
                r#"{"cluster":"c","delegate_scopes":["read:all"]}"#,
                "delegate_scopes",
                "needs delegate_to",
            ),
            (
                r#"{"cluster":"c","use_authorization":true}"#,
                "use_authorization",
                "needs",
            ),
            (
                r#"{"cluster":"c","delegate_to":"a b"}"#,
                "delegate_to",
                "1 to 64",
            ),
            (
                r#"{"cluster":"c","minimum_lifetime":0}"#,
                "minimum_lifetime",
                "at least 1",
            ),
            (
                r#"{"cluster":"c","auth_type":"digest"}"#,
                "auth_type",
                "unknown variant",
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
