//! `WWW-Authenticate` challenges of RFC 6750 §3, shared so that the companion
//! and the filter word their refusals alike.

use std::fmt;

use crate::scope::{self, Scope};

/// The error codes RFC 6750 §3.1 defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidToken,
    InsufficientScope,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InsufficientScope => "insufficient_scope",
        }
    }

    /// The HTTP status RFC 6750 §3.1 pairs with the code.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::InvalidRequest => 400,
            ErrorCode::InvalidToken => 401,
            ErrorCode::InsufficientScope => 403,
        }
    }
}

/// A `Bearer` challenge. With no error it is the bare `realm` challenge that
/// RFC 6750 §3.1 asks for when the request carried no credential at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge<'a> {
    pub realm: &'a str,
    pub error: Option<(ErrorCode, &'a str)>,
    pub scope: Option<&'a [Scope]>,
}

impl fmt::Display for Challenge<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bearer realm={}", Quoted(self.realm))?;
        if let Some((code, description)) = self.error {
            write!(
                f,
                ", error=\"{}\", error_description={}",
                code.as_str(),
                Quoted(description)
            )?;
        }
        if let Some(scopes) = self.scope {
            // Scope tokens exclude `"` and `\` (RFC 6749 §3.3): no escaping.
            write!(f, ", scope=\"{}\"", scope::join(scopes))?;
        }
        Ok(())
    }
}

/// An HTTP quoted-string (RFC 9110 §5.6.4), escaping `"` and `\`.
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for c in self.0.chars() {
            if c == '"' || c == '\\' {
                f.write_str("\\")?;
            }
            write!(f, "{c}")?;
        }
        f.write_str("\"")
    }
}

/// The challenge of a route whose callers use Basic auth (RFC 7617), which
/// defines no error codes.
pub fn basic(realm: &str) -> String {
    format!("Basic realm={}, charset=\"UTF-8\"", Quoted(realm))
}

/// True when `realm` can appear in a challenge as it is: printable ASCII.
pub fn is_valid_realm(realm: &str) -> bool {
    !realm.is_empty() && realm.bytes().all(|b| (0x20..0x7f).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_challenge_has_only_the_realm() {
        let c = Challenge {
            realm: "example",
            error: None,
            scope: None,
        };
        assert_eq!(c.to_string(), r#"Bearer realm="example""#);
    }

    #[test]
    fn insufficient_scope_names_the_scopes() {
        let scopes: Vec<Scope> = vec!["read:all".parse().unwrap(), "exec:x".parse().unwrap()];
        let c = Challenge {
            realm: "r",
            error: Some((ErrorCode::InsufficientScope, "Token lacks a required scope")),
            scope: Some(&scopes),
        };
        assert_eq!(
            c.to_string(),
            r#"Bearer realm="r", error="insufficient_scope", error_description="Token lacks a required scope", scope="read:all exec:x""#
        );
        assert_eq!(ErrorCode::InsufficientScope.status(), 403);
    }

    #[test]
    fn quotes_and_backslashes_are_escaped() {
        let c = Challenge {
            realm: r#"a "b" \c"#,
            error: None,
            scope: None,
        };
        assert_eq!(c.to_string(), r#"Bearer realm="a \"b\" \\c""#);
    }

    #[test]
    fn basic_challenge_names_the_realm_and_charset() {
        assert_eq!(basic("r"), r#"Basic realm="r", charset="UTF-8""#);
    }

    #[test]
    fn realms_must_be_printable_ascii() {
        assert!(is_valid_realm("portcullis.example.org"));
        assert!(!is_valid_realm(""));
        assert!(!is_valid_realm("a\r\nb"));
        assert!(!is_valid_realm("é"));
    }
}
