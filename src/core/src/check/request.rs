//! What the filter (or `ext_authz`) asks: a route's requirements and
//! delegation, as the check query carries them.

use serde::{Deserialize, Serialize};

use crate::scope::{Satisfy, SatisfyError, Scope, ScopeError};

/// How a route's callers present their token; only the challenge differs,
/// since both forms are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthType {
    #[default]
    Bearer,
    Basic,
}

/// A token the companion makes for the upstream on the caller's behalf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delegation {
    /// A notebook token with all of the caller's scopes.
    Notebook,
    /// An internal token for `service` with those of `scopes` the caller holds.
    Internal { service: String, scopes: Vec<Scope> },
}

/// Why a combination of delegation settings is refused: the rules a
/// route's policy and the check query share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DelegationConflict {
    /// `notebook` together with `delegate_to`.
    NotebookWithService,
    /// Delegated scopes without `delegate_to`.
    ScopesWithoutService,
    /// The delegated token in `Authorization`, with none delegated.
    AuthorizationWithoutDelegation,
}

impl Delegation {
    /// The delegation that `delegate_to` (a valid service name), its
    /// scopes, `notebook` and `use_authorization` ask for together.
    pub fn from_settings(
        service: Option<String>,
        scopes: Vec<Scope>,
        notebook: bool,
        use_authorization: bool,
    ) -> Result<Option<Self>, DelegationConflict> {
        let delegation = match (service, notebook) {
            (Some(_), true) => return Err(DelegationConflict::NotebookWithService),
            (Some(service), false) => Some(Delegation::Internal { service, scopes }),
            (None, _) if !scopes.is_empty() => {
                return Err(DelegationConflict::ScopesWithoutService)
            }
            (None, true) => Some(Delegation::Notebook),
            (None, false) => None,
        };
        if use_authorization && delegation.is_none() {
            return Err(DelegationConflict::AuthorizationWithoutDelegation);
        }
        Ok(delegation)
    }
}

/// Longest `minimum_lifetime` a route may ask for: ten years. Anything
/// longer is a mistake, and unbounded it would overflow the clock.
pub const MAX_MINIMUM_LIFETIME: u64 = 10 * 365 * 24 * 3600;

/// Longest service name accepted for `delegate_to`.
const MAX_SERVICE_LEN: usize = 64;

