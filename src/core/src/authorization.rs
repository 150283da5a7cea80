//! Reading the presented token out of an `Authorization` header value:
//! `Bearer <token>`, or Basic auth with the token as the username or the
//! password. The other field is not checked (the token alone names the
//! caller): empty, `x-oauth-basic` (GitHub's convention, which Gafaelfawr
//! follows), or the username a client such as git sends.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// The placeholder that stands beside a token in Basic credentials.
const OAUTH_BASIC: &str = "x-oauth-basic";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizationError {
    #[error("Authorization header has a scheme but no credentials")]
    MissingCredentials,
    /// Never shows the scheme: `Authorization: gt-…` has only a token there.
    #[error("Authorization scheme is not supported; use Bearer or Basic")]
    UnsupportedScheme,
    #[error("Basic credentials are not base64 of `username:password` in UTF-8")]
    MalformedBasic,
}

/// The token text, not yet parsed as a token: a malformed header (400) and
/// a malformed token (401) are different refusals.
pub fn presented_token(value: &str) -> Result<String, AuthorizationError> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let credentials = match rest.trim() {
        "" => None,
        c => Some(c),
    };
    // Auth schemes are case-insensitive (RFC 9110 §11.1).
    if scheme.eq_ignore_ascii_case("bearer") {
        return credentials
            .map(str::to_owned)
            .ok_or(AuthorizationError::MissingCredentials);
    }
    if scheme.eq_ignore_ascii_case("basic") {
        return basic_token(credentials.ok_or(AuthorizationError::MissingCredentials)?);
    }
    Err(AuthorizationError::UnsupportedScheme)
}

fn basic_token(credentials: &str) -> Result<String, AuthorizationError> {
    let decoded = STANDARD
        .decode(credentials)
        .map_err(|_| AuthorizationError::MalformedBasic)?;
    let text = String::from_utf8(decoded).map_err(|_| AuthorizationError::MalformedBasic)?;
    let (user, password) = text
        .split_once(':')
        .ok_or(AuthorizationError::MalformedBasic)?;
    let token = match (user, password) {
        (OAUTH_BASIC, token) => token,
        (token, "" | OAUTH_BASIC) => token,
        // Both filled: the one shaped like a token, the username first.
        (user, _) if user.starts_with(crate::token::TOKEN_PREFIX) => user,
        (_, password) => password,
    };
    Ok(token.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user_password: &str) -> String {
        format!("Basic {}", STANDARD.encode(user_password))
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_tolerates_spaces() {
        assert_eq!(presented_token("Bearer abc").as_deref(), Ok("abc"));
        assert_eq!(presented_token("bearer abc").as_deref(), Ok("abc"));
        assert_eq!(presented_token("  BEARER   abc  ").as_deref(), Ok("abc"));
    }

    #[test]
    fn basic_takes_the_token_from_username_or_password() {
        for credentials in [
            "gt-tok:",
            "gt-tok:x-oauth-basic",
            "x-oauth-basic:gt-tok",
            "gt-tok:other",
            "someone:gt-tok",
        ] {
            assert_eq!(
                presented_token(&basic(credentials)).as_deref(),
                Ok("gt-tok"),
                "{credentials}"
            );
        }
    }

    #[test]
    fn scheme_without_credentials_is_refused() {
        for value in ["Bearer", "Bearer   ", "Basic"] {
            assert_eq!(
                presented_token(value),
                Err(AuthorizationError::MissingCredentials),
                "{value}"
            );
        }
    }

    #[test]
    fn malformed_basic_credentials_are_refused() {
        for value in [
            "Basic !!!",
            "Basic bm9jb2xvbg",
            &basic("no-colon"),
            "Basic /w==",
        ] {
            assert_eq!(
                presented_token(value),
                Err(AuthorizationError::MalformedBasic),
                "{value}"
            );
        }
    }

    #[test]
    fn other_schemes_are_refused_without_echoing_what_stood_there() {
        let token = "gt-AAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBB";
        for value in ["Digest x=y", "", token, &format!("{token} x")] {
            let refused = presented_token(value).unwrap_err();
            assert_eq!(refused, AuthorizationError::UnsupportedScheme, "{value}");
            assert!(!refused.to_string().contains("AAAA"), "{refused}");
        }
    }
}
