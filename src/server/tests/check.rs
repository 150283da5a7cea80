//! The companion's check, through the services with a clock the tests move,
//! and through the HTTP router without a network.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail by panicking

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode};
use portcullis::app::App;
use portcullis::services::authenticate::Credential;
use portcullis::services::{
    Actor, AdminTokenRequest, AuthError, CheckError, ManualClock, TokenError, UserInfo,
};
use portcullis_core::{CheckAnswer, CheckRequest, Satisfy, Token, TokenType};
use tower::ServiceExt as _;

mod common;

use common::{backends, Backend, TestStore};
use rstest_reuse::apply;

const START: u64 = 1_900_000_000;

struct Fixture {
    app: App,
    clock: Arc<ManualClock>,
    bootstrap: Token,
    _store: TestStore,
}

async fn fixture(backend: Backend) -> Option<Fixture> {
    let clock = Arc::new(ManualClock::at(START));
    let (app, bootstrap, store) = common::app(backend, clock.clone()).await?;
    Some(Fixture {
        app,
        clock,
        bootstrap,
        _store: store,
    })
}

impl Fixture {
    async fn create(&self, new: AdminTokenRequest) -> Result<Token, TokenError> {
        self.app
            .tokens
            .create_token_from_admin_request(new, &Actor::Cli, None)
            .await
    }

    async fn check(
        &self,
        token: &Token,
        request: &CheckRequest,
    ) -> Result<CheckAnswer, CheckError> {
        self.app
            .check
            .check(Credential::Header(Some(&bearer(token))), request, None)
            .await
    }
}

fn new_token(user: &str, scopes: &[&str], lifetime: Option<Duration>) -> AdminTokenRequest {
    static MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    AdminTokenRequest {
        user: UserInfo {
            username: user.into(),
            ..UserInfo::default()
        },
        token_type: TokenType::User,
        token_name: Some(format!("t{n}")),
        scopes: scopes.iter().map(|s| s.parse().unwrap()).collect(),
        expires: lifetime.map(|l| START + l.as_secs()),
    }
}

fn requiring(scopes: &[&str], satisfy: Satisfy) -> CheckRequest {
    CheckRequest {
        scopes: scopes.iter().map(|s| s.parse().unwrap()).collect(),
        satisfy,
        ..CheckRequest::default()
    }
}

fn bearer(token: &Token) -> String {
    format!("Bearer {}", token.expose())
}

#[apply(backends)]
#[tokio::test]
async fn token_is_valid_until_its_expiry_and_not_at_it(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let token = f
        .create(new_token(
            "alice",
            &["read:all"],
            Some(Duration::from_secs(600)),
        ))
        .await
        .unwrap();
    let need = requiring(&["read:all"], Satisfy::All);

    f.clock.advance(Duration::from_secs(599));
    let answer = f.check(&token, &need).await.unwrap();
    assert_eq!(answer.expires, Some(START + 600));
    assert_eq!(answer.cache_ttl, 1, "never cached past the expiry");

    f.clock.advance(Duration::from_secs(1));
    let err = f.check(&token, &need).await.unwrap_err();
    assert!(
        matches!(
            err,
            CheckError::Auth(AuthError::InvalidToken("Token is not valid"))
        ),
        "{err:?}"
    );
}

#[apply(backends)]
#[tokio::test]
async fn cache_ttl_is_the_configured_maximum_for_long_lived_tokens(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let forever = f.create(new_token("alice", &[], None)).await.unwrap();
    let answer = f.check(&forever, &CheckRequest::default()).await.unwrap();
    assert_eq!(answer.cache_ttl, 300);
    assert_eq!(answer.expires, None);
}