/// What a route requires of the caller's token, and what it delegates.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckRequest {
    pub scopes: Vec<Scope>,
    pub satisfy: Satisfy,
    pub auth_type: AuthType,
    pub delegation: Option<Delegation>,
    /// Seconds the caller's token (and a delegated one) must still have.
    pub minimum_lifetime: Option<u64>,
    /// Put the delegated token in `Authorization` for the upstream.
    pub use_authorization: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckQueryError {
    /// Shows the name only if it looks like one: a client may send a
    /// token as a bare parameter, and no error echoes a credential.
    #[error("unknown query parameter{}", shown_name(.0))]
    UnknownParameter(String),
    #[error("query parameter `{0}` given more than once")]
    Repeated(&'static str),
    #[error("query parameter `{name}` {reason}")]
    BadValue { name: &'static str, reason: String },
    #[error("{0}")]
    Conflict(&'static str),
    #[error(transparent)]
    Satisfy(#[from] SatisfyError),
    #[error(transparent)]
    Scope(#[from] ScopeError),
}

/// ` "name"` for a parameter name of at most 32 lower-case letters, digits
/// and `_`; nothing otherwise.
fn shown_name(name: &str) -> String {
    match crate::redact::is_plain_name(name) {
        true => format!(" {name:?}"),
        false => String::new(),
    }
}

impl CheckRequest {
    /// The query string (without `?`) that asks the companion for this check.
    pub fn to_query(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for scope in &self.scopes {
            query.append_pair("scope", scope.as_str());
        }
        query.append_pair("satisfy", self.satisfy.as_str());
        if self.auth_type == AuthType::Basic {
            query.append_pair("auth_type", "basic");
        }
        match &self.delegation {
            None => {}
            Some(Delegation::Notebook) => {
                query.append_pair("notebook", "true");
            }
            Some(Delegation::Internal { service, scopes }) => {
                query.append_pair("delegate_to", service);
                for scope in scopes {
                    query.append_pair("delegate_scope", scope.as_str());
                }
            }
        }
        if let Some(lifetime) = self.minimum_lifetime {
            query.append_pair("minimum_lifetime", &lifetime.to_string());
        }
        if self.use_authorization {
            query.append_pair("use_authorization", "true");
        }
        query.finish()
    }

    /// Parses the check query (Gafaelfawr's parameters). Unknown parameters
    /// are refused rather than ignored: a misspelt `scopes=` must not
    /// silently drop a requirement.
    pub fn from_query(query: &str) -> Result<Self, CheckQueryError> {
        let mut request = CheckRequest::default();
        let mut seen: Vec<&'static str> = Vec::new();
        let mut once = |name: &'static str| match seen.contains(&name) {
            true => Err(CheckQueryError::Repeated(name)),
            false => {
                seen.push(name);
                Ok(())
            }
        };
        let (mut delegate_to, mut delegate_scopes, mut notebook) = (None, Vec::new(), false);
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            match name.as_ref() {
                "scope" => request.scopes.push(value.parse()?),
                "satisfy" => {
                    once("satisfy")?;
                    request.satisfy = value.parse()?;
                }
                "auth_type" => {
                    once("auth_type")?;
                    request.auth_type = match value.as_ref() {
                        "bearer" => AuthType::Bearer,
                        "basic" => AuthType::Basic,
                        _ => return Err(bad("auth_type", "must be `bearer` or `basic`")),
                    };
                }
                "delegate_to" => {
                    once("delegate_to")?;
                    delegate_to = Some(service_name(&value)?);
                }
                // Gafaelfawr's form is one comma-separated value; repeating works too.
                "delegate_scope" => {
                    for scope in value.split(',').filter(|s| !s.is_empty()) {
                        delegate_scopes.push(scope.parse()?);
                    }
                }
                "minimum_lifetime" => {
                    once("minimum_lifetime")?;
                    let seconds = value
                        .parse()
                        .ok()
                        .filter(|s| (1..=MAX_MINIMUM_LIFETIME).contains(s));
                    request.minimum_lifetime = Some(seconds.ok_or_else(|| {
                        bad(
                            "minimum_lifetime",
                            "must be a number of seconds from 1 to 315360000 (ten years)",
                        )
                    })?);
                }
                "notebook" => {
                    once("notebook")?;
                    notebook = boolean("notebook", &value)?;
                }
                "use_authorization" => {
                    once("use_authorization")?;
                    request.use_authorization = boolean("use_authorization", &value)?;
                }
                other => return Err(CheckQueryError::UnknownParameter(other.to_owned())),
            }
        }
        request.delegation = Delegation::from_settings(
            delegate_to,
            delegate_scopes,
            notebook,
            request.use_authorization,
        )
        .map_err(|conflict| {
            CheckQueryError::Conflict(match conflict {
                DelegationConflict::NotebookWithService => {
                    "`notebook` and `delegate_to` cannot both be set"
                }
                DelegationConflict::ScopesWithoutService => "`delegate_scope` needs `delegate_to`",
                DelegationConflict::AuthorizationWithoutDelegation => {
                    "`use_authorization` needs `delegate_to` or `notebook`"
                }
            })
        })?;
        Ok(request)
    }
}

fn bad(name: &'static str, reason: &str) -> CheckQueryError {
    CheckQueryError::BadValue {
        name,
        reason: reason.to_owned(),
    }
}

fn boolean(name: &'static str, value: &str) -> Result<bool, CheckQueryError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(bad(name, "must be `true` or `false`")),
    }
}

/// A service name: it becomes a token's metadata and a log field.
pub fn service_name(value: &str) -> Result<String, CheckQueryError> {
    let valid = (1..=MAX_SERVICE_LEN).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    match valid {
        true => Ok(value.to_owned()),
        false => Err(bad("delegate_to", "must be 1 to 64 of A-Z a-z 0-9 - _ . :")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delegation_settings_combine_by_one_set_of_rules() {
        let scopes = vec!["read:all".parse::<Scope>().unwrap()];
        let from = Delegation::from_settings;
        assert_eq!(from(None, vec![], false, false), Ok(None));
        assert_eq!(
            from(None, vec![], true, true),
            Ok(Some(Delegation::Notebook))
        );
        assert_eq!(
            from(Some("tap".into()), scopes.clone(), false, true),
            Ok(Some(Delegation::Internal {
                service: "tap".into(),
                scopes: scopes.clone()
            }))
        );
        assert_eq!(
            from(Some("tap".into()), vec![], true, false),
            Err(DelegationConflict::NotebookWithService)
        );
        assert_eq!(
            from(None, scopes, false, false),
            Err(DelegationConflict::ScopesWithoutService)
        );
        assert_eq!(
            from(None, vec![], false, true),
            Err(DelegationConflict::AuthorizationWithoutDelegation)
        );
    }

    fn scope(s: &str) -> Scope {
        s.parse().unwrap()
    }

    #[test]
    fn query_round_trips_with_escaping() {
        let request = CheckRequest {
            scopes: vec![scope("read:all"), scope("a&b=c+d%")],
            satisfy: Satisfy::Any,
            ..CheckRequest::default()
        };
        let query = request.to_query();
        assert_eq!(query, "scope=read%3Aall&scope=a%26b%3Dc%2Bd%25&satisfy=any");
        assert_eq!(CheckRequest::from_query(&query), Ok(request));
    }

    #[test]
    fn delegation_parameters_round_trip() {
        let request = CheckRequest {
            scopes: vec![scope("read:all")],
            auth_type: AuthType::Basic,
            delegation: Some(Delegation::Internal {
                service: "tap".into(),
                scopes: vec![scope("read:all"), scope("exec:x")],
            }),
            minimum_lifetime: Some(600),
            use_authorization: true,
            ..CheckRequest::default()
        };
        let query = request.to_query();
        assert_eq!(CheckRequest::from_query(&query), Ok(request));
        let gafaelfawr_style =
            CheckRequest::from_query("delegate_to=tap&delegate_scope=read:all,exec:x").unwrap();
        assert_eq!(
            gafaelfawr_style.delegation,
            Some(Delegation::Internal {
                service: "tap".into(),
                scopes: vec![scope("read:all"), scope("exec:x")]
            })
        );
        let notebook = CheckRequest::from_query("notebook=true").unwrap();
        assert_eq!(notebook.delegation, Some(Delegation::Notebook));
        assert_eq!(CheckRequest::from_query(&notebook.to_query()), Ok(notebook));
    }

    #[test]
    fn delegation_parameters_that_contradict_are_refused() {
        for (query, says) in [
            ("notebook=true&delegate_to=tap", "cannot both"),
            ("delegate_scope=read:all", "needs `delegate_to`"),
            (
                "use_authorization=true",
                "needs `delegate_to` or `notebook`",
            ),
            ("notebook=yes", "`true` or `false`"),
            ("minimum_lifetime=0", "from 1 to"),
            ("minimum_lifetime=18446744073709551615", "from 1 to"),
            ("minimum_lifetime=315360001", "from 1 to"),
            ("minimum_lifetime=99999999999999999999999", "from 1 to"),
            ("auth_type=digest", "`bearer` or `basic`"),
            ("delegate_to=a%20b", "1 to 64"),
            ("delegate_to=a&delegate_to=b", "more than once"),
        ] {
            let e = CheckRequest::from_query(query).unwrap_err().to_string();
            assert!(e.contains(says), "{query}: {e}");
        }
    }

    #[test]
    fn empty_query_requires_nothing_with_satisfy_all() {
        assert_eq!(CheckRequest::from_query(""), Ok(CheckRequest::default()));
    }

    #[test]
    fn query_errors_name_the_problem() {
        assert_eq!(
            CheckRequest::from_query("scopes=read:all"),
            Err(CheckQueryError::UnknownParameter("scopes".into()))
        );
        assert_eq!(
            CheckRequest::from_query("satisfy=any&satisfy=all"),
            Err(CheckQueryError::Repeated("satisfy"))
        );
        assert!(matches!(
            CheckRequest::from_query("satisfy=some"),
            Err(CheckQueryError::Satisfy(_))
        ));
        assert!(matches!(
            CheckRequest::from_query("scope="),
            Err(CheckQueryError::Scope(ScopeError::Empty))
        ));
        assert!(matches!(
            CheckRequest::from_query("scope=a+b"),
            Err(CheckQueryError::Scope(ScopeError::BadCharacter(_)))
        ));
    }
}
