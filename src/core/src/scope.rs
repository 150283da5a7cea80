//! Scopes and the rule that decides whether a token's scopes satisfy what a
//! route requires.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("scope is empty")]
    Empty,
    #[error("scope has a character outside RFC 6749's scope-token (printable ASCII but space, `\"` and `\\`)")]
    BadCharacter(String),
}

/// One OAuth scope token (RFC 6749 §3.3), such as `read:all`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(value_type = String, pattern = r"^[\x21\x23-\x5B\x5D-\x7E]+$", example = "read:all")
)]
pub struct Scope(String);

impl Scope {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Scope {
    type Err = ScopeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(ScopeError::Empty);
        }
        // RFC 6749: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ). Keeping to it
        // means a scope can be put in a quoted challenge without escaping.
        let valid = s
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
        if !valid {
            return Err(ScopeError::BadCharacter(s.to_owned()));
        }
        Ok(Self(s.to_owned()))
    }
}

impl TryFrom<String> for Scope {
    type Error = ScopeError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Scope> for String {
    fn from(scope: Scope) -> String {
        scope.0
    }
}

impl AsRef<str> for Scope {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Joins scopes with single spaces, the form of OAuth's `scope` parameter.
pub fn join(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(Scope::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("satisfy must be `any` or `all`")]
pub struct SatisfyError(pub String);

/// Whether a token needs every required scope or just one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Satisfy {
    Any,
    #[default]
    All,
}

impl Satisfy {
    pub fn as_str(self) -> &'static str {
        match self {
            Satisfy::Any => "any",
            Satisfy::All => "all",
        }
    }

    /// True when `held` meets `required`. Nothing required is always met, so
    /// a route that lists no scope only asks for a valid token.
    pub fn is_met<S: AsRef<str>>(self, held: &[S], required: &[Scope]) -> bool {
        let has = |want: &Scope| held.iter().any(|h| h.as_ref() == want.as_str());
        if required.is_empty() {
            return true;
        }
        match self {
            Satisfy::Any => required.iter().any(has),
            Satisfy::All => required.iter().all(has),
        }
    }
}

impl FromStr for Satisfy {
    type Err = SatisfyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "any" => Ok(Satisfy::Any),
            "all" => Ok(Satisfy::All),
            other => Err(SatisfyError(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(list: &[&str]) -> Vec<Scope> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn scope_grammar_follows_rfc_6749() {
        for good in ["read:all", "admin:token", "exec:notebook", "a!#[]~"] {
            assert!(good.parse::<Scope>().is_ok(), "{good}");
        }
        assert_eq!("".parse::<Scope>(), Err(ScopeError::Empty));
        for bad in ["read all", "say\"hi\"", "back\\slash", "tab\t", "é"] {
            assert!(
                matches!(bad.parse::<Scope>(), Err(ScopeError::BadCharacter(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn satisfy_all_needs_every_scope_and_any_needs_one() {
        let required = scopes(&["read:all", "write:all"]);
        assert!(Satisfy::All.is_met(&["write:all", "read:all"], &required));
        assert!(!Satisfy::All.is_met(&["read:all"], &required));
        assert!(Satisfy::Any.is_met(&["read:all"], &required));
        assert!(!Satisfy::Any.is_met(&["exec:admin"], &required));
        assert!(!Satisfy::Any.is_met::<&str>(&[], &required));
    }

    #[test]
    fn nothing_required_is_met_by_any_token() {
        assert!(Satisfy::All.is_met::<&str>(&[], &[]));
        assert!(Satisfy::Any.is_met::<&str>(&[], &[]));
    }

    #[test]
    fn satisfy_parses_only_its_two_words() {
        assert_eq!("any".parse(), Ok(Satisfy::Any));
        assert_eq!("all".parse(), Ok(Satisfy::All));
        assert_eq!("ALL".parse::<Satisfy>(), Err(SatisfyError("ALL".into())));
        assert_eq!(Satisfy::default(), Satisfy::All);
    }

    #[test]
    fn scopes_deserialize_with_validation() {
        let ok: Vec<Scope> = serde_json::from_str(r#"["read:all"]"#).unwrap();
        assert_eq!(join(&ok), "read:all");
        assert!(serde_json::from_str::<Vec<Scope>>(r#"["bad scope"]"#).is_err());
    }
}
