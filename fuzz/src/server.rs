//! The companion's parsers of outside bytes: `X-Portcullis-Check`, the
//! OpenID Connect authorization and token requests, the history cursor
//! and the TOML configuration.

use std::collections::HashMap;
use std::path::Path;

use arbitrary::{Arbitrary, Unstructured};
use axum::body::Bytes;
use axum::extract::Query;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Uri};
use portcullis::config::Config;
use portcullis::handlers::ingress;
use portcullis::handlers::openid::{client_credentials, form_fields};
use portcullis::model::{AuthorizationCode, HistoryCursor};
use portcullis::services::oidc::authorize::{is_pkce_value, judge};
use portcullis::services::oidc::redeem;
use portcullis::services::oidc::{
    pkce_s256, AuthorizeOutcome, AuthorizeRequest, Client, TokenRequest, SUPPORTED_SCOPES,
};
use portcullis_core::check::EXT_AUTHZ_CHECK_HEADER;
use portcullis_core::secret::Secret;
use portcullis_core::CheckRequest;

use crate::text;

const HEADER_NAMES: [&str; 5] = [
    EXT_AUTHZ_CHECK_HEADER,
    "X-Portcullis-Check",
    "authorization",
    "content-type",
    "x-other",
];

/// Headers as a client may send them: names from a few that matter,
/// values any bytes HTTP lets through.
fn header_map(headers: &[(u8, &[u8])], names: &[&str]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let name = names[*name as usize % names.len()];
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) else {
            continue;
        };
        map.append(name, value);
    }
    map
}

/// `ext_authz`'s check query: one header or none; two, or one that is
/// not visible ASCII, refused; the one value read as the check query.
pub fn ext_authz_check(data: &[u8]) {
    let Ok(headers) = <Vec<(u8, &[u8])>>::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let map = header_map(&headers, &HEADER_NAMES);
    let values: Vec<&HeaderValue> = map.get_all(EXT_AUTHZ_CHECK_HEADER).iter().collect();
    match ingress::ext_authz_query(&map) {
        Ok(query) => {
            assert!(values.len() <= 1, "two check headers were read as one");
            let value = values.first().map(|v| v.to_str());
            assert_eq!(value.unwrap_or(Ok("")).ok(), Some(query));
            if let Ok(request) = CheckRequest::from_query(query) {
                crate::core::check_request_holds(&request);
            }
        }
        Err(_) => assert!(values.len() > 1 || values.iter().any(|v| v.to_str().is_err())),
    }
    let authorizations = map.get_all(AUTHORIZATION).iter().count();
    assert_eq!(
        ingress::authorization(&map).is_err(),
        authorizations > 1 || map.get(AUTHORIZATION).is_some_and(|v| v.to_str().is_err())
    );
}

const CLIENT_ID: &str = "app";
const REDIRECT_URIS: [&str; 2] = ["https://app.example/cb", "http://127.0.0.1:8302/callback"];
const AUTHORIZE_FIELDS: [&str; 9] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
];

fn client(public: bool) -> Client {
    Client {
        client_id: CLIENT_ID.into(),
        redirect_uris: REDIRECT_URIS.iter().map(|u| (*u).to_owned()).collect(),
        public,
    }
}

#[derive(Debug, Arbitrary)]
struct AuthorizeInput<'a> {
    logged_in: bool,
    public: bool,
    query: &'a str,
}

