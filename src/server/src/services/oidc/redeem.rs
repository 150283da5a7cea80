//! Judging a token request against the code it presents (RFC 6749
//! §4.1.3, RFC 7636 §4.6), pure: the provider spends the code and issues
//! the tokens around these.

use portcullis_core::secret::Secret;
use subtle::ConstantTimeEq;

use super::authorize::is_pkce_value;
use super::provider::TokenRequest;
use super::{pkce_s256, Client, OidcError};
use crate::model::AuthorizationCode;

/// The code a token request presents, once its grant type is right.
pub fn presented_code(request: &TokenRequest) -> Result<&str, OidcError> {
    match request.grant_type.as_deref() {
        Some("authorization_code") => {}
        Some(_) => return Err(OidcError::UnsupportedGrantType),
        None => return Err(OidcError::InvalidRequest("grant_type is missing".into())),
    }
    request
        .code
        .as_ref()
        .map(Secret::expose)
        .ok_or_else(|| OidcError::InvalidRequest("code is missing".into()))
}

/// Whether `client` may redeem `code` (just spent) at `now` with this
/// request: its own code, unexpired, the same redirect URI, and the PKCE
/// verifier that matches the challenge (none without one: a verifier with
/// no challenge is a downgrade, RFC 9700 §4.8.2).
pub fn check(
    code: &AuthorizationCode,
    client: &Client,
    request: &TokenRequest,
    now: u64,
) -> Result<(), OidcError> {
    if code.client_id != client.client_id {
        return Err(OidcError::InvalidGrant("code was issued to another client"));
    }
    if code.expires <= now {
        return Err(OidcError::InvalidGrant("unknown or expired code"));
    }
    if request.redirect_uri.as_deref() != Some(code.redirect_uri.as_str()) {
        return Err(OidcError::InvalidGrant(
            "redirect_uri differs from the authorization request's",
        ));
    }
    match (&code.code_challenge, &request.code_verifier) {
        (Some(challenge), Some(verifier)) => {
            let verifier = verifier.expose();
            let good = is_pkce_value(verifier)
                && bool::from(pkce_s256(verifier).as_bytes().ct_eq(challenge.as_bytes()));
            match good {
                true => Ok(()),
                false => Err(OidcError::InvalidGrant("code_verifier does not match")),
            }
        }
        (Some(_), None) => Err(OidcError::InvalidGrant("code_verifier is missing")),
        (None, Some(_)) => Err(OidcError::InvalidGrant(
            "code_verifier given but the authorization had no code_challenge",
        )),
        (None, None) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use portcullis_core::TokenKey;

    use super::*;

    const CB: &str = "https://app.example.org/cb";
    // RFC 7636 appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn client(id: &str) -> Client {
        Client {
            client_id: id.into(),
            redirect_uris: vec![CB.into()],
            public: false,
        }
    }

    fn code(challenge: Option<&str>) -> AuthorizationCode {
        AuthorizationCode {
            code_sha256: [0; 32],
            client_id: "app".into(),
            redirect_uri: CB.into(),
            session: "AAAAAAAAAAAAAAAAAAAAAA".parse::<TokenKey>().unwrap(),
            scopes: vec!["openid".into()],
            nonce: None,
            code_challenge: challenge.map(str::to_owned),
            auth_time: 0,
            expires: 100,
        }
    }

    fn request(verifier: Option<&str>) -> TokenRequest {
        TokenRequest {
            grant_type: Some("authorization_code".into()),
            code: Some("c".to_owned().into()),
            redirect_uri: Some(CB.into()),
            code_verifier: verifier.map(|v| v.to_owned().into()),
        }
    }

    fn grant_error(r: Result<(), OidcError>) -> &'static str {
        match r {
            Err(OidcError::InvalidGrant(why)) => why,
            other => panic!("not invalid_grant: {other:?}"),
        }
    }

    #[test]
    fn a_request_names_the_grant_and_the_code() {
        assert_eq!(presented_code(&request(None)).unwrap(), "c");
        let other = TokenRequest {
            grant_type: Some("password".into()),
            ..request(None)
        };
        assert!(matches!(
            presented_code(&other),
            Err(OidcError::UnsupportedGrantType)
        ));
        for missing in [
            TokenRequest {
                grant_type: None,
                ..request(None)
            },
            TokenRequest {
                code: None,
                ..request(None)
            },
        ] {
            assert!(matches!(
                presented_code(&missing),
                Err(OidcError::InvalidRequest(_))
            ));
        }
    }

    #[test]
    fn a_code_is_good_only_for_its_client_in_time_at_its_redirect_uri() {
        assert!(check(&code(None), &client("app"), &request(None), 99).is_ok());
        assert!(
            grant_error(check(&code(None), &client("other"), &request(None), 99))
                .contains("another client")
        );
        assert!(
            grant_error(check(&code(None), &client("app"), &request(None), 100))
                .contains("expired")
        );
        let elsewhere = TokenRequest {
            redirect_uri: Some(format!("{CB}/x")),
            ..request(None)
        };
        assert!(
            grant_error(check(&code(None), &client("app"), &elsewhere, 99))
                .contains("redirect_uri")
        );
    }

    #[test]
    fn pkce_must_match_and_cannot_be_added_after_the_fact() {
        let pkce = code(Some(CHALLENGE));
        assert!(check(&pkce, &client("app"), &request(Some(VERIFIER)), 0).is_ok());
        let wrong = VERIFIER.replace('d', "e");
        for (verifier, why) in [
            (Some(wrong.as_str()), "does not match"),
            (Some("short"), "does not match"),
            (None, "missing"),
        ] {
            assert!(
                grant_error(check(&pkce, &client("app"), &request(verifier), 0)).contains(why),
                "{verifier:?}"
            );
        }
        assert!(grant_error(check(
            &code(None),
            &client("app"),
            &request(Some(VERIFIER)),
            0
        ))
        .contains("no code_challenge"));
    }
}
