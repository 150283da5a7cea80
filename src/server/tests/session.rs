//! The browser session beyond the filter: the companion's checks read the
//! session cookie first and answer with the other cookies, and the token
//! API takes the cookie, with a CSRF token for every write.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail by panicking

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use portcullis::app::App;
use portcullis::services::{ManualClock, UserInfo};
use portcullis_core::Token;
use serde_json::{json, Value};
use tower::ServiceExt as _;

mod common;

use common::{backends, session_cookie, Backend, TestStore};
use rstest_reuse::apply;

const START: u64 = 1_900_000_000;

struct Fixture {
    app: App,
    alice: Token,
    bob: Token,
    _store: TestStore,
}

async fn fixture(backend: Backend) -> Option<Fixture> {
    let (app, _, store) = common::app(backend, Arc::new(ManualClock::at(START))).await?;
    let session = |name: &str| {
        let tokens = app.tokens.clone();
        let user = UserInfo {
            username: name.into(),
            ..UserInfo::default()
        };
        let scopes = vec!["read:all".parse().unwrap(), "user:token".parse().unwrap()];
        async move {
            tokens
                .create_session_token(&user, scopes, None)
                .await
                .unwrap()
        }
    };
    let (alice, bob) = (session("alice").await, session("bob").await);
    Some(Fixture {
        app,
        alice,
        bob,
        _store: store,
    })
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

async fn reply(response: axum::response::Response) -> Reply {
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

impl Fixture {
    /// `GET /ingress/auth` with these headers.
    async fn check(&self, headers: &[(&str, String)]) -> Reply {
        let mut request = Request::get("/ingress/auth?scope=read:all");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = self
            .app
            .ingress_router()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        reply(response).await
    }

    async fn api(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, String)],
        body: Option<Value>,
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let body = match body {
            Some(v) => {
                request = request.header("content-type", "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let (status, headers, bytes) = common::send(&self.app, request.body(body).unwrap()).await;
        Reply {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    /// The CSRF token of the session in `cookie`.
    async fn csrf(&self, cookie: &str) -> String {
        let login = self
            .api(
                Method::GET,
                "/auth/api/v1/login",
                &[("cookie", cookie.to_owned())],
                None,
            )
            .await;
        assert_eq!(login.status, StatusCode::OK, "{:?}", login.body);
        login.body["csrf"].as_str().unwrap().to_owned()
    }
}

fn bearer(token: &Token) -> String {
    format!("Bearer {}", token.expose())
}

#[apply(backends)]
#[tokio::test]
async fn the_check_takes_the_session_cookie_before_authorization(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let answer = f
        .check(&[
            ("cookie", session_cookie(&f.alice)),
            ("authorization", bearer(&f.bob)),
        ])
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["username"], "alice");
    assert_eq!(answer.headers["x-auth-request-user"], "alice");

    // A cookie that does not open is no credential: Authorization decides,
    // and a bad header beside it is still refused.
    let forged = "portcullis_session=not-sealed-by-us".to_owned();
    let answer = f
        .check(&[
            ("cookie", forged.clone()),
            ("authorization", bearer(&f.bob)),
        ])
        .await;
    assert_eq!(answer.body["username"], "bob");
    assert_eq!(
        f.check(&[("cookie", forged)]).await.status,
        StatusCode::UNAUTHORIZED
    );

    // A revoked session is refused at once, whatever else is sent.
    f.app.tokens.logout(&f.alice, None).await.unwrap();
    let answer = f
        .check(&[
            ("cookie", session_cookie(&f.alice)),
            ("authorization", bearer(&f.bob)),
        ])
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
}

#[apply(backends)]
#[tokio::test]
async fn the_check_answers_with_every_cookie_but_the_session_s(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let sealed = session_cookie(&f.alice);
    // Every copy goes, in any spelling a parser upstream would read as the
    // name, in any of several Cookie headers; the rest stay byte for byte.
    let answer = f
        .check(&[
            ("cookie", format!("theme=dark; {sealed}; lang=cy")),
            ("cookie", format!("\"portcullis_session\"=stale; {sealed}")),
        ])
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["cookie"], "theme=dark; lang=cy");
    assert!(!answer
        .headers
        .contains_key("x-envoy-auth-headers-to-remove"));

    // A neighbour's bytes that are not UTF-8 hide nothing and pass on as
    // they came.
    let mut request = Request::get("/ingress/auth?scope=read:all");
    request = request.header(
        "cookie",
        axum::http::HeaderValue::from_bytes(&[b"a=\xff; ".as_slice(), sealed.as_bytes()].concat())
            .unwrap(),
    );
    let answer = reply(
        f.app
            .ingress_router()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["username"], "alice");
    assert_eq!(answer.headers["cookie"].as_bytes(), b"a=\xff");

    // With no other cookie, ext_authz is told to remove the header.
    let answer = f.check(&[("cookie", sealed.clone())]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(!answer.headers.contains_key("cookie"));
    assert_eq!(answer.headers["x-envoy-auth-headers-to-remove"], "cookie");

    // Bearer callers' cookies pass unchanged (nginx replaces the header
    // with the answer's); with no cookies, nothing is said of them.
    let answer = f
        .check(&[
            ("cookie", "theme=dark".to_owned()),
            ("authorization", bearer(&f.bob)),
        ])
        .await;
    assert_eq!(answer.headers["cookie"], "theme=dark");
    let answer = f.check(&[("authorization", bearer(&f.bob))]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(!answer.headers.contains_key("cookie"));
    assert!(!answer
        .headers
        .contains_key("x-envoy-auth-headers-to-remove"));

    // The same through the ext_authz form of the check.
    let request = Request::post("/ingress/ext-authz/app/page")
        .header("x-portcullis-check", "scope=read:all")
        .header("cookie", format!("{sealed}; theme=dark"))
        .body(Body::empty())
        .unwrap();
    let answer = reply(f.app.ingress_router().oneshot(request).await.unwrap()).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["x-auth-request-user"], "alice");
    assert_eq!(answer.headers["cookie"], "theme=dark");
}

#[apply(backends)]
#[tokio::test]
async fn the_login_route_gives_the_session_its_csrf_token_and_the_known_scopes(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let cookie = session_cookie(&f.alice);
    let login = f
        .api(
            Method::GET,
            "/auth/api/v1/login",
            &[("cookie", cookie.clone())],
            None,
        )
        .await;
    assert_eq!(login.status, StatusCode::OK);
    assert_eq!(login.headers["cache-control"], "no-store");
    assert_eq!(login.body["username"], "alice");
    assert_eq!(login.body["scopes"], json!(["read:all", "user:token"]));
    let known = login.body["config"]["scopes"].as_array().unwrap();
    assert!(
        known
            .iter()
            .any(|s| s["name"] == "read:all" && !s["description"].as_str().unwrap().is_empty()),
        "{known:?}"
    );
    // Each session has its own token.
    assert_ne!(f.csrf(&cookie).await, f.csrf(&session_cookie(&f.bob)).await);
    // A bearer token has no CSRF token to get: this route is the cookie's.
    let bearer_only = f
        .api(
            Method::GET,
            "/auth/api/v1/login",
            &[("authorization", bearer(&f.alice))],
            None,
        )
        .await;
    assert_eq!(bearer_only.status, StatusCode::UNAUTHORIZED);
    // And user-info answers the cookie.
    let info = f
        .api(
            Method::GET,
            "/auth/api/v1/user-info",
            &[("cookie", cookie)],
            None,
        )
        .await;
    assert_eq!(info.status, StatusCode::OK);
    assert_eq!(info.body["username"], "alice");
}

#[apply(backends)]
#[tokio::test]
async fn a_write_by_session_cookie_needs_the_session_s_csrf_token(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let cookie = session_cookie(&f.alice);
    let csrf = f.csrf(&cookie).await;
    let bobs_csrf = f.csrf(&session_cookie(&f.bob)).await;
    let uri = "/auth/api/v1/users/alice/tokens";
    let new = |name: &str| Some(json!({"token_name": name, "scopes": ["read:all"]}));
    // Reads need none.
    let list = f
        .api(Method::GET, uri, &[("cookie", cookie.clone())], None)
        .await;
    assert_eq!(list.status, StatusCode::OK);

    for (headers, why) in [
        (vec![("cookie", cookie.clone())], "no CSRF token"),
        (
            vec![("cookie", cookie.clone()), ("x-csrf-token", bobs_csrf)],
            "another session's",
        ),
        (
            vec![("cookie", cookie.clone()), ("x-csrf-token", "x".into())],
            "garbage",
        ),
        (
            vec![
                ("cookie", cookie.clone()),
                ("x-csrf-token", csrf.clone()),
                ("x-csrf-token", csrf.clone()),
            ],
            "two of them",
        ),
    ] {
        let refused = f.api(Method::POST, uri, &headers, new("refused")).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{why}");
        assert_eq!(refused.body["error"], "invalid_csrf", "{why}");
    }
    // Nothing was made by the refused writes.
    let listed = f
        .api(Method::GET, uri, &[("cookie", cookie.clone())], None)
        .await;
    assert!(
        !listed.body.to_string().contains("refused"),
        "{listed:?}",
        listed = listed.body
    );

    let made = f
        .api(
            Method::POST,
            uri,
            &[("cookie", cookie.clone()), ("x-csrf-token", csrf.clone())],
            new("laptop"),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{:?}", made.body);
    let key = made.body["token"].as_str().unwrap()[3..25].to_owned();
    // DELETE and PATCH are writes too.
    let one = format!("{uri}/{key}");
    for method in [Method::PATCH, Method::DELETE] {
        let body = (method == Method::PATCH).then(|| json!({"token_name": "x"}));
        let refused = f
            .api(method.clone(), &one, &[("cookie", cookie.clone())], body)
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{method}");
    }
    let revoked = f
        .api(
            Method::DELETE,
            &one,
            &[("cookie", cookie.clone()), ("x-csrf-token", csrf)],
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);

    // A bearer token needs no CSRF token, even beside the cookie: the
    // header, which no other site can make a browser send, is what counts.
    let by_bearer = f
        .api(
            Method::POST,
            uri,
            &[("authorization", bearer(&f.alice)), ("cookie", cookie)],
            new("by-bearer"),
        )
        .await;
    assert_eq!(
        by_bearer.status,
        StatusCode::CREATED,
        "{:?}",
        by_bearer.body
    );
}
