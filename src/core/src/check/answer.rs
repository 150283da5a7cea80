//! What the companion answers a successful check: who the caller is, and
//! the identity headers the upstream gets.

use serde::{Deserialize, Serialize};

use super::headers;
use crate::scope::Scope;
use crate::token::{Group, TokenType};

/// A token made for the upstream. `Debug` prints a redaction: it is a
/// bearer credential.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String))]
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

/// The companion's answer to a successful check: who the caller is, and how
/// long the answer may be reused without asking again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    fn delegated_tokens_are_redacted_in_debug() {
        let mut a = answer();
        a.delegated_token = Some(DelegatedToken::new("gt-secret-looking".into()));
        assert!(!format!("{a:?}").contains("secret-looking"));
        assert!(serde_json::to_string(&a)
            .unwrap()
            .contains("gt-secret-looking"));
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