/// An authorization request: a repeated parameter is refused; a code only
/// for a logged-in browser, the registered client, one of its redirect
/// URIs exactly, `openid`, and PKCE for a public client; an error is
/// redirected only to a registered URI, with the request's own `state`.
pub fn oidc_authorize(data: &[u8]) {
    let Ok(input) = AuthorizeInput::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let Ok(uri) = format!("/auth/openid/login?{}", input.query).parse::<Uri>() else {
        return;
    };
    let raw = uri.query().unwrap_or_default();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for (name, _) in form_urlencoded::parse(raw.as_bytes()) {
        *counts.entry(name.into_owned()).or_default() += 1;
    }
    let repeated = AUTHORIZE_FIELDS
        .iter()
        .any(|f| counts.get(*f).is_some_and(|n| *n > 1));
    let Ok(Query(request)) = Query::<AuthorizeRequest>::try_from_uri(&uri) else {
        return;
    };
    assert!(!repeated, "a repeated parameter was read as one");
    let client = client(input.public);
    let known = request.client_id.as_deref() == Some(CLIENT_ID);
    let asked = request.clone();
    match judge(request, known.then_some(&client), input.logged_in) {
        Ok(granted) => {
            assert!(input.logged_in && known);
            assert_eq!(granted.client_id, CLIENT_ID);
            assert!(REDIRECT_URIS.contains(&granted.redirect_uri.as_str()));
            assert_eq!(
                asked.redirect_uri.as_deref(),
                Some(granted.redirect_uri.as_str())
            );
            assert_eq!(asked.response_type.as_deref(), Some("code"));
            assert!(granted.scopes.iter().any(|s| s == "openid"));
            assert!(granted
                .scopes
                .iter()
                .all(|s| SUPPORTED_SCOPES.contains(&s.as_str())));
            assert_eq!(granted.state, asked.state);
            assert!([&granted.state, &granted.nonce]
                .iter()
                .all(|v| v.as_ref().is_none_or(|v| v.len() <= 512)));
            match &granted.code_challenge {
                Some(challenge) => {
                    assert!(is_pkce_value(challenge));
                    assert_eq!(asked.code_challenge_method.as_deref(), Some("S256"));
                }
                None => assert!(!input.public, "a public client without PKCE"),
            }
        }
        Err(AuthorizeOutcome::RedirectError {
            redirect_uri,
            state,
            ..
        }) => {
            assert!(known && REDIRECT_URIS.contains(&redirect_uri.as_str()));
            assert_eq!(state, asked.state);
        }
        Err(AuthorizeOutcome::LoginRequired) => assert!(!input.logged_in),
        Err(AuthorizeOutcome::ErrorPage(_)) => {}
        Err(AuthorizeOutcome::Code { .. }) => panic!("judging made a code"),
    }
}

/// The verifier the fixed code below was made for.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

#[derive(Debug, Arbitrary)]
struct TokenInput<'a> {
    content_type: Option<&'a str>,
    authorization: Vec<&'a [u8]>,
    with_challenge: bool,
    body: &'a [u8],
}

