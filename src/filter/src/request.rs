//! What the filter does with the caller's request before the check: which
//! headers it removes and what the check callout carries.

use portcullis_core::check::{headers, EXT_AUTHZ_CHECK_HEADER};

use portcullis_core::Token;

/// A CORS preflight (Fetch standard): `OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`. Browsers never send credentials on one.
pub fn is_cors_preflight(method: &str, has_origin: bool, has_request_method: bool) -> bool {
    method == "OPTIONS" && has_origin && has_request_method
}

/// True for a header a client must never be able to set, in any spelling
/// an upstream reads as one: the identity headers this filter alone writes,
/// and the requirements Envoy's `ext_authz` hands the companion. CGI, WSGI,
/// Rack and PHP read `X_Auth_Request_User` as `X-Auth-Request-User` (case
/// ignored, `_` for `-`), so names are compared with every byte that is
/// not a letter or digit taken for `-`: whatever an upstream's framework
/// folds, the filter has folded too.
pub fn is_reserved_header(name: &str) -> bool {
    let name = name.as_bytes();
    let folds_to = |reserved: &str| {
        name.iter()
            .zip(reserved.as_bytes())
            .all(|(b, r)| fold(*b) == *r)
    };
    (name.len() >= headers::PREFIX.len() && folds_to(headers::PREFIX))
        || (name.len() == EXT_AUTHZ_CHECK_HEADER.len() && folds_to(EXT_AUTHZ_CHECK_HEADER))
}

/// A header-name byte as the most forgiving upstream reads it.
fn fold(b: u8) -> u8 {
    match b {
        b'0'..=b'9' | b'a'..=b'z' => b,
        b'A'..=b'Z' => b.to_ascii_lowercase(),
        _ => b'-',
    }
}

/// A header list as `Debug` may show it: the value of a header that holds
/// a credential (the caller's, or a token delegated to the upstream) is
/// `<redacted>`, so no log line or panic message can carry it.
pub struct Shown<'a>(pub &'a [(&'static str, String)]);

impl std::fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(name, value)| {
                let value = match holds_credential(name) {
                    true => "<redacted>",
                    false => value.as_str(),
                };
                (name, value)
            }))
            .finish()
    }
}

fn holds_credential(name: &str) -> bool {
    ["authorization", "cookie", headers::TOKEN]
        .iter()
        .any(|c| c.eq_ignore_ascii_case(name))
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("Authorization header is not valid UTF-8")]
pub struct AuthorizationNotText;

/// The credential the check callout presents: the session cookie's token
/// if the cookie opened (Gafaelfawr's order: the cookie first), else the
/// caller's `Authorization` as it came. The companion owns the parsing, so
/// a malformed header or token gets its precise refusal.
pub fn credential(
    session: Option<&Token>,
    authorization: Option<&[u8]>,
) -> Result<Option<String>, AuthorizationNotText> {
    if let Some(token) = session {
        return Ok(Some(format!("Bearer {}", token.expose())));
    }
    authorization
        .map(|value| {
            std::str::from_utf8(value)
                .map(str::to_owned)
                .map_err(|_| AuthorizationNotText)
        })
        .transpose()
}

/// The key of the token in a credential, for evicting cached answers when
/// the companion reports it revoked; `None` when there is no token in it.
pub fn token_key(credential: &str) -> Option<String> {
    let text = portcullis_core::authorization::presented_token(credential).ok()?;
    Some(text.parse::<Token>().ok()?.key().to_string())
}

