//! The check protocol between the filter (or Envoy's `ext_authz`) and the
//! companion: `GET /ingress/auth?scope=..&satisfy=..` answered by a
//! [`CheckAnswer`] body and `X-Auth-Request-*` headers.

use serde::{Deserialize, Serialize};

use crate::scope::{Satisfy, SatisfyError, Scope, ScopeError};

/// Path of the check endpoint on the companion.
pub const CHECK_PATH: &str = "/ingress/auth";

/// Path of the companion's feed of revoked and changed token keys.
pub const CHANGES_PATH: &str = "/ingress/changes";

/// One page of that feed: keys whose cached answers must go, and where the
/// next poll starts. `reset`: drop every cached answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    pub cursor: i64,
    pub keys: Vec<crate::TokenKey>,
    pub reset: bool,
}

/// The header in which Envoy's `ext_authz` (by `headers_to_add`) tells the
/// companion what to require; a client's copy must never reach it.
pub const EXT_AUTHZ_CHECK_HEADER: &str = "x-portcullis-check";

/// Identity headers set for the upstream. Every request header with
/// [`headers::PREFIX`] that a client sends is removed first, so none can be
/// forged.
pub mod headers {
    pub const PREFIX: &str = "x-auth-request-";
    pub const USER: &str = "x-auth-request-user";
    pub const EMAIL: &str = "x-auth-request-email";
    pub const TOKEN_SCOPES: &str = "x-auth-request-token-scopes";
    /// The delegated token, when the route asks for one.
    pub const TOKEN: &str = "x-auth-request-token";
    pub const UID: &str = "x-auth-request-uid";
    pub const GID: &str = "x-auth-request-gid";
    /// Group names, comma-separated.
    pub const GROUPS: &str = "x-auth-request-groups";
    /// The service an internal token was delegated to.
    pub const SERVICE: &str = "x-auth-request-service";
}

/// The `&'static` name of a header that [`CheckAnswer::upstream_headers`]
/// may set, or `None` for any other name.
pub fn upstream_header_name(name: &str) -> Option<&'static str> {
    use headers::*;
    [
        USER,
        EMAIL,
        UID,
        GID,
        GROUPS,
        SERVICE,
        TOKEN_SCOPES,
        TOKEN,
        "authorization",
    ]
    .into_iter()
    .find(|known| *known == name)
}

/// The kinds of token, after Gafaelfawr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Session,
    User,
    Notebook,
    Internal,
    Service,
    Oidc,
}

impl TokenType {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::Session => "session",
            TokenType::User => "user",
            TokenType::Notebook => "notebook",
            TokenType::Internal => "internal",
            TokenType::Service => "service",
            TokenType::Oidc => "oidc",
        }
    }
}

impl std::str::FromStr for TokenType {
    type Err = UnknownTokenType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        use TokenType::*;
        [Session, User, Notebook, Internal, Service, Oidc]
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownTokenType(s.to_owned()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown token type")]
pub struct UnknownTokenType(pub String);

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
    let plain = name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    match plain {
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
        request.delegation = match (delegate_to, notebook) {
            (Some(_), true) => {
                return Err(CheckQueryError::Conflict(
                    "`notebook` and `delegate_to` cannot both be set",
                ))
            }
            (Some(service), false) => Some(Delegation::Internal {
                service,
                scopes: delegate_scopes,
            }),
            (None, _) if !delegate_scopes.is_empty() => {
                return Err(CheckQueryError::Conflict(
                    "`delegate_scope` needs `delegate_to`",
                ))
            }
            (None, true) => Some(Delegation::Notebook),
            (None, false) => None,
        };
        if request.use_authorization && request.delegation.is_none() {
            return Err(CheckQueryError::Conflict(
                "`use_authorization` needs `delegate_to` or `notebook`",
            ));
        }
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

/// A token made for the upstream. `Debug` prints a redaction: it is a
/// bearer credential.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DelegatedToken(String);

impl DelegatedToken {
    pub fn new(token: String) -> Self {
        Self(token)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for DelegatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DelegatedToken(<redacted>)")
    }
}

/// A group the token's user belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u32>,
}

/// The companion's answer to a successful check: who the caller is, and how
/// long the answer may be reused without asking again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckAnswer {
    pub username: String,
    pub token_type: TokenType,
    pub scopes: Vec<Scope>,
    /// Expiry of the token, seconds since the Unix epoch; `None` never expires.
    pub expires: Option<u64>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    #[serde(default)]
    pub groups: Vec<Group>,
    /// Seconds this answer may be cached; never past `expires`.
    pub cache_ttl: u64,
    /// For an internal token, the service it was delegated to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The token delegated to the upstream, when the route asked for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegated_token: Option<DelegatedToken>,
}

impl CheckAnswer {
    /// True when every string that becomes a header value is printable: a
    /// control character here would let stored data split or forge headers.
    pub fn is_header_safe(&self) -> bool {
        let safe = |s: &str| !s.is_empty() && !s.chars().any(char::is_control);
        // A comma inside a group name would split the Groups header.
        let safe_group = |g: &Group| safe(&g.name) && !g.name.contains(',');
        safe(&self.username)
            && self.email.as_deref().is_none_or(safe)
            && self.service.as_deref().is_none_or(safe)
            && self.groups.iter().all(safe_group)
            && self
                .delegated_token
                .as_ref()
                .is_none_or(|t| safe(t.expose()))
    }

