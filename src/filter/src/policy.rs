//! One route's policy: what a request must present, and what is delegated
//! to the upstream. Parsed and validated once, with the check callout's
//! path computed then.

use portcullis_core::check::{service_name, DelegationConflict, CHECK_PATH, MAX_MINIMUM_LIFETIME};
use portcullis_core::{AuthType, CheckRequest, Delegation, Satisfy, Scope};
use serde::Deserialize;

use crate::invalid::{parse_json, ConfigError};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    /// Scopes a request must hold. Default: none (any valid token).
    #[serde(default)]
    scopes: Vec<Scope>,
    /// `all` (default) or `any` of `scopes`.
    #[serde(default)]
    satisfy: Satisfy,
    /// No authentication at all; credentials are still stripped. Default: false.
    #[serde(default)]
    anonymous: bool,
    /// Let CORS preflights (`OPTIONS` with `Origin` and
    /// `Access-Control-Request-Method`) through unauthenticated. Default: false.
    #[serde(default)]
    cors_preflight: bool,
    /// `bearer` (default) or `basic`: which challenge a refused caller gets.
    #[serde(default)]
    auth_type: AuthType,
    /// Delegate an internal token for this service, in `X-Auth-Request-Token`.
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
    /// Send a browser (`Accept: text/html`) that must log in to the
    /// configuration's `login_url` instead of answering 401. Default: false.
    #[serde(default)]
    login_redirect: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub anonymous: bool,
    pub cors_preflight: bool,
    pub login_redirect: bool,
    pub check: CheckRequest,
    /// `:path` of the check callout, query included.
    pub check_path: String,
}

impl Policy {
    /// A policy from JSON on its own, as a route's metadata carries it.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        parse_json::<RawPolicy>(bytes)?.validate("")
    }
}

impl RawPolicy {
    /// Validates the policy found at `at` (a field path, for errors).
    pub fn validate(self, at: &str) -> Result<Policy, ConfigError> {
        let field = |name: &str| match (at, name) {
            ("", "") => "policy".to_owned(),
            ("", name) => name.to_owned(),
            (at, "") => at.to_owned(),
            (at, name) => format!("{at}.{name}"),
        };
        let error = |name: &str, reason: &str| Err(ConfigError::new(&field(name), reason));
        let service = self
            .delegate_to
            .map(|s| service_name(&s))
            .transpose()
            .map_err(|e| ConfigError::new(&field("delegate_to"), e.to_string()))?;
        let delegation = Delegation::from_settings(
            service,
            self.delegate_scopes,
            self.notebook,
            self.use_authorization,
        )
        .map_err(|conflict| {
            let (name, reason) = match conflict {
                DelegationConflict::NotebookWithService => {
                    ("notebook", "cannot be set with delegate_to")
                }
                DelegationConflict::ScopesWithoutService => {
                    ("delegate_scopes", "needs delegate_to")
                }
                DelegationConflict::AuthorizationWithoutDelegation => {
                    ("use_authorization", "needs delegate_to or notebook")
                }
            };
            ConfigError::new(&field(name), reason)
        })?;
        // The companion's bounds: a policy it would refuse to check would
        // turn every request on the route into a 400.
        if self
            .minimum_lifetime
            .is_some_and(|s| !(1..=MAX_MINIMUM_LIFETIME).contains(&s))
        {
            return error(
                "minimum_lifetime",
                "must be at least 1 second and at most 315360000 (ten years)",
            );
        }
        // An anonymous route checks nothing, so anything that needs a check
        // would silently do nothing: refuse it.
        let checks_something = !self.scopes.is_empty()
            || delegation.is_some()
            || self.minimum_lifetime.is_some()
            || self.login_redirect;
        if self.anonymous && checks_something {
            return error(
                "anonymous",
                "cannot be combined with scopes, delegation, minimum_lifetime or login_redirect",
            );
        }
        let check = CheckRequest {
            scopes: self.scopes,
            satisfy: self.satisfy,
            auth_type: self.auth_type,
            delegation,
            minimum_lifetime: self.minimum_lifetime,
            use_authorization: self.use_authorization,
        };
        let query = check.to_query();
        // The whole class at once: whatever this policy asks, the companion
        // must read back as the very same check.
        match CheckRequest::from_query(&query) {
            Ok(read) if read == check => {}
            Ok(_) => return error("", "is read differently by the companion"),
            Err(e) => return error("", &format!("is refused by the companion: {e}")),
        }
        Ok(Policy {
            anonymous: self.anonymous,
            cors_preflight: self.cors_preflight,
            login_redirect: self.login_redirect,
            check_path: format!("{CHECK_PATH}?{query}"),
            check,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> ConfigError {
        Policy::from_json(json.as_bytes()).unwrap_err()
    }

    #[test]
    fn empty_policy_asks_only_for_a_valid_token() {
        let policy = Policy::from_json(b"{}").unwrap();
        assert!(!policy.anonymous && !policy.cors_preflight);
        assert_eq!(policy.check_path, "/ingress/auth?satisfy=all");
    }

    #[test]
    fn delegation_goes_into_the_check_path() {
        let policy = Policy::from_json(
            br#"{"delegate_to":"tap","delegate_scopes":["read:all"],
                 "minimum_lifetime":600,"use_authorization":true,"auth_type":"basic"}"#,
        )
        .unwrap();
        assert_eq!(
            policy.check_path,
            "/ingress/auth?satisfy=all&auth_type=basic&delegate_to=tap&delegate_scope=read%3Aall\
             &minimum_lifetime=600&use_authorization=true"
        );
    }

    #[test]
    fn each_error_names_its_field() {
        let cases = [
            (
                r#"{"delegate_to":"a","notebook":true}"#,
                "notebook",
                "cannot be set",
            ),
            (
                r#"{"delegate_scopes":["read:all"]}"#,
                "delegate_scopes",
                "needs delegate_to",
            ),
            (
                r#"{"use_authorization":true}"#,
                "use_authorization",
                "needs",
            ),
            (r#"{"delegate_to":"a b"}"#, "delegate_to", "1 to 64"),
            (
                r#"{"minimum_lifetime":0}"#,
                "minimum_lifetime",
                "at least 1",
            ),
            (
                r#"{"minimum_lifetime":315360001}"#,
                "minimum_lifetime",
                "at most 315360000",
            ),
            (r#"{"auth_type":"digest"}"#, "auth_type", "unknown variant"),
            (
                r#"{"anonymous":true,"scopes":["read:all"]}"#,
                "anonymous",
                "cannot be combined",
            ),
            (r#"{"scopes":["read all"]}"#, "scopes[0]", "scope-token"),
            (r#"{"login":true}"#, "login", "unknown field"),
        ];
        for (json, field, reason) in cases {
            let e = err(json);
            assert_eq!(e.field, field, "{json}: {e}");
            assert!(e.reason.contains(reason), "{json}: {e}");
        }
    }

    #[test]
    fn errors_inside_a_rule_carry_the_rules_path() {
        let raw: RawPolicy = serde_json::from_str(r#"{"use_authorization":true}"#).unwrap();
        assert_eq!(
            raw.validate("rules[2].policy").unwrap_err().field,
            "rules[2].policy.use_authorization"
        );
    }
}