/// The headers of a GET callout to the companion (a check, or a poll of
/// the change feed).
pub fn callout_headers(
    authority: &str,
    path: &str,
    credential: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut out = vec![
        (":method", "GET".to_owned()),
        (":path", path.to_owned()),
        (":authority", authority.to_owned()),
    ];
    if let Some(value) = credential {
        out.push(("authorization", value.to_owned()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FilterConfig;

    fn config() -> FilterConfig {
        FilterConfig::from_json(br#"{"cluster":"portcullis","policy":{"scopes":["read:all"]}}"#)
            .unwrap()
    }

    #[test]
    fn reserved_headers_are_recognised_in_every_spelling_an_upstream_folds() {
        for name in [
            "x-auth-request-user",
            "X-Auth-Request-Email",
            "x-auth-request-",
            "x-auth-request-anything-new",
            "X_Auth_Request_Groups",
            "x-auth_request-email",
            "x_auth_request_user",
            "x.auth.request.uid",
            "X-AUTH-REQUEST-TOKEN",
            "x-portcullis-check",
            "X_Portcullis_Check",
            "x.portcullis.check",
        ] {
            assert!(is_reserved_header(name), "{name}");
        }
        for name in [
            "x-auth-request",
            "authorization",
            "x-auth",
            "cookie",
            "",
            "x-authXrequest-user",
            "x-portcullis-check-2",
            "x-portcullis-chec",
        ] {
            assert!(!is_reserved_header(name), "{name}");
        }
    }

    #[test]
    fn callout_carries_the_check_path_and_the_callers_authorization() {
        let config = config();
        let headers = callout_headers(
            &config.authority,
            &config.default_policy.check_path,
            Some("Bearer abc"),
        );
        assert_eq!(
            headers,
            vec![
                (":method", "GET".to_owned()),
                (
                    ":path",
                    "/ingress/auth?scope=read%3Aall&satisfy=all".to_owned()
                ),
                (":authority", "portcullis".to_owned()),
                ("authorization", "Bearer abc".to_owned()),
            ]
        );
    }

    #[test]
    fn shown_headers_hide_credentials_and_nothing_else() {
        let headers = [
            ("authorization", "Bearer gt-secret".to_owned()),
            (headers::TOKEN, "gt-delegated".to_owned()),
            (headers::USER, "alice".to_owned()),
        ];
        let shown = format!("{:?}", Shown(&headers));
        assert!(!shown.contains("gt-"), "{shown}");
        assert!(shown.contains("alice"), "{shown}");
    }

    #[test]
    fn callout_without_authorization_sends_none() {
        let config = config();
        let headers = callout_headers(&config.authority, &config.default_policy.check_path, None);
        assert!(headers.iter().all(|(name, _)| *name != "authorization"));
    }

    #[test]
    fn the_token_key_is_found_in_bearer_and_basic_credentials() {
        let token = Token::from_random([1; 16], [2; 16]);
        let key = Some(token.key().to_string());
        assert_eq!(token_key(&format!("Bearer {}", token.expose())), key);
        let basic = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{}:", token.expose()),
        );
        assert_eq!(token_key(&format!("Basic {basic}")), key);
        assert_eq!(token_key("Bearer not-a-token"), None);
    }

    #[test]
    fn only_a_full_preflight_is_a_preflight() {
        assert!(is_cors_preflight("OPTIONS", true, true));
        assert!(!is_cors_preflight("OPTIONS", true, false));
        assert!(!is_cors_preflight("OPTIONS", false, true));
        assert!(!is_cors_preflight("GET", true, true));
    }

    #[test]
    fn non_utf8_authorization_is_refused() {
        assert_eq!(
            credential(None, Some(&[0x42, 0xff, 0x20])),
            Err(AuthorizationNotText)
        );
    }

    #[test]
    fn an_opened_session_cookie_is_presented_before_the_header() {
        let token = Token::from_random([1; 16], [2; 16]);
        let presented = credential(Some(&token), Some(b"Bearer other"))
            .unwrap()
            .unwrap();
        assert_eq!(presented, format!("Bearer {}", token.expose()));
        assert_eq!(
            credential(None, Some(b"Bearer other")).unwrap().as_deref(),
            Some("Bearer other")
        );
        assert_eq!(credential(None, None), Ok(None));
    }
}