    /// The identity headers for the upstream (what the filter sets, and
    /// what `ext_authz` forwards from the companion's answer).
    /// `use_authorization` also puts a delegated token in `Authorization`.
    pub fn upstream_headers(&self, use_authorization: bool) -> Vec<(&'static str, String)> {
        let mut set = vec![(headers::USER, self.username.clone())];
        let optional = [
            (headers::EMAIL, self.email.clone()),
            (headers::UID, self.uid.map(|u| u.to_string())),
            (headers::GID, self.gid.map(|g| g.to_string())),
            (headers::SERVICE, self.service.clone()),
        ];
        set.extend(
            optional
                .into_iter()
                .filter_map(|(name, value)| Some((name, value?))),
        );
        if !self.groups.is_empty() {
            let names: Vec<&str> = self.groups.iter().map(|g| g.name.as_str()).collect();
            set.push((headers::GROUPS, names.join(",")));
        }
        set.push((headers::TOKEN_SCOPES, crate::scope::join(&self.scopes)));
        if let Some(token) = &self.delegated_token {
            set.push((headers::TOKEN, token.expose().to_owned()));
            if use_authorization {
                set.push(("authorization", format!("Bearer {}", token.expose())));
            }
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn delegated_tokens_are_redacted_in_debug() {
        let mut a = answer();
        a.delegated_token = Some(DelegatedToken::new("gt-secret-looking".into()));
        assert!(!format!("{a:?}").contains("secret-looking"));
        assert!(serde_json::to_string(&a)
            .unwrap()
            .contains("gt-secret-looking"));
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

    fn answer() -> CheckAnswer {
        CheckAnswer {
            username: "alice".into(),
            token_type: TokenType::User,
            scopes: vec![scope("read:all")],
            expires: Some(1_900_000_000),
            email: Some("alice@example.org".into()),
            name: None,
            uid: Some(1000),
            gid: None,
            groups: vec![Group {
                name: "staff".into(),
                id: Some(2000),
            }],
            cache_ttl: 300,
            service: None,
            delegated_token: None,
        }
    }

    #[test]
    fn upstream_headers_carry_every_known_part_of_the_identity() {
        let mut a = answer();
        a.groups.push(Group {
            name: "admins".into(),
            id: None,
        });
        a.service = Some("tap".into());
        a.delegated_token = Some(DelegatedToken::new("gt-d".into()));
        let set = a.upstream_headers(true);
        let get = |name: &str| {
            set.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("x-auth-request-user"), Some("alice"));
        assert_eq!(get("x-auth-request-email"), Some("alice@example.org"));
        assert_eq!(get("x-auth-request-uid"), Some("1000"));
        assert_eq!(get("x-auth-request-gid"), None);
        assert_eq!(get("x-auth-request-groups"), Some("staff,admins"));
        assert_eq!(get("x-auth-request-service"), Some("tap"));
        assert_eq!(get("x-auth-request-token-scopes"), Some("read:all"));
        assert_eq!(get("x-auth-request-token"), Some("gt-d"));
        assert_eq!(get("authorization"), Some("Bearer gt-d"));
        let plain = answer().upstream_headers(false);
        assert!(plain.iter().all(|(n, _)| *n != "authorization"));
    }

    #[test]
    fn token_types_parse_from_their_names_only() {
        for t in [TokenType::Session, TokenType::Oidc, TokenType::Internal] {
            assert_eq!(t.as_str().parse(), Ok(t));
        }
        assert!("admin".parse::<TokenType>().is_err());
    }

    #[test]
    fn answer_json_round_trips() {
        let json = serde_json::to_string(&answer()).unwrap();
        assert!(json.contains(r#""token_type":"user""#));
        assert_eq!(
            serde_json::from_str::<CheckAnswer>(&json).unwrap(),
            answer()
        );
    }

    #[test]
    fn answer_with_control_characters_is_not_header_safe() {
        assert!(answer().is_header_safe());
        let mut bad = answer();
        bad.username = "alice\r\nx-auth-request-user: root".into();
        assert!(!bad.is_header_safe());
        let mut bad = answer();
        bad.email = Some("a\n@b".into());
        assert!(!bad.is_header_safe());
        let mut bad = answer();
        bad.username.clear();
        assert!(!bad.is_header_safe());
        let mut bad = answer();
        bad.groups[0].name = "a,b".into();
        assert!(!bad.is_header_safe());
    }
}
