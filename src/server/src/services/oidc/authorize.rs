//! Judging an authorization request (RFC 6749 §4.1.1, OpenID Connect Core
//! §3.1.2), pure: what the client, its redirect URI, the scopes, PKCE and
//! the browser's login allow. The provider only looks the client up first
//! and stores the code after.

use super::provider::{AuthorizeOutcome, AuthorizeRequest};
use super::{Client, SUPPORTED_SCOPES};

/// Longest `state` or `nonce` accepted; both are echoed back.
const MAX_ECHOED_LEN: usize = 512;

/// A request that may have a code: what the code will hold.
#[derive(Debug, PartialEq, Eq)]
pub struct Granted {
    pub client_id: String,
    pub redirect_uri: String,
    pub state: Option<String>,
    /// The supported OpenID scopes asked for, `openid` among them.
    pub scopes: Vec<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
}

/// The request's fate. `client` is the client its `client_id` names, if
/// registered; `logged_in`, whether the browser has a session. Until the
/// redirect URI is known to be the client's, refusals are pages, never
/// redirects (RFC 9700 §4.1.3: exact match).
pub fn judge(
    request: AuthorizeRequest,
    client: Option<&Client>,
    logged_in: bool,
) -> Result<Granted, AuthorizeOutcome> {
    let page = |why: &str| Err(AuthorizeOutcome::ErrorPage(why.into()));
    if request.client_id.is_none() {
        return page("client_id is missing");
    }
    let Some(client) = client else {
        return page("unknown client_id: this application is not registered");
    };
    let Some(redirect_uri) = request
        .redirect_uri
        .filter(|uri| client.redirect_uris.iter().any(|r| r == uri))
    else {
        return page("redirect_uri is missing or not registered for this client");
    };
    let state = request.state;
    let refuse = |error: &'static str, description: &str| {
        Err(AuthorizeOutcome::RedirectError {
            redirect_uri: redirect_uri.clone(),
            error,
            description: description.to_owned(),
            state: state.clone(),
        })
    };
    if [&state, &request.nonce]
        .iter()
        .any(|v| v.as_ref().is_some_and(|v| v.len() > MAX_ECHOED_LEN))
    {
        return refuse(
            "invalid_request",
            "state and nonce are at most 512 characters",
        );
    }
    if request.response_type.as_deref() != Some("code") {
        return refuse(
            "unsupported_response_type",
            "only response_type=code is supported",
        );
    }
    let requested: Vec<&str> = request
        .scope
        .as_deref()
        .unwrap_or_default()
        .split(' ')
        .collect();
    if !requested.contains(&"openid") {
        return refuse("invalid_scope", "scope must include openid");
    }
    let scopes: Vec<String> = SUPPORTED_SCOPES
        .iter()
        .filter(|s| requested.contains(s))
        .map(|s| (*s).to_owned())
        .collect();
    match (
        &request.code_challenge,
        request.code_challenge_method.as_deref(),
    ) {
        (None, _) if client.public => {
            return refuse("invalid_request", "public clients must use PKCE (S256)");
        }
        (None, Some(_)) => {
            return refuse(
                "invalid_request",
                "code_challenge_method without code_challenge",
            );
        }
        (None, None) => {}
        (Some(challenge), Some("S256")) if is_pkce_value(challenge) => {}
        (Some(_), Some("S256")) => {
            return refuse(
                "invalid_request",
                "code_challenge must be 43 to 128 characters",
            );
        }
        (Some(_), _) => {
            return refuse("invalid_request", "code_challenge_method must be S256");
        }
    }
    if !logged_in {
        let silent = request
            .prompt
            .as_deref()
            .is_some_and(|p| p.split(' ').any(|p| p == "none"));
        return match silent {
            true => refuse("login_required", "the user is not logged in"),
            false => Err(AuthorizeOutcome::LoginRequired),
        };
    }
    Ok(Granted {
        client_id: client.client_id.clone(),
        redirect_uri,
        state,
        scopes,
        nonce: request.nonce,
        code_challenge: request.code_challenge,
    })
}

