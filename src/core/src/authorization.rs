//! Reading the credential out of an `Authorization` header value.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizationError {
    #[error("Authorization header has a scheme but no credentials")]
    MissingCredentials,
    #[error("Authorization scheme {0:?} is not supported; use Bearer")]
    UnsupportedScheme(String),
}

/// The token text of a `Bearer` credential, not yet parsed as a token: a
/// malformed header (400) and a malformed token (401) are different refusals.
pub fn bearer_token(value: &str) -> Result<&str, AuthorizationError> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    // Auth schemes are case-insensitive (RFC 9110 §11.1).
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthorizationError::UnsupportedScheme(scheme.to_owned()));
    }
    match rest.trim() {
        "" => Err(AuthorizationError::MissingCredentials),
        token => Ok(token),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_tolerates_spaces() {
        assert_eq!(bearer_token("Bearer abc"), Ok("abc"));
        assert_eq!(bearer_token("bearer abc"), Ok("abc"));
        assert_eq!(bearer_token("  BEARER   abc  "), Ok("abc"));
    }

    #[test]
    fn scheme_without_credentials_is_refused() {
        assert_eq!(
            bearer_token("Bearer"),
            Err(AuthorizationError::MissingCredentials)
        );
        assert_eq!(
            bearer_token("Bearer   "),
            Err(AuthorizationError::MissingCredentials)
        );
    }

    #[test]
    fn other_schemes_are_refused_by_name() {
        assert_eq!(
            bearer_token("Digest x=y"),
            Err(AuthorizationError::UnsupportedScheme("Digest".into()))
        );
        assert_eq!(
            bearer_token(""),
            Err(AuthorizationError::UnsupportedScheme("".into()))
        );
    }
}
