//! The shared core's parsers of outside bytes: the token, the
//! `Authorization` header, the `Cookie` header, the sealed session cookie
//! and the check query.

use arbitrary::{Arbitrary, Unstructured};
use portcullis_core::authorization::{presented_token, AuthorizationError};
use portcullis_core::session::{SessionSeal, NONCE_LEN};
use portcullis_core::token::{PART_BYTES, TOKEN_PREFIX};
use portcullis_core::{cookie, CheckRequest, Delegation, Token};
use portcullis_filter::request;

use crate::{text, SESSION_KEY};

/// A token either fails to parse or has exactly the spelling it came with
/// (one accepted spelling per token), and neither `Display` nor `Debug`
/// shows its secret.
pub fn token(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let Ok(token) = text.parse::<Token>() else {
        return;
    };
    assert_eq!(token.expose(), text, "a token has one spelling");
    let secret = &text[text.len() - 22..];
    // (Unless the secret's text happens to lie within what may be shown.)
    let public = format!("{TOKEN_PREFIX}{}.<redacted>", token.key());
    if !public.contains(secret) {
        let shown = format!("{token} {token:?}");
        assert!(!shown.contains(secret), "a token's secret was shown");
    }
    assert_eq!(
        Token::from_parts(token.key().clone(), token.secret().clone()).expose(),
        text
    );
}

/// The filter passes a header on as it came or refuses it as not text;
/// the companion's reading of it yields a token only from a supported
/// scheme, and its errors never echo the header.
pub fn authorization(data: &[u8]) {
    match request::credential(None, Some(data)) {
        Ok(Some(credential)) => assert_eq!(credential.as_bytes(), data),
        Ok(None) => panic!("an Authorization header vanished"),
        Err(_) => assert!(std::str::from_utf8(data).is_err()),
    }
    let Some(text) = text(data) else { return };
    let key = request::token_key(text);
    match presented_token(text) {
        Ok(presented) => {
            let scheme = text.trim().split(' ').next().unwrap_or_default();
            assert!(
                scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("basic"),
                "a token from scheme {scheme:?}"
            );
            assert!(!presented.is_empty() || scheme.eq_ignore_ascii_case("basic"));
            // The key the filter evicts by is the key of the token the
            // companion reads, and nothing else.
            let parsed = presented.parse::<Token>().ok();
            assert_eq!(key, parsed.map(|t| t.key().to_string()));
        }
        Err(e) => {
            assert_eq!(key, None);
            // Each refusal says the same whatever the header held: it can
            // echo nothing of it.
            let fixed = [
                AuthorizationError::MissingCredentials,
                AuthorizationError::UnsupportedScheme,
                AuthorizationError::MalformedBasic,
            ]
            .map(|e| e.to_string());
            assert!(fixed.contains(&e.to_string()));
        }
    }
}

#[derive(Debug, Arbitrary)]
struct CookieInput<'a> {
    name: &'a str,
    headers: Vec<&'a [u8]>,
}

/// Taking a cookie out of the `Cookie` headers leaves none of it behind
/// (taking again finds nothing), keeps every other pair byte for byte,
/// and finds every copy.
pub fn cookie_header(data: &[u8]) {
    let Ok(input) = CookieInput::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let name = match input
        .name
        .trim_matches(|c: char| c.is_ascii_whitespace() || c == '"')
    {
        "" => "portcullis_session",
        name if name.contains([';', '=']) => "portcullis_session",
        name => name,
    };
    let taken = cookie::take(&input.headers, name);
    let pairs: usize = input
        .headers
        .iter()
        .flat_map(|h| h.split(|b| *b == b';'))
        .filter(|p| p.iter().any(|b| !b" \t\r\n\x0b\x0c".contains(b)))
        .count();
    let Some(rest) = taken.rest.as_deref() else {
        assert_eq!(taken.values.len(), pairs, "a pair was lost");
        return;
    };
    let again = cookie::take(&[rest], name);
    assert!(again.values.is_empty(), "the cookie survived in the rest");
    assert_eq!(again.rest.as_deref(), Some(rest), "the rest is stable");
    let left = rest.split(|b| *b == b';').count();
    assert_eq!(taken.values.len() + left, pairs, "a pair was lost");
}

