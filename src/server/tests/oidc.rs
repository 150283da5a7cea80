//! The OpenID Connect provider and the login endpoints over HTTP (the
//! router, without a network): every refusal the issue names, code replay,
//! open redirects, the client admin API, key publication and maintenance.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail by panicking

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use base64::Engine as _;
use portcullis::app::App;
use portcullis::services::oidc::{pkce_s256, NewClient};
use portcullis::services::{Actor, ManualClock, UserInfo};
use serde_json::{json, Value};

mod common;

use common::{backends, Backend, TestStore};
use rstest_reuse::apply;

const START: u64 = 1_900_000_000;
const APP: &str = "https://app.example.org/cb";
const VERIFIER: &str = "a-verifier-that-is-long-enough-for-rfc-7636-yes";
/// A login section whose provider is never reached: the refusals come first.
const LOGIN: &str =
    "\n[login]\nissuer = \"http://127.0.0.1:9\"\nallow_insecure_http = true\nclient_id = \"p\"\n\
                     client_secret = \"s\"\n[login.group_scopes]\nstaff = [\"read:all\"]\n";

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    fn location(&self) -> String {
        self.headers
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    fn assert_error(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(self.json()["error"], code, "{}", self.text);
    }
}

struct Provider {
    app: App,
    clock: Arc<ManualClock>,
    bootstrap: String,
    cookie: String,
    secret: String,
    other_secret: String,
    store: TestStore,
}

async fn provider_with(backend: Backend, extra: &str) -> Option<Provider> {
    let clock = Arc::new(ManualClock::at(START));
    let (app, bootstrap, store) = common::app_with(backend, clock.clone(), extra).await?;
    let user = UserInfo {
        username: "alice".into(),
        email: Some("alice@example.org".into()),
        ..UserInfo::default()
    };
    let session = app
        .tokens
        .create_session_token(&user, vec!["read:all".parse().unwrap()], None)
        .await
        .unwrap();
    let cookie = common::session_cookie(&session);
    let clients = app.oidc.as_ref().unwrap().clients().clone();
    let mut secrets = Vec::new();
    for (id, public) in [("app", false), ("other", false), ("spa", true)] {
        let new = NewClient {
            client_id: id.into(),
            redirect_uris: vec![APP.into()],
            public,
            name: None,
        };
        let (_, secret) = clients.register(&Actor::Cli, new).await.unwrap();
        secrets.push(secret.unwrap_or_default());
    }
    Some(Provider {
        app,
        clock,
        bootstrap: bootstrap.expose(),
        cookie,
        secret: secrets[0].clone(),
        other_secret: secrets[1].clone(),
        store,
    })
}

async fn provider(backend: Backend) -> Option<Provider> {
    provider_with(backend, LOGIN).await
}