/// A token request: only a form, no field twice, one way of client
/// authentication; a code is redeemed only by its client, with its
/// redirect URI and the verifier of its challenge.
pub fn oidc_token(data: &[u8]) {
    let Ok(input) = TokenInput::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let mut headers = HeaderMap::new();
    if let Some(value) = input
        .content_type
        .and_then(|c| HeaderValue::from_str(c).ok())
    {
        headers.insert(CONTENT_TYPE, value);
    }
    for value in &input.authorization {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(AUTHORIZATION, value);
        }
    }
    let body = Bytes::copy_from_slice(input.body);
    let Ok(mut fields) = form_fields(&headers, &body) else {
        return;
    };
    assert!(input
        .content_type
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded")));
    let mut seen = std::collections::HashSet::new();
    for (name, _) in form_urlencoded::parse(&body) {
        assert!(seen.insert(name.into_owned()), "a repeated field was read");
    }
    let (form_id, form_secret) = (
        fields.get("client_id").cloned(),
        fields.get("client_secret").cloned(),
    );
    let Ok((id, secret)) = client_credentials(&headers, &mut fields) else {
        return;
    };
    match headers.get_all(AUTHORIZATION).iter().count() {
        0 => assert_eq!(
            (Some(&id), secret.as_ref()),
            (form_id.as_ref(), form_secret.as_ref())
        ),
        1 => {
            assert!(form_secret.is_none(), "two client authentications");
            assert!(form_id.is_none_or(|f| f == id));
        }
        _ => panic!("two Authorization headers were read"),
    }
    let request = TokenRequest {
        grant_type: fields.remove("grant_type"),
        code: fields.remove("code").map(Secret::from),
        redirect_uri: fields.remove("redirect_uri"),
        code_verifier: fields.remove("code_verifier").map(Secret::from),
    };
    let Ok(_) = redeem::presented_code(&request) else {
        return;
    };
    let code = AuthorizationCode {
        code_sha256: [0; 32],
        client_id: CLIENT_ID.into(),
        redirect_uri: REDIRECT_URIS[0].into(),
        session: "AAAAAAAAAAAAAAAAAAAAAA".parse().expect("a key"),
        scopes: vec!["openid".into()],
        nonce: None,
        code_challenge: input.with_challenge.then(|| pkce_s256(VERIFIER)),
        auth_time: 0,
        expires: 1000,
    };
    let client = Client {
        client_id: id.clone(),
        redirect_uris: vec![],
        public: secret.is_none(),
    };
    if redeem::check(&code, &client, &request, 10).is_ok() {
        assert_eq!(id, CLIENT_ID);
        assert_eq!(request.redirect_uri.as_deref(), Some(REDIRECT_URIS[0]));
        match input.with_challenge {
            true => assert_eq!(
                request.code_verifier.as_ref().map(Secret::expose),
                Some(VERIFIER)
            ),
            false => assert!(request.code_verifier.is_none()),
        }
    }
}

#[derive(Debug, Arbitrary)]
struct CursorInput<'a> {
    time: u64,
    id: i64,
    previous: bool,
    text: &'a str,
}

/// A history cursor reads back as itself, and anything that decodes
/// encodes to a cursor that decodes the same.
pub fn history_cursor(data: &[u8]) {
    let Ok(input) = CursorInput::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let cursor = HistoryCursor {
        time: input.time,
        id: input.id,
        previous: input.previous,
    };
    assert_eq!(HistoryCursor::decode(&cursor.encode()), Ok(cursor));
    if let Ok(read) = HistoryCursor::decode(input.text) {
        assert_eq!(HistoryCursor::decode(&read.encode()), Ok(read));
    }
}

/// The companion's configuration: refused with an error that shows none of
/// its secrets, or accepted.
pub fn companion_config(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let Err(e) = Config::from_toml(text, Path::new("/nonexistent/portcullis-fuzz")) else {
        return;
    };
    let message = e.to_string();
    // A secret's text copied into another field is no longer only secret.
    for secret in secrets(text)
        .into_iter()
        .filter(|s| text.matches(s.as_str()).count() == 1)
    {
        assert!(
            !message.contains(&secret),
            "a configuration error showed a secret"
        );
    }
}

/// The string values of the fields that hold secrets, where the text is
/// TOML at all.
fn secrets(text: &str) -> Vec<String> {
    fn walk(value: &toml::Value, name: &str, out: &mut Vec<String>) {
        match value {
            // A password inside a URL (a database's, say).
            toml::Value::String(s) if s.contains("://") && s.contains('@') => {
                if let Some(password) = url::Url::parse(s)
                    .ok()
                    .and_then(|u| u.password().filter(|p| p.len() >= 6).map(str::to_owned))
                {
                    out.push(password);
                }
            }
            toml::Value::String(s)
                if s.len() >= 12
                    && ["key", "secret", "token", "password"]
                        .iter()
                        .any(|w| name.contains(w)) =>
            {
                out.push(s.clone())
            }
            toml::Value::Table(table) => table.iter().for_each(|(k, v)| walk(v, k, out)),
            toml::Value::Array(items) => items.iter().for_each(|v| walk(v, name, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Ok(value) = text.parse::<toml::Table>() {
        walk(&toml::Value::Table(value), "", &mut out);
    }
    out
}
