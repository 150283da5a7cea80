//! The companion's check, through the services with a clock the tests move,
//! and through the HTTP router without a network.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode};
use portcullis::app::App;
use portcullis::config::{self, Config};
use portcullis::services::{
    Actor, AdminTokenRequest, AuthError, CheckError, ManualClock, TokenError,
};
use portcullis_core::{CheckAnswer, CheckRequest, Satisfy, Token, TokenType};
use tower::ServiceExt as _;

const START: u64 = 1_900_000_000;

struct Fixture {
    app: App,
    clock: Arc<ManualClock>,
    bootstrap: Token,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = Token::from_random([7; 16], [8; 16]);
    let text = config::initial_toml(
        "127.0.0.1:0".parse().unwrap(),
        Path::new("t.sqlite"),
        [5; 32],
        &bootstrap,
    );
    let config = Config::from_toml(&text, dir.path()).unwrap();
    let clock = Arc::new(ManualClock::at(START));
    let app = App::with_clock(&config, clock.clone()).await.unwrap();
    Fixture {
        app,
        clock,
        bootstrap,
        _dir: dir,
    }
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
        self.app.check.check(Some(&bearer(token)), request).await
    }
}

fn new_token(user: &str, scopes: &[&str], lifetime: Option<Duration>) -> AdminTokenRequest {
    static MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    AdminTokenRequest {
        username: user.into(),
        token_type: TokenType::User,
        token_name: Some(format!("t{n}")),
        scopes: scopes.iter().map(|s| s.parse().unwrap()).collect(),
        expires: lifetime.map(|l| START + l.as_secs()),
        name: None,
        email: None,
        uid: None,
        gid: None,
        groups: vec![],
    }
}

fn requiring(scopes: &[&str], satisfy: Satisfy) -> CheckRequest {
    CheckRequest {
        scopes: scopes.iter().map(|s| s.parse().unwrap()).collect(),
        satisfy,
    }
}

fn bearer(token: &Token) -> String {
    format!("Bearer {}", token.expose())
}

#[tokio::test]
async fn token_is_valid_until_its_expiry_and_not_at_it() {
    let f = fixture().await;
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

#[tokio::test]
async fn cache_ttl_is_the_configured_maximum_for_long_lived_tokens() {
    let f = fixture().await;
    let forever = f.create(new_token("alice", &[], None)).await.unwrap();
    let answer = f.check(&forever, &CheckRequest::default()).await.unwrap();
    assert_eq!(answer.cache_ttl, 300);
    assert_eq!(answer.expires, None);
}

#[tokio::test]
async fn scopes_are_checked_with_satisfy_all_and_any() {
    let f = fixture().await;
    let token = f
        .create(new_token("alice", &["read:all"], None))
        .await
        .unwrap();
    let auth = bearer(&token);
    let both = ["read:all", "write:all"];
    assert!(f
        .app
        .check
        .check(Some(&auth), &requiring(&both, Satisfy::Any))
        .await
        .is_ok());
    match f
        .app
        .check
        .check(Some(&auth), &requiring(&both, Satisfy::All))
        .await
    {
        Err(CheckError::InsufficientScope(scopes)) => assert_eq!(scopes.len(), 2),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn wrong_secret_and_bootstrap_token_read_like_unknown_tokens() {
    let f = fixture().await;
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

#[tokio::test]
async fn creation_rules_refuse_bad_tokens_and_store_nothing() {
    let f = fixture().await;
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
    bad_email.email = Some("a@b\r\nx: y".into());
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
    let request = request.body(Body::empty()).unwrap();
    let response = f.app.router().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, 1 << 16).await.unwrap();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: serde_json::from_slice(&body).unwrap(),
    }
}

#[tokio::test]
async fn ingress_answers_with_identity_headers_and_body() {
    let f = fixture().await;
    let mut new = new_token("alice", &["read:all", "exec:notebook"], None);
    new.email = Some("alice@example.org".into());
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

#[tokio::test]
async fn ingress_refuses_malformed_requests_with_400_and_a_precise_message() {
    let f = fixture().await;
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
            "scheme \"Basic\" is not supported",
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

#[tokio::test]
async fn ingress_error_bodies_never_echo_the_token() {
    let f = fixture().await;
    let unknown = Token::from_random([9; 16], [9; 16]);
    let value = HeaderValue::from_str(&bearer(&unknown)).unwrap();
    let reply = get(&f, "/ingress/auth", &[value]).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let secret = unknown.secret().expose();
    assert!(!reply.challenge().unwrap().contains(&secret));
    assert!(!reply.body.to_string().contains(&secret));
}

#[tokio::test]
async fn health_is_ok_when_the_store_answers() {
    let f = fixture().await;
    let reply = get(&f, "/health", &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["status"], "ok");
}