fn basic(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

fn query(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

impl Provider {
    async fn send(&self, request: Request<Body>) -> Reply {
        let (status, headers, bytes) = common::send(&self.app, request).await;
        Reply {
            status,
            headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn get(&self, uri: &str, headers: &[(&str, &str)]) -> Reply {
        let mut request = Request::get(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    async fn authorize(&self, pairs: &[(&str, &str)], session: bool) -> Reply {
        let uri = format!("/auth/openid/login?{}", query(pairs));
        let cookie = if session { self.cookie.as_str() } else { "" };
        self.get(&uri, &[("cookie", cookie)]).await
    }

    /// A code for client `app`, with PKCE.
    async fn code(&self) -> String {
        let challenge = pkce_s256(VERIFIER);
        let reply = self
            .authorize(
                &[
                    ("response_type", "code"),
                    ("client_id", "app"),
                    ("redirect_uri", APP),
                    ("scope", "openid profile email"),
                    ("state", "st"),
                    ("nonce", "nn"),
                    ("code_challenge", &challenge),
                    ("code_challenge_method", "S256"),
                ],
                true,
            )
            .await;
        assert_eq!(reply.status, StatusCode::FOUND, "{}", reply.text);
        let location = url::Url::parse(&reply.location()).unwrap();
        let pairs: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
        assert_eq!(pairs["state"], "st");
        assert_eq!(pairs["iss"], "http://127.0.0.1:0");
        pairs["code"].clone()
    }

    async fn post_form(&self, path: &str, auth: Option<&str>, pairs: &[(&str, &str)]) -> Reply {
        let mut request =
            Request::post(path).header("content-type", "application/x-www-form-urlencoded");
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        self.send(request.body(Body::from(query(pairs))).unwrap())
            .await
    }

    async fn redeem(&self, code: &str, auth: &str, extra: &[(&str, &str)]) -> Reply {
        let mut pairs = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", APP),
            ("code_verifier", VERIFIER),
        ];
        for (k, v) in extra {
            pairs.retain(|(key, _)| key != k);
            if !v.is_empty() {
                pairs.push((k, v));
            }
        }
        self.post_form("/auth/openid/token", Some(auth), &pairs)
            .await
    }

    async fn userinfo(&self, access: &str) -> Reply {
        self.get(
            "/auth/openid/userinfo",
            &[("authorization", &format!("Bearer {access}"))],
        )
        .await
    }
}

#[apply(backends)]
#[tokio::test]
async fn bad_clients_and_redirect_uris_get_an_error_page_never_a_redirect(backend: Backend) {
    let Some(p) = provider(backend).await else {
        return;
    };
    let cases: [&[(&str, &str)]; 4] = [
        &[
            ("response_type", "code"),
            ("redirect_uri", APP),
            ("scope", "openid"),
        ],
        &[
            ("client_id", "nobody"),
            ("response_type", "code"),
            ("redirect_uri", APP),
            ("scope", "openid"),
        ],
        &[
            ("client_id", "app"),
            ("response_type", "code"),
            ("redirect_uri", "https://app.example.org/cb/x"),
            ("scope", "openid"),
        ],
        &[
            ("client_id", "app"),
            ("response_type", "code"),
            ("scope", "openid"),
        ],
    ];
    for pairs in cases {
        let reply = p.authorize(pairs, true).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{pairs:?}");
        assert!(reply.headers.get("location").is_none(), "{pairs:?}");
        assert!(reply.text.contains("<h1>"), "an HTML page: {}", reply.text);
    }
}

#[apply(backends)]
#[tokio::test]
async fn other_authorization_errors_go_back_to_the_client_with_the_state(backend: Backend) {
    let Some(p) = provider(backend).await else {
        return;
    };
    let base = [
        ("client_id", "app"),
        ("redirect_uri", APP),
        ("state", "xyz"),
    ];
    let challenge = pkce_s256(VERIFIER);
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![("response_type", "token"), ("scope", "openid")],
            "unsupported_response_type",
        ),
        (
            vec![("response_type", "code"), ("scope", "profile email")],
            "invalid_scope",
        ),
        (
            vec![
                ("response_type", "code"),
                ("scope", "openid"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "plain"),
            ],
            "invalid_request",
        ),
        (
            vec![
                ("response_type", "code"),
                ("scope", "openid"),
                ("code_challenge", "short"),
                ("code_challenge_method", "S256"),
            ],
            "invalid_request",
        ),
    ];
    for (extra, error) in cases {
        let pairs: Vec<_> = base.iter().copied().chain(extra.iter().copied()).collect();
        let reply = p.authorize(&pairs, true).await;
        assert_eq!(reply.status, StatusCode::FOUND);
        let location = reply.location();
        assert!(location.starts_with(APP), "{location}");
        assert!(location.contains(&format!("error={error}")), "{location}");
        assert!(location.contains("state=xyz"), "{location}");
    }
    // A public client must use PKCE.
    let reply = p
        .authorize(
            &[
                ("client_id", "spa"),
                ("redirect_uri", APP),
                ("response_type", "code"),
                ("scope", "openid"),
            ],
            true,
        )
        .await;
    assert!(
        reply.location().contains("error=invalid_request"),
        "{}",
        reply.location()
    );
    // Without a session: to the login and back, or with prompt=none, an error.
    let pairs = [
        ("client_id", "app"),
        ("redirect_uri", APP),
        ("response_type", "code"),
        ("scope", "openid"),
    ];
    let reply = p.authorize(&pairs, false).await;
    assert_eq!(reply.status, StatusCode::FOUND);
    assert!(
        reply
            .location()
            .starts_with("/login?rd=%2Fauth%2Fopenid%2Flogin%3F"),
        "{}",
        reply.location()
    );
    let mut silent = pairs.to_vec();
    silent.push(("prompt", "none"));
    let reply = p.authorize(&silent, false).await;
    assert!(
        reply.location().contains("error=login_required"),
        "{}",
        reply.location()
    );
}

#[apply(backends)]
#[tokio::test]
async fn the_token_endpoint_refuses_with_rfc_6749_errors(backend: Backend) {
    let Some(p) = provider(backend).await else {
        return;
    };
    let auth = basic("app", &p.secret);

    let code = p.code().await;
    p.redeem(&code, &basic("app", "wrong"), &[])
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
    let unknown = p.redeem(&code, &basic("nobody", "x"), &[]).await;
    unknown.assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
    assert!(unknown.headers["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
    p.redeem(&code, &auth, &[("grant_type", "password")])
        .await
        .assert_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    p.redeem(&code, &auth, &[("code", "")])
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    p.redeem("not-a-code", &auth, &[])
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    // Two authentication methods at once.
    p.redeem(&code, &auth, &[("client_secret", "x")])
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");

    // Each refusal below spends its code (single use).
    let code = p.code().await;
    p.redeem(
        &code,
        &auth,
        &[("redirect_uri", "https://app.example.org/other")],
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    let code = p.code().await;
    let wrong = "b-verifier-that-is-long-enough-for-rfc-7636-yes";
    p.redeem(&code, &auth, &[("code_verifier", wrong)])
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    let code = p.code().await;
    p.redeem(&code, &auth, &[("code_verifier", "")])
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    let code = p.code().await;
    p.redeem(&code, &basic("other", &p.other_secret), &[])
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    let code = p.code().await;
    p.clock.advance(std::time::Duration::from_secs(5 * 60 + 1));
    p.redeem(&code, &auth, &[])
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");

    // client_secret_post works, and the reply is never cached.
    let code = p.code().await;
    let reply = p
        .post_form(
            "/auth/openid/token",
            None,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", APP),
                ("code_verifier", VERIFIER),
                ("client_id", "app"),
                ("client_secret", &p.secret),
            ],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.headers["cache-control"], "no-store");
    assert_eq!(reply.headers["pragma"], "no-cache");
    assert_eq!(reply.json()["token_type"], "Bearer");
}

#[apply(backends)]
#[tokio::test]
async fn a_replayed_code_is_refused_and_revokes_what_the_first_redemption_issued(backend: Backend) {
    let Some(p) = provider(backend).await else {
        return;
    };
    let auth = basic("app", &p.secret);
    let code = p.code().await;
    let first = p.redeem(&code, &auth, &[]).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let access = first.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(p.userinfo(&access).await.json()["sub"], "alice");

    p.redeem(&code, &auth, &[])
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    // Codes are kept only as hashes.
    assert!(!p.store.holds(&code).await);
    let after = p.userinfo(&access).await;
    after.assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
    assert!(after.headers["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_token"));
}

#[apply(backends)]
#[tokio::test]
async fn introspection_and_revocation_answer_only_the_client_the_token_was_issued_to(
    backend: Backend,
) {
    let Some(p) = provider(backend).await else {
        return;
    };
    let auth = basic("app", &p.secret);
    let other = basic("other", &p.other_secret);
    let code = p.code().await;
    let access = p.redeem(&code, &auth, &[]).await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let mine = p
        .post_form(
            "/auth/openid/introspect",
            Some(&auth),
            &[("token", &access)],
        )
        .await
        .json();
    assert_eq!(mine["active"], true);
    assert_eq!(mine["client_id"], "app");
    assert_eq!(mine["sub"], "alice");
    let theirs = p
        .post_form(
            "/auth/openid/introspect",
            Some(&other),
            &[("token", &access)],
        )
        .await
        .json();
    assert_eq!(theirs, json!({ "active": false }));
    let garbage = p
        .post_form("/auth/openid/introspect", Some(&auth), &[("token", "nope")])
        .await
        .json();
    assert_eq!(garbage, json!({ "active": false }));
    p.post_form(
        "/auth/openid/introspect",
        Some(&basic("app", "bad")),
        &[("token", &access)],
    )
    .await
    .assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
    p.post_form("/auth/openid/introspect", Some(&auth), &[])
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");

    p.post_form("/auth/openid/revoke", Some(&other), &[("token", &access)])
        .await
        .assert_error(StatusCode::BAD_REQUEST, "unauthorized_client");
    let revoked = p
        .post_form("/auth/openid/revoke", Some(&auth), &[("token", &access)])
        .await;
    assert_eq!(revoked.status, StatusCode::OK);
    // Revoking again, or something unknown, is no error (RFC 7009 §2.2).
    assert_eq!(
        p.post_form("/auth/openid/revoke", Some(&auth), &[("token", &access)])
            .await
            .status,
        StatusCode::OK
    );
    let after = p
        .post_form(
            "/auth/openid/introspect",
            Some(&auth),
            &[("token", &access)],
        )
        .await
        .json();
    assert_eq!(after["active"], false);
    p.get("/auth/openid/userinfo", &[])
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
}

#[apply(backends)]
#[tokio::test]
async fn clients_are_managed_by_admin_oidc_or_the_bootstrap_token_and_secrets_never_shown_again(
    backend: Backend,
) {
    let Some(p) = provider(backend).await else {
        return;
    };
    let alice = p
        .app
        .tokens
        .create_session_token(
            &UserInfo {
                username: "alice".into(),
                ..UserInfo::default()
            },
            vec!["read:all".parse().unwrap()],
            None,
        )
        .await
        .unwrap()
        .expose();
    let call = |method: &'static str, uri: &'static str, token: String, body: Option<Value>| {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {token}"));
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        request
            .body(body.map_or(Body::empty(), |b| Body::from(b.to_string())))
            .unwrap()
    };
    let body = json!({ "client_id": "new-app", "redirect_uris": [APP] });
    let denied = p
        .send(call(
            "POST",
            "/auth/api/v1/oidc-clients",
            alice,
            Some(body.clone()),
        ))
        .await;
    denied.assert_error(StatusCode::FORBIDDEN, "permission_denied");

    let made = p
        .send(call(
            "POST",
            "/auth/api/v1/oidc-clients",
            p.bootstrap.clone(),
            Some(body.clone()),
        ))
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    let secret = made.json()["client_secret"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 43);
    // Only the secrets' hashes are stored (the client's id is, as a check
    // that the search sees the store).
    assert!(p.store.holds("new-app").await);
    assert!(!p.store.holds(&secret).await && !p.store.holds(&p.secret).await);
    let again = p
        .send(call(
            "POST",
            "/auth/api/v1/oidc-clients",
            p.bootstrap.clone(),
            Some(body),
        ))
        .await;
    again.assert_error(StatusCode::CONFLICT, "duplicate_client");
    let bad = json!({ "client_id": "x", "redirect_uris": ["http://evil.example/cb"] });
    p.send(call(
        "POST",
        "/auth/api/v1/oidc-clients",
        p.bootstrap.clone(),
        Some(bad),
    ))
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid_request");

    let list = p
        .send(call(
            "GET",
            "/auth/api/v1/oidc-clients",
            p.bootstrap.clone(),
            None,
        ))
        .await;
    assert!(list.text.contains("new-app"));
    assert!(!list.text.contains("secret"), "{}", list.text);
    let gone = p
        .send(call(
            "DELETE",
            "/auth/api/v1/oidc-clients/new-app",
            p.bootstrap.clone(),
            None,
        ))
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    let missing = p
        .send(call(
            "GET",
            "/auth/api/v1/oidc-clients/new-app",
            p.bootstrap.clone(),
            None,
        ))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[apply(backends)]
#[tokio::test]
async fn login_refuses_open_redirects_and_foreign_callbacks(backend: Backend) {
    let Some(p) = provider(backend).await else {
        return;
    };
    for rd in [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "javascript:alert(1)",
        "http://127.0.0.1.evil.example/",
        "https://user@evil.example/",
        "/ok\r\nSet-Cookie: x=y",
    ] {
        let reply = p
            .get(&format!("/login?{}", query(&[("rd", rd)])), &[])
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{rd:?}: {}",
            reply.text
        );
        assert!(reply.headers.get("location").is_none(), "{rd:?}");
    }
    // A callback without the state cookie of a login this browser started.
    let reply = p.get("/login/callback?code=c&state=s", &[]).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.text.contains("expired"), "{}", reply.text);
    let reply = p
        .get("/login/callback?error=access_denied&state=s", &[])
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
}

#[apply(backends)]
#[tokio::test]
async fn retired_keys_stay_published_until_their_id_tokens_expire(backend: Backend) {
    let key = common::signing_key();
    let extra = format!(
        "{LOGIN}\n[[oidc_server.keys]]\nkid = \"old\"\nretired = {}\nprivate_key = '''\n{key}'''\n",
        START - 100
    );
    let Some(p) = provider_with(backend, &extra).await else {
        return;
    };
    let kids = |p: &Provider| {
        let jwks = p.app.oidc.as_ref().unwrap().jwks();
        jwks.keys
            .iter()
            .filter_map(|k| k.common.key_id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(kids(&p), ["s1", "old"]);
    p.clock.advance(std::time::Duration::from_secs(3600));
    assert_eq!(kids(&p), ["s1"]);
    // Discovery names what a client needs, the issuer exactly.
    let discovery = p.get("/.well-known/openid-configuration", &[]).await.json();
    assert_eq!(discovery["issuer"], "http://127.0.0.1:0");
    for field in [
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "response_types_supported",
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
        "userinfo_endpoint",
    ] {
        assert!(!discovery[field].is_null(), "{field}");
    }
}

#[apply(backends)]
#[tokio::test]
async fn maintenance_closes_cli_logins_never_completed(backend: Backend) {
    let Some(p) = provider(backend).await else {
        return;
    };
    let started = p
        .send(
            Request::post("/auth/cli/login")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .json();
    let id = started["login_id"].as_str().unwrap().to_owned();
    let poll = |secret: &str| {
        Request::post(format!("/auth/cli/login/{id}/poll"))
            .header("content-type", "application/json")
            .body(Body::from(json!({ "poll_secret": secret }).to_string()))
            .unwrap()
    };
    let secret = started["poll_secret"].as_str().unwrap();
    assert_eq!(p.send(poll(secret)).await.status, StatusCode::ACCEPTED);
    p.send(poll("wrong"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "expired_token");
    p.clock.advance(std::time::Duration::from_secs(10 * 60 + 1));
    assert_eq!(
        p.app
            .run_maintenance()
            .await
            .unwrap()
            .unwrap()
            .pending_closed,
        1
    );
    p.send(poll(secret))
        .await
        .assert_error(StatusCode::NOT_FOUND, "expired_token");
}

/// `POST /auth/cli/login` as from `peer`.
async fn start_cli_login(p: &Provider, peer: [u8; 4]) -> (StatusCode, axum::http::HeaderMap) {
    use tower::ServiceExt as _;
    let mut request = Request::post("/auth/cli/login")
        .body(Body::empty())
        .unwrap();
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
            peer, 4444,
        ))));
    let response = p.app.router().oneshot(request).await.unwrap();
    (response.status(), response.headers().clone())
}

#[apply(backends)]
#[tokio::test]
async fn anonymous_cli_logins_are_limited_per_address_and_capped_in_all(backend: Backend) {
    let Some(p) = provider(backend).await else {
        return;
    };
    use portcullis::services::cli_login::{STARTS_OVERALL, STARTS_PER_CLIENT};
    for _ in 0..STARTS_PER_CLIENT {
        assert_eq!(
            start_cli_login(&p, [198, 51, 100, 1]).await.0,
            StatusCode::CREATED
        );
    }
    let (status, headers) = start_cli_login(&p, [198, 51, 100, 1]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "600");
    // Another address is not held back by the first...
    assert_eq!(
        start_cli_login(&p, [198, 51, 100, 2]).await.0,
        StatusCode::CREATED
    );
    // ...but all addresses together are capped, whatever they are.
    let mut made = STARTS_PER_CLIENT + 1;
    let mut n = 0u32;
    while made < STARTS_OVERALL {
        n += 1;
        let peer = [10, (n >> 16) as u8, (n >> 8) as u8, n as u8];
        assert_eq!(start_cli_login(&p, peer).await.0, StatusCode::CREATED);
        made += 1;
    }
    let (status, headers) = start_cli_login(&p, [203, 0, 113, 9]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(headers.contains_key("retry-after"));
    // The window passes; the pending logins expire and maintenance goes.
    p.clock.advance(std::time::Duration::from_secs(10 * 60 + 1));
    p.app.run_maintenance().await.unwrap();
    assert_eq!(
        start_cli_login(&p, [203, 0, 113, 9]).await.0,
        StatusCode::CREATED
    );
}

#[apply(backends)]
#[tokio::test]
async fn failed_client_authentications_are_limited_per_client_with_retry_after(backend: Backend) {
    let Some(p) = provider(backend).await else {
        return;
    };
    use portcullis::services::oidc::clients::FAILURES_PER_MINUTE;
    let code = p.code().await;
    for _ in 0..FAILURES_PER_MINUTE {
        p.redeem(&code, &basic("app", "guess"), &[])
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    // Limited now: even the right secret waits, so guessing gains nothing.
    for auth in [basic("app", "guess"), basic("app", &p.secret)] {
        let limited = p.redeem(&code, &auth, &[]).await;
        limited.assert_error(StatusCode::TOO_MANY_REQUESTS, "invalid_client");
        assert_eq!(limited.headers["retry-after"], "60");
    }
    p.clock.advance(std::time::Duration::from_secs(60));
    let redeemed = p.redeem(&code, &basic("app", &p.secret), &[]).await;
    assert_eq!(redeemed.status, StatusCode::OK, "{}", redeemed.text);
}

/// An identity provider at a loopback port whose discovery document is
/// `document(issuer)`; its URL.
async fn hostile_provider(document: fn(&str) -> String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let body = document(&issuer);
    let app = axum::Router::new().route(
        "/.well-known/openid-configuration",
        axum::routing::get(move || {
            let body = body.clone();
            async move { ([("content-type", "application/json")], body) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    issuer
}

#[apply(backends)]
#[tokio::test]
async fn login_believes_no_discovery_that_points_off_the_issuer_or_never_ends(backend: Backend) {
    let documents: [fn(&str) -> String; 3] = [
        // The code and the client secret sent to another origin.
        |issuer| {
            json!({
                "issuer": issuer,
                "authorization_endpoint": "http://evil.example/authorize",
                "token_endpoint": format!("{issuer}/token"),
                "jwks_uri": format!("{issuer}/jwks"),
            })
            .to_string()
        },
        |issuer| {
            json!({
                "issuer": issuer,
                "authorization_endpoint": format!("{issuer}/authorize"),
                "token_endpoint": "http://127.0.0.1:1/token",
                "jwks_uri": format!("{issuer}/jwks"),
            })
            .to_string()
        },
        // Larger than any discovery document has reason to be.
        |issuer| {
            let padding = "x".repeat(2 << 20);
            json!({
                "issuer": issuer,
                "authorization_endpoint": format!("{issuer}/authorize"),
                "token_endpoint": format!("{issuer}/token"),
                "jwks_uri": format!("{issuer}/jwks"),
                "padding": padding,
            })
            .to_string()
        },
    ];
    for document in documents {
        let issuer = hostile_provider(document).await;
        let login = LOGIN.replace("http://127.0.0.1:9", &issuer);
        let Some(p) = provider_with(backend, &login).await else {
            return;
        };
        let reply = p
            .get(&format!("/login?{}", query(&[("rd", "/")])), &[])
            .await;
        assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.text);
        assert!(reply.headers.get("location").is_none());
    }
}

#[apply(backends)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_guesses_get_no_more_tries_than_serial_ones(backend: Backend) {
    let Some(p) = provider(backend).await else {
        return;
    };
    use portcullis::services::oidc::clients::FAILURES_PER_MINUTE;
    let p = Arc::new(p);
    let code = p.code().await;
    let guesses: Vec<_> = (0..60)
        .map(|i| {
            let (p, code) = (p.clone(), code.clone());
            tokio::spawn(async move {
                p.redeem(&code, &basic("app", &format!("guess{i}")), &[])
                    .await
                    .status
            })
        })
        .collect();
    let (mut refused, mut limited) = (0, 0);
    for guess in guesses {
        match guess.await.unwrap() {
            StatusCode::UNAUTHORIZED => refused += 1,
            StatusCode::TOO_MANY_REQUESTS => limited += 1,
            other => panic!("a guess got {other}"),
        }
    }
    assert_eq!(
        (refused, limited),
        (
            FAILURES_PER_MINUTE as usize,
            60 - FAILURES_PER_MINUTE as usize
        )
    );
    // Good authentications are given back: the right secret, many times
    // over a fresh window, is never limited.
    p.clock.advance(std::time::Duration::from_secs(60));
    for _ in 0..(2 * FAILURES_PER_MINUTE) {
        let reply = p
            .redeem("no-such-code", &basic("app", &p.secret), &[])
            .await;
        reply.assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    }
}

#[apply(backends)]
#[tokio::test]
async fn a_client_id_taken_by_the_configuration_cannot_be_registered(backend: Backend) {
    let extra = format!(
        "[[oidc_server.clients]]\nid = \"configured\"\nredirect_uris = [\"{APP}\"]\npublic = true\n"
    );
    let Some(p) = provider_with(backend, &extra).await else {
        return;
    };
    let body = json!({ "client_id": "configured", "redirect_uris": [APP] });
    let request = Request::post("/auth/api/v1/oidc-clients")
        .header("authorization", format!("Bearer {}", p.bootstrap))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    p.send(request)
        .await
        .assert_error(StatusCode::CONFLICT, "duplicate_client");
}
