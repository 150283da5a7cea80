//! The check protocol between the filter (or Envoy's `ext_authz`) and the
//! companion: `GET /ingress/auth?scope=..&satisfy=..` answered by a
//! [`CheckAnswer`] body and `X-Auth-Request-*` headers.

use serde::{Deserialize, Serialize};

use crate::scope::{Satisfy, SatisfyError, Scope, ScopeError};

/// Path of the check endpoint on the companion.
pub const CHECK_PATH: &str = "/ingress/auth";

/// Identity headers set for the upstream. Every request header with
/// [`headers::PREFIX`] that a client sends is removed first, so none can be
/// forged.
pub mod headers {
    pub const PREFIX: &str = "x-auth-request-";
    pub const USER: &str = "x-auth-request-user";
    pub const EMAIL: &str = "x-auth-request-email";
    pub const TOKEN_SCOPES: &str = "x-auth-request-token-scopes";
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
#[error("unknown token type {0:?}")]
pub struct UnknownTokenType(pub String);

/// What a route requires of the caller's token.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckRequest {
    pub scopes: Vec<Scope>,
    pub satisfy: Satisfy,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckQueryError {
    #[error("unknown query parameter {0:?}")]
    UnknownParameter(String),
    #[error("query parameter `satisfy` given more than once")]
    RepeatedSatisfy,
    #[error(transparent)]
    Satisfy(#[from] SatisfyError),
    #[error(transparent)]
    Scope(#[from] ScopeError),
}

impl CheckRequest {
    /// The query string (without `?`) that asks the companion for this check.
    pub fn to_query(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for scope in &self.scopes {
            query.append_pair("scope", scope.as_str());
        }
        query.append_pair("satisfy", self.satisfy.as_str());
        query.finish()
    }

    /// Parses the check query. Unknown parameters are refused rather than
    /// ignored: a misspelt `scopes=` must not silently drop a requirement.
    pub fn from_query(query: &str) -> Result<Self, CheckQueryError> {
        let mut request = CheckRequest::default();
        let mut satisfy_seen = false;
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            match name.as_ref() {
                "scope" => request.scopes.push(value.parse()?),
                "satisfy" if satisfy_seen => return Err(CheckQueryError::RepeatedSatisfy),
                "satisfy" => {
                    request.satisfy = value.parse()?;
                    satisfy_seen = true;
                }
                other => return Err(CheckQueryError::UnknownParameter(other.to_owned())),
            }
        }
        Ok(request)
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
}

impl CheckAnswer {
    /// True when every string that becomes a header value is printable: a
    /// control character here would let stored data split or forge headers.
    pub fn is_header_safe(&self) -> bool {
        let safe = |s: &str| !s.is_empty() && !s.chars().any(char::is_control);
        safe(&self.username) && self.email.as_deref().is_none_or(safe)
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
        };
        let query = request.to_query();
        assert_eq!(query, "scope=read%3Aall&scope=a%26b%3Dc%2Bd%25&satisfy=any");
        assert_eq!(CheckRequest::from_query(&query), Ok(request));
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
            Err(CheckQueryError::RepeatedSatisfy)
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
        }
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
    }
}