/// Only a seal made with the key opens; a sealed token opens to itself,
/// and any change to its text makes it open to nothing.
pub fn session_cookie(data: &[u8]) {
    let seal = SessionSeal::new(&SESSION_KEY);
    if let Some(text) = text(data) {
        if let Some(token) = seal.open(text) {
            assert!(token.expose().parse::<Token>().is_ok());
        }
    }
    let Some((parts, rest)) = data.split_first_chunk::<{ 2 * PART_BYTES + NONCE_LEN + 2 }>() else {
        return;
    };
    let key: [u8; PART_BYTES] = parts[..PART_BYTES].try_into().unwrap_or_default();
    let secret: [u8; PART_BYTES] = parts[PART_BYTES..2 * PART_BYTES]
        .try_into()
        .unwrap_or_default();
    let nonce: [u8; NONCE_LEN] = parts[2 * PART_BYTES..2 * PART_BYTES + NONCE_LEN]
        .try_into()
        .unwrap_or_default();
    let token = Token::from_random(key, secret);
    let sealed = seal.seal(&token, nonce);
    assert_eq!(
        seal.open(&sealed).map(|t| t.expose()),
        Some(token.expose()),
        "a seal did not open"
    );
    assert!(!sealed.contains(&token.expose()[TOKEN_PREFIX.len()..]));
    // One character changed, anywhere: no longer a seal.
    let (at, by) = (
        parts[2 * PART_BYTES + NONCE_LEN],
        parts[2 * PART_BYTES + NONCE_LEN + 1],
    );
    let mut bytes = sealed.clone().into_bytes();
    let at = at as usize % bytes.len();
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
    let replacement = alphabet[by as usize % alphabet.len()];
    if bytes[at] != replacement {
        bytes[at] = replacement;
        let tampered = String::from_utf8(bytes).unwrap_or_default();
        assert!(seal.open(&tampered).is_none(), "a tampered seal opened");
    }
    // Anything appended, too.
    if let Some(extra) = text(rest).filter(|e| !e.is_empty()) {
        assert!(seal.open(&format!("{sealed}{extra}")).is_none());
    }
}

/// A check query that parses writes back to a query that parses to the
/// same check; the delegation rules hold of every parsed check.
pub fn check_query(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let request = match CheckRequest::from_query(text) {
        Ok(request) => request,
        Err(e) => {
            // A client may send its token as a parameter's name or value:
            // no error echoes one.
            let message = e.to_string();
            for (name, value) in form_urlencoded::parse(text.as_bytes()) {
                for part in [name, value] {
                    if let Some(at) = part.find(TOKEN_PREFIX) {
                        let token = &part[at..];
                        assert!(
                            token.len() < 8 || !message.contains(token),
                            "an error echoed a token"
                        );
                    }
                }
            }
            return;
        }
    };
    check_request_holds(&request);
    let again = CheckRequest::from_query(&request.to_query());
    assert_eq!(
        again.as_ref(),
        Ok(&request),
        "the check query did not round-trip"
    );
}

/// What every check the companion accepts obeys.
pub fn check_request_holds(request: &CheckRequest) {
    if request.use_authorization {
        assert!(request.delegation.is_some());
    }
    if let Some(Delegation::Internal { service, .. }) = &request.delegation {
        assert!(portcullis_core::check::service_name(service).is_ok());
    }
    if let Some(lifetime) = request.minimum_lifetime {
        assert!((1..=portcullis_core::check::MAX_MINIMUM_LIFETIME).contains(&lifetime));
    }
}