/// A PKCE verifier or challenge: 43 to 128 unreserved characters
/// (RFC 7636 §4.1).
pub fn is_pkce_value(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CB: &str = "https://app.example.org/cb";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn client(public: bool) -> Client {
        Client {
            client_id: "app".into(),
            redirect_uris: vec![CB.into()],
            public,
        }
    }

    fn request() -> AuthorizeRequest {
        AuthorizeRequest {
            response_type: Some("code".into()),
            client_id: Some("app".into()),
            redirect_uri: Some(CB.into()),
            scope: Some("openid email unknown".into()),
            state: Some("st".into()),
            nonce: Some("n".into()),
            ..AuthorizeRequest::default()
        }
    }

    fn redirect_error(outcome: Result<Granted, AuthorizeOutcome>) -> (&'static str, String) {
        match outcome {
            Err(AuthorizeOutcome::RedirectError {
                error,
                description,
                state,
                redirect_uri,
            }) => {
                assert_eq!((redirect_uri.as_str(), state.as_deref()), (CB, Some("st")));
                (error, description)
            }
            other => panic!("not a redirect error: {other:?}"),
        }
    }

    #[test]
    fn a_good_request_is_granted_the_supported_scopes_it_asked_for() {
        let granted = judge(request(), Some(&client(false)), true).unwrap();
        assert_eq!(
            granted,
            Granted {
                client_id: "app".into(),
                redirect_uri: CB.into(),
                state: Some("st".into()),
                scopes: vec!["openid".into(), "email".into()],
                nonce: Some("n".into()),
                code_challenge: None,
            }
        );
    }

    #[test]
    fn without_a_known_client_and_its_exact_redirect_uri_there_is_no_redirect() {
        let page = |r: Result<Granted, AuthorizeOutcome>| match r {
            Err(AuthorizeOutcome::ErrorPage(why)) => why,
            other => panic!("not a page: {other:?}"),
        };
        let no_id = AuthorizeRequest {
            client_id: None,
            ..request()
        };
        assert!(page(judge(no_id, Some(&client(false)), true)).contains("client_id"));
        assert!(page(judge(request(), None, true)).contains("unknown client_id"));
        for uri in [
            None,
            Some(format!("{CB}/")),
            Some("https://evil.example/cb".into()),
        ] {
            let r = AuthorizeRequest {
                redirect_uri: uri.clone(),
                ..request()
            };
            assert!(
                page(judge(r, Some(&client(false)), true)).contains("redirect_uri"),
                "{uri:?}"
            );
        }
    }

    #[test]
    fn bad_parameters_are_sent_back_to_the_client() {
        let long = "x".repeat(MAX_ECHOED_LEN + 1);
        let cases = [
            (
                AuthorizeRequest {
                    nonce: Some(long),
                    ..request()
                },
                "invalid_request",
            ),
            (
                AuthorizeRequest {
                    response_type: Some("token".into()),
                    ..request()
                },
                "unsupported_response_type",
            ),
            (
                AuthorizeRequest {
                    scope: Some("email".into()),
                    ..request()
                },
                "invalid_scope",
            ),
            (
                AuthorizeRequest {
                    code_challenge_method: Some("S256".into()),
                    ..request()
                },
                "invalid_request",
            ),
            (
                AuthorizeRequest {
                    code_challenge: Some("short".into()),
                    code_challenge_method: Some("S256".into()),
                    ..request()
                },
                "invalid_request",
            ),
            (
                AuthorizeRequest {
                    code_challenge: Some(CHALLENGE.into()),
                    code_challenge_method: Some("plain".into()),
                    ..request()
                },
                "invalid_request",
            ),
        ];
        for (r, error) in cases {
            assert_eq!(
                redirect_error(judge(r, Some(&client(false)), true)).0,
                error
            );
        }
    }

    #[test]
    fn public_clients_must_use_pkce() {
        let (error, why) = redirect_error(judge(request(), Some(&client(true)), true));
        assert_eq!(error, "invalid_request");
        assert!(why.contains("PKCE"));
        let with_pkce = AuthorizeRequest {
            code_challenge: Some(CHALLENGE.into()),
            code_challenge_method: Some("S256".into()),
            ..request()
        };
        let granted = judge(with_pkce, Some(&client(true)), true).unwrap();
        assert_eq!(granted.code_challenge.as_deref(), Some(CHALLENGE));
    }

    #[test]
    fn a_browser_without_a_session_logs_in_unless_told_not_to_prompt() {
        assert_eq!(
            judge(request(), Some(&client(false)), false),
            Err(AuthorizeOutcome::LoginRequired)
        );
        let silent = AuthorizeRequest {
            prompt: Some("consent none".into()),
            ..request()
        };
        assert_eq!(
            redirect_error(judge(silent, Some(&client(false)), false)).0,
            "login_required"
        );
    }
}