#[apply(backends)]
#[tokio::test]
async fn scopes_are_checked_with_satisfy_all_and_any(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let token = f
        .create(new_token("alice", &["read:all"], None))
        .await
        .unwrap();
    let auth = bearer(&token);
    let both = ["read:all", "write:all"];
    assert!(f
        .app
        .check
        .check(
            Credential::Header(Some(&auth)),
            &requiring(&both, Satisfy::Any),
            None
        )
        .await
        .is_ok());
    match f
        .app
        .check
        .check(
            Credential::Header(Some(&auth)),
            &requiring(&both, Satisfy::All),
            None,
        )
        .await
    {
        Err(CheckError::InsufficientScope(scopes)) => assert_eq!(scopes.len(), 2),
        other => panic!("{other:?}"),
    }
}

#[apply(backends)]
#[tokio::test]
async fn wrong_secret_and_bootstrap_token_read_like_unknown_tokens(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let token = f.create(new_token("alice", &[], None)).await.unwrap();
    let wrong = Token::from_parts(
        token.key().clone(),
        Token::from_random([0; 16], [1; 16]).secret().clone(),
    );
    let unknown = Token::from_random([9; 16], [9; 16]);
    for presented in [&wrong, &unknown, &f.bootstrap] {
        let err = f
            .check(presented, &CheckRequest::default())
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                CheckError::Auth(AuthError::InvalidToken("Token is not valid"))
            ),
            "{err:?}"
        );
    }
}

#[apply(backends)]
#[tokio::test]
async fn creation_rules_refuse_bad_tokens_and_store_nothing(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let short = new_token("alice", &[], Some(Duration::from_secs(299)));
    assert!(matches!(
        f.create(short).await,
        Err(TokenError::ExpiresTooSoon)
    ));
    let mut service = new_token("alice", &[], None);
    service.token_type = TokenType::Service;
    assert!(matches!(
        f.create(service).await,
        Err(TokenError::ServiceNeedsBotName)
    ));
    let bot_user = new_token("bot-ci", &[], None);
    assert!(matches!(
        f.create(bot_user).await,
        Err(TokenError::BotNameNeedsService)
    ));
    let bad_name = new_token("Alice", &[], None);
    assert!(matches!(
        f.create(bad_name).await,
        Err(TokenError::InvalidUsername(_))
    ));
    let mut bad_email = new_token("alice", &[], None);
    bad_email.user.email = Some("a@b\r\nx: y".into());
    assert!(matches!(
        f.create(bad_email).await,
        Err(TokenError::InvalidEmail)
    ));
    let exactly_five_minutes = new_token("alice", &[], Some(Duration::from_secs(300)));
    assert!(f.create(exactly_five_minutes).await.is_ok());
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: serde_json::Value,
}

impl Reply {
    fn challenge(&self) -> Option<&str> {
        self.headers
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap())
    }
}

async fn get(f: &Fixture, uri: &str, authorization: &[HeaderValue]) -> Reply {
    let mut request = Request::get(uri);
    for value in authorization {
        request = request.header("authorization", value.clone());
    }
    send(f, request.body(Body::empty()).unwrap()).await
}

async fn send(f: &Fixture, request: Request<Body>) -> Reply {
    let response = f.app.ingress_router().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, 1 << 16).await.unwrap();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: serde_json::from_slice(&body).unwrap(),
    }
}

#[apply(backends)]
#[tokio::test]
async fn ingress_answers_with_identity_headers_and_body(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let mut new = new_token("alice", &["read:all", "exec:notebook"], None);
    new.user.email = Some("alice@example.org".into());
    let token = f.create(new).await.unwrap();
    let auth = HeaderValue::from_str(&bearer(&token)).unwrap();
    let reply = get(&f, "/ingress/auth?scope=read:all", &[auth]).await;
    assert_eq!(reply.status, StatusCode::OK);
    let h = &reply.headers;
    assert_eq!(h["x-auth-request-user"], "alice");
    assert_eq!(h["x-auth-request-email"], "alice@example.org");
    assert_eq!(h["x-auth-request-token-scopes"], "exec:notebook read:all");
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(reply.body["username"], "alice");
    assert_eq!(reply.body["token_type"], "user");
    assert_eq!(reply.body["cache_ttl"], 300);
}

#[apply(backends)]
#[tokio::test]
async fn ingress_refuses_malformed_requests_with_400_and_a_precise_message(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let token = f.create(new_token("alice", &[], None)).await.unwrap();
    let good = HeaderValue::from_str(&bearer(&token)).unwrap();
    let cases: Vec<(&str, Vec<HeaderValue>, &str)> = vec![
        (
            "/ingress/auth",
            vec![good.clone(), good.clone()],
            "more than one Authorization header",
        ),
        (
            "/ingress/auth",
            vec![HeaderValue::from_bytes(b"Bearer \xff").unwrap()],
            "not visible ASCII",
        ),
        (
            "/ingress/auth",
            vec![HeaderValue::from_static("Basic abc")],
            "not base64 of `username:password`",
        ),
        (
            "/ingress/auth?scopes=read:all",
            vec![good.clone()],
            "unknown query parameter \"scopes\"",
        ),
        (
            "/ingress/auth?satisfy=most",
            vec![good.clone()],
            "satisfy must be `any` or `all`",
        ),
        ("/ingress/auth?scope=", vec![good.clone()], "scope is empty"),
        // 2^64 - 1 seconds would wrap the clock round to the past.
        (
            "/ingress/auth?minimum_lifetime=18446744073709551615",
            vec![good.clone()],
            "minimum_lifetime",
        ),
        (
            "/ingress/auth?minimum_lifetime=18446744073709551615&delegate_to=svc",
            vec![good.clone()],
            "minimum_lifetime",
        ),
    ];
    for (uri, headers, message) in cases {
        let reply = get(&f, uri, &headers).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{uri} {message}");
        assert!(reply
            .challenge()
            .unwrap()
            .contains(r#"error="invalid_request""#));
        assert_eq!(reply.body["error"], "invalid_request");
        let description = reply.body["error_description"].as_str().unwrap();
        assert!(description.contains(message), "{description}");
    }
}

/// A check as Envoy's ext_authz sends it: the client's method, the
/// client's path and query after the prefix, and the route's requirements
/// in X-Portcullis-Check (each value given is one header).
fn ext_authz(
    method: &str,
    uri: &str,
    token: Option<&Token>,
    check: &[&'static [u8]],
) -> Request<Body> {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header("authorization", bearer(token));
    }
    for value in check {
        request = request.header(
            "x-portcullis-check",
            HeaderValue::from_bytes(value).unwrap(),
        );
    }
    request.body(Body::empty()).unwrap()
}

#[apply(backends)]
#[tokio::test]
async fn ext_authz_takes_requirements_from_its_header_never_from_the_client_path(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let token = f
        .create(new_token("alice", &["read:all"], None))
        .await
        .unwrap();
    let allowed = [
        (
            "GET",
            "/ingress/ext-authz/",
            &[b"scope=read:all" as &[u8]][..],
        ),
        (
            "POST",
            "/ingress/ext-authz/api/items?x=1",
            &[b"scope=read:all"],
        ),
        ("DELETE", "/ingress/ext-authz", &[]),
    ];
    for (method, uri, check) in allowed {
        let reply = send(&f, ext_authz(method, uri, Some(&token), check)).await;
        assert_eq!(reply.status, StatusCode::OK, "{method} {uri}");
        assert_eq!(reply.headers["x-auth-request-user"], "alice");
    }
    // The client's own query can neither add nor weaken a requirement.
    let uri = "/ingress/ext-authz/page?satisfy=any&scope=read:all";
    let reply = send(
        &f,
        ext_authz("GET", uri, Some(&token), &[b"scope=admin:token"]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let challenge = reply.challenge().unwrap();
    assert!(
        challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );
    assert!(challenge.ends_with(r#"scope="admin:token""#), "{challenge}");
    let reply = send(&f, ext_authz("GET", "/ingress/ext-authz/", None, &[])).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.challenge().unwrap().starts_with("Bearer realm="));
}

#[apply(backends)]
#[tokio::test]
async fn ext_authz_refuses_a_doubled_or_malformed_check_header_with_400(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let token = f
        .create(new_token("alice", &["read:all"], None))
        .await
        .unwrap();
    let cases: [(&[&'static [u8]], &str); 3] = [
        (
            &[b"scope=read:all", b"scope=read:all"],
            "more than one X-Portcullis-Check header",
        ),
        (
            &[b"scope=read:all\xff"],
            "X-Portcullis-Check header is not visible ASCII",
        ),
        (&[b"scopes=read:all"], "unknown query parameter \"scopes\""),
    ];
    for (check, message) in cases {
        let reply = send(
            &f,
            ext_authz("GET", "/ingress/ext-authz/", Some(&token), check),
        )
        .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{message}");
        assert_eq!(reply.body["error"], "invalid_request");
        let description = reply.body["error_description"].as_str().unwrap();
        assert!(description.contains(message), "{description}");
    }
}

#[apply(backends)]
#[tokio::test]
async fn ingress_error_bodies_never_echo_the_token(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let unknown = Token::from_random([9; 16], [9; 16]);
    let value = HeaderValue::from_str(&bearer(&unknown)).unwrap();
    let reply = get(&f, "/ingress/auth", &[value]).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let secret = unknown.secret().expose();
    assert!(!reply.challenge().unwrap().contains(&secret));
    assert!(!reply.body.to_string().contains(&secret));

    // Wherever a client puts a token, a refusal names what was wrong but
    // never holds the value it refused.
    let bare = unknown.expose().to_string();
    let header = |v: &str| HeaderValue::from_str(v).unwrap();
    for (uri, authorization, status) in [
        (
            "/ingress/auth".to_owned(),
            vec![header(&bare)],
            StatusCode::BAD_REQUEST,
        ),
        (
            "/ingress/auth".to_owned(),
            vec![header(&format!("{bare} {bare}"))],
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/ingress/auth?{bare}"),
            vec![],
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/ingress/auth?{bare}=1"),
            vec![],
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/ingress/auth?satisfy={bare}"),
            vec![],
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/ingress/auth?scope={bare}%22"),
            vec![],
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/ingress/auth?minimum_lifetime={bare}"),
            vec![],
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/ingress/auth?delegate_to={bare}%20x"),
            vec![],
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let reply = get(&f, &uri, &authorization).await;
        assert_eq!(reply.status, status, "{uri} {:?}", reply.body);
        let shown = format!("{:?} {:?}", reply.challenge(), reply.body);
        assert!(!shown.contains(&secret), "{uri}: {shown}");
        assert!(
            !shown.contains(&unknown.key().to_string()),
            "{uri}: {shown}"
        );
    }
}

#[apply(backends)]
#[tokio::test]
async fn health_is_ok_when_the_store_answers(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    for path in ["/health", "/ready"] {
        let reply = get(&f, path, &[]).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert_eq!(reply.body["status"], "ok", "{path}");
    }
}

/// A distributed store whose schema falls behind (another version's
/// migration rolled back, or none run): not ready, yet alive, so that a
/// probe stops sending it checks without restarting it.
#[tokio::test]
async fn a_schema_behind_this_build_is_alive_but_not_ready() {
    let clock = Arc::new(ManualClock::at(START));
    let Some((app, _bootstrap, store)) = common::app(Backend::Distributed, clock).await else {
        return;
    };
    let engines = store.engines.as_ref().expect("the distributed store");
    let mut pg = <sqlx::PgConnection as sqlx::Connection>::connect(&engines.database_url)
        .await
        .unwrap();
    sqlx::query(
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT max(version) FROM _sqlx_migrations)",
    )
    .execute(&mut pg)
    .await
    .unwrap();
    let f = Fixture {
        app,
        clock: Arc::new(ManualClock::at(START)),
        bootstrap: _bootstrap,
        _store: store,
    };
    let ready = get(&f, "/ready", &[]).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.body["status"], "unavailable");
    assert_eq!(get(&f, "/health", &[]).await.status, StatusCode::OK);
}

#[apply(backends)]
#[tokio::test]
async fn delegate_to_returns_a_reused_internal_token_with_the_held_scopes(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let token = f
        .create(new_token("alice", &["read:all", "exec:notebook"], None))
        .await
        .unwrap();
    let request = CheckRequest::from_query(
        "scope=read:all&delegate_to=tap&delegate_scope=read:all,write:all&minimum_lifetime=600",
    )
    .unwrap();
    let answer = f.check(&token, &request).await.unwrap();
    let delegated: Token = answer
        .delegated_token
        .as_ref()
        .unwrap()
        .expose()
        .parse()
        .unwrap();
    let info = f
        .app
        .tokens
        .get_token_info_unchecked(delegated.key(), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.token_type, TokenType::Internal);
    assert_eq!(info.service.as_deref(), Some("tap"));
    assert_eq!(info.parent.as_ref(), Some(token.key()));
    let held: Vec<String> = info.scopes.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        held,
        ["read:all"],
        "write:all is not the caller's to delegate"
    );
    let again = f.check(&token, &request).await.unwrap();
    assert_eq!(again.delegated_token, answer.delegated_token, "reused");
}

#[apply(backends)]
#[tokio::test]
async fn notebook_delegation_and_the_minimum_lifetime(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let token = f
        .create(new_token(
            "alice",
            &["exec:notebook"],
            Some(Duration::from_secs(3600)),
        ))
        .await
        .unwrap();
    let notebook = CheckRequest::from_query("notebook=true&minimum_lifetime=600").unwrap();
    let answer = f.check(&token, &notebook).await.unwrap();
    assert!(answer.delegated_token.is_some());
    assert_eq!(answer.cache_ttl, 300, "the configured maximum");
    f.clock.advance(Duration::from_secs(2700));
    let answer = f.check(&token, &notebook).await.unwrap();
    assert_eq!(
        answer.cache_ttl, 300,
        "900 s left, 600 of which must remain: 300"
    );
    f.clock.advance(Duration::from_secs(100));
    let answer = f.check(&token, &notebook).await.unwrap();
    assert_eq!(answer.cache_ttl, 200);
    f.clock.advance(Duration::from_secs(201));
    let err = f.check(&token, &notebook).await.unwrap_err();
    assert!(
        matches!(err, CheckError::Auth(AuthError::InvalidToken(why)) if why.contains("lifetime")),
        "{err:?}"
    );
}

#[apply(backends)]
#[tokio::test]
async fn basic_credentials_carry_the_token_and_basic_routes_get_a_basic_challenge(
    backend: Backend,
) {
    use base64::Engine as _;
    let Some(f) = fixture(backend).await else {
        return;
    };
    let token = f
        .create(new_token("alice", &["read:all"], None))
        .await
        .unwrap();
    let basic = |pair: String| {
        HeaderValue::from_str(&format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        ))
        .unwrap()
    };
    for pair in [
        format!("{}:x-oauth-basic", token.expose()),
        format!("x-oauth-basic:{}", token.expose()),
    ] {
        let reply = get(&f, "/ingress/auth?auth_type=basic", &[basic(pair)]).await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    let none = get(&f, "/ingress/auth?auth_type=basic", &[]).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        none.challenge(),
        Some(r#"Basic realm="portcullis", charset="UTF-8""#)
    );
    let wrong = get(
        &f,
        "/ingress/auth?auth_type=basic",
        &[basic("alice:hunter2".into())],
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.body["error"], "invalid_token");
}

#[apply(backends)]
#[tokio::test]
async fn use_authorization_puts_the_delegated_token_in_authorization(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let token = f
        .create(new_token("alice", &["read:all"], None))
        .await
        .unwrap();
    let auth = HeaderValue::from_str(&bearer(&token)).unwrap();
    let reply = get(
        &f,
        "/ingress/auth?delegate_to=tap&use_authorization=true",
        &[auth],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let delegated = reply.headers["x-auth-request-token"].to_str().unwrap();
    assert_eq!(
        reply.headers["authorization"].to_str().unwrap(),
        format!("Bearer {delegated}")
    );
    assert_ne!(delegated, token.expose());
}
