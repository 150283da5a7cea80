//! The token REST API over HTTP (the router, without a network): every
//! route, its successes and its refusals.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail by panicking

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use portcullis::app::App;
use portcullis::services::{ManualClock, UserInfo};
use portcullis_core::Token;
use serde_json::{json, Value};

mod common;

use common::{backends, Backend, TestStore};
use rstest_reuse::apply;

const START: u64 = 1_900_000_000;

struct Api {
    app: App,
    bootstrap: String,
    alice: String,
    bob: String,
    admin: String,
    _store: TestStore,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

async fn api(backend: Backend) -> Option<Api> {
    let (app, bootstrap, store) = common::app(backend, Arc::new(ManualClock::at(START))).await?;
    let session = |name: &str, scopes: &[&str]| {
        let tokens = app.tokens.clone();
        let user = UserInfo {
            username: name.into(),
            email: Some(format!("{name}@example.org")),
            ..UserInfo::default()
        };
        let scopes = scopes.iter().map(|s| s.parse().unwrap()).collect();
        async move {
            tokens
                .create_session_token(&user, scopes, None)
                .await
                .unwrap()
                .expose()
        }
    };
    let alice = session("alice", &["read:all", "user:token"]).await;
    let bob = session("bob", &["read:all", "user:token"]).await;
    let admin = session("root", &["admin:token"]).await;
    Some(Api {
        app,
        bootstrap: bootstrap.expose(),
        alice,
        bob,
        admin,
        _store: store,
    })
}

impl Api {
    async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let body = match body {
            Some(v) => {
                request = request.header("content-type", "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        self.send(request.body(body).unwrap()).await
    }

    async fn send(&self, request: Request<Body>) -> Reply {
        let (status, headers, bytes) = common::send(&self.app, request).await;
        Reply {
            status,
            headers,
            body: if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap()
            },
        }
    }

    async fn get(&self, uri: &str, token: &str) -> Reply {
        self.call(Method::GET, uri, Some(token), None).await
    }

    async fn new_user_token(&self, owner: &str, token: &str, name: &str) -> Reply {
        let body = json!({ "token_name": name, "scopes": ["read:all"] });
        self.call(
            Method::POST,
            &format!("/auth/api/v1/users/{owner}/tokens"),
            Some(token),
            Some(body),
        )
        .await
    }
}

fn key_of(token: &str) -> String {
    token[3..25].to_owned()
}

fn assert_error(reply: &Reply, status: StatusCode, code: &str) {
    assert_eq!(reply.status, status, "{:?}", reply.body);
    assert_eq!(reply.body["error"], code, "{:?}", reply.body);
    assert!(reply.body["error_description"].is_string());
}

#[apply(backends)]
#[tokio::test]
async fn user_info_and_token_info_describe_the_authenticating_token(backend: Backend) {
    let Some(api) = api(backend).await else {
        return;
    };
    let info = api.get("/auth/api/v1/user-info", &api.alice).await;
    assert_eq!(info.status, StatusCode::OK);
    assert_eq!(info.body["username"], "alice");
    assert_eq!(info.body["email"], "alice@example.org");
    let token = api.get("/auth/api/v1/token-info", &api.alice).await;
    assert_eq!(token.body["token"], key_of(&api.alice));
    assert_eq!(token.body["token_type"], "session");
    assert_eq!(token.body["scopes"], json!(["read:all", "user:token"]));
    assert_error(
        &api.get("/auth/api/v1/user-info", &api.bootstrap).await,
        StatusCode::FORBIDDEN,
        "permission_denied",
    );
}

#[apply(backends)]
#[tokio::test]
async fn the_api_refuses_missing_and_invalid_tokens_with_rfc_6750_challenges(backend: Backend) {
    let Some(api) = api(backend).await else {
        return;
    };
    let none = api
        .call(Method::GET, "/auth/api/v1/user-info", None, None)
        .await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        none.headers["www-authenticate"],
        r#"Bearer realm="portcullis""#
    );
    let bad = api.get("/auth/api/v1/user-info", "gt-nope").await;
    assert_error(&bad, StatusCode::UNAUTHORIZED, "invalid_token");
    let unknown = api
        .get(
            "/auth/api/v1/user-info",
            "gt-AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA",
        )
        .await;
    assert_error(&unknown, StatusCode::UNAUTHORIZED, "invalid_token");
}

#[apply(backends)]
#[tokio::test]
async fn a_user_creates_lists_shows_and_revokes_their_own_tokens(backend: Backend) {
    let Some(api) = api(backend).await else {
        return;
    };
    let made = api.new_user_token("alice", &api.alice, "laptop").await;
    assert_eq!(made.status, StatusCode::CREATED, "{:?}", made.body);
    let token = made.body["token"].as_str().unwrap().to_owned();
    let key = key_of(&token);
    assert_eq!(
        made.headers["location"],
        format!("/auth/api/v1/users/alice/tokens/{key}")
    );
    // The new token works on the API (and so at the ingress).
    assert_eq!(
        api.get("/auth/api/v1/user-info", &token).await.body["username"],
        "alice"
    );

    let list = api.get("/auth/api/v1/users/alice/tokens", &api.alice).await;
    assert_eq!(list.status, StatusCode::OK);
    let names: Vec<&Value> = list
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["token_name"])
        .collect();
    assert!(names.contains(&&json!("laptop")), "{names:?}");

    let show = api
        .get(
            &format!("/auth/api/v1/users/alice/tokens/{key}"),
            &api.alice,
        )
        .await;
    assert_eq!(show.body["token_name"], "laptop");
    assert_eq!(show.body["token_type"], "user");

    let uri = format!("/auth/api/v1/users/alice/tokens/{key}");
    assert_eq!(
        api.call(Method::DELETE, &uri, Some(&api.alice), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_error(
        &api.get(&uri, &api.alice).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &api.call(Method::DELETE, &uri, Some(&api.alice), None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &api.get("/auth/api/v1/user-info", &token).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    );
    assert_error(
        &api.get("/auth/api/v1/users/alice/tokens/not-a-key", &api.alice)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

#[apply(backends)]
#[tokio::test]
async fn a_path_segment_that_is_not_utf8_is_refused_in_the_api_shape_unechoed(backend: Backend) {
    let Some(api) = api(backend).await else {
        return;
    };
    let key = "AAAAAAAAAAAAAAAAAAAAAA";
    for (method, uri) in [
        (Method::GET, "/auth/api/v1/users/%FFgt-x/tokens".to_owned()),
        (Method::POST, "/auth/api/v1/users/%FFgt-x/tokens".to_owned()),
        (Method::GET, format!("/auth/api/v1/users/a%FE/tokens/{key}")),
        (
            Method::DELETE,
            format!("/auth/api/v1/users/a/tokens/{key}%C0"),
        ),
        (
            Method::PATCH,
            format!("/auth/api/v1/users/a%FF/tokens/{key}"),
        ),
        (
            Method::GET,
            format!("/auth/api/v1/users/a%FF/tokens/{key}/change-history"),
        ),
        (
            Method::GET,
            "/auth/api/v1/users/%FF/token-change-history".to_owned(),
        ),
        (Method::GET, "/auth/api/v1/oidc-clients/%FF".to_owned()),
        (Method::DELETE, "/auth/api/v1/oidc-clients/%FF".to_owned()),
        (Method::POST, "/auth/cli/login/%FF/poll".to_owned()),
    ] {
        let body = matches!(method, Method::POST | Method::PATCH).then(|| json!({}));
        let reply = api.call(method.clone(), &uri, Some(&api.admin), body).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_request");
        let said = reply.body["error_description"].as_str().unwrap();
        assert!(
            !said.contains("gt-") && !said.contains('\u{fffd}'),
            "{method} {uri}: {said}"
        );
    }
}

#[apply(backends)]
#[tokio::test]
async fn a_user_cannot_see_or_touch_another_users_tokens(backend: Backend) {
    let Some(api) = api(backend).await else {
        return;
    };
    let bobs = api.new_user_token("bob", &api.bob, "mine").await.body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let bob_uri = format!("/auth/api/v1/users/bob/tokens/{}", key_of(&bobs));
    let forbidden = [
        api.get("/auth/api/v1/users/bob/tokens", &api.alice).await,
        api.new_user_token("bob", &api.alice, "sneaky").await,
        api.get(&bob_uri, &api.alice).await,
        api.call(Method::DELETE, &bob_uri, Some(&api.alice), None)
            .await,
        api.call(
            Method::PATCH,
            &bob_uri,
            Some(&api.alice),
            Some(json!({ "token_name": "x" })),
        )
        .await,
        api.get(&format!("{bob_uri}/change-history"), &api.alice)
            .await,
        api.get("/auth/api/v1/users/bob/token-change-history", &api.alice)
            .await,
        api.get("/auth/api/v1/history/token-changes", &api.alice)
            .await,
        api.call(
            Method::POST,
            "/auth/api/v1/tokens",
            Some(&api.alice),
            Some(json!({ "username": "bot-x", "token_type": "service" })),
        )
        .await,
    ];
    for reply in &forbidden {
        assert_error(reply, StatusCode::FORBIDDEN, "permission_denied");
    }
    // Bob's token is untouched.
    assert_eq!(
        api.get("/auth/api/v1/user-info", &bobs).await.status,
        StatusCode::OK
    );
}

#[apply(backends)]
#[tokio::test]
async fn managing_tokens_needs_user_token_and_making_them_a_session(backend: Backend) {
    let Some(api) = api(backend).await else {
        return;
    };
    // A user token of alice's with read:all alone.
    let made = api.new_user_token("alice", &api.alice, "reader").await;
    let reader = made.body["token"].as_str().unwrap().to_owned();
    let uri = format!("/auth/api/v1/users/alice/tokens/{}", key_of(&reader));
    let refused = [
        api.get("/auth/api/v1/users/alice/tokens", &reader).await,
        api.get(&uri, &reader).await,
        api.get(&format!("{uri}/change-history"), &reader).await,
        api.get("/auth/api/v1/users/alice/token-change-history", &reader)
            .await,
        api.call(Method::DELETE, &uri, Some(&reader), None).await,
        api.new_user_token("alice", &reader, "second").await,
    ];
    for reply in &refused {
        assert_error(reply, StatusCode::FORBIDDEN, "permission_denied");
    }
    // Even with user:token, a user token cannot make more: only a session.
    let body = json!({ "token_name": "wide", "scopes": ["read:all", "user:token"] });
    let wide = api
        .call(
            Method::POST,
            "/auth/api/v1/users/alice/tokens",
            Some(&api.alice),
            Some(body),
        )
        .await;
    let wide = wide.body["token"].as_str().unwrap().to_owned();
    assert_error(
        &api.new_user_token("alice", &wide, "third").await,
        StatusCode::FORBIDDEN,
        "permission_denied",
    );
    assert_eq!(api.get(&uri, &wide).await.status, StatusCode::OK);
}

#[apply(backends)]
#[tokio::test]
async fn expiries_past_what_any_clock_holds_are_refused_naming_the_field(backend: Backend) {
    let Some(api) = api(backend).await else {
        return;
    };
    for expires in [json!(u64::MAX), json!(i64::MAX), json!(253_402_300_800u64)] {
        let body = json!({ "token_name": "far", "scopes": ["read:all"], "expires": expires });
        let reply = api
            .call(
                Method::POST,
                "/auth/api/v1/users/alice/tokens",
                Some(&api.alice),
                Some(body),
            )
            .await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_request");
        let description = reply.body["error_description"].as_str().unwrap();
        assert!(description.contains("expires"), "{description}");
    }
}

#[apply(backends)]
#[tokio::test]
async fn a_relying_partys_access_token_is_refused_by_the_token_api(backend: Backend) {
    let Some(api) = api(backend).await else {
        return;
    };
    let session: Token = api.alice.parse().unwrap();
    let data = api.app.tokens.get_data(&session).await.unwrap().unwrap();
    let access = api
        .app
        .tokens
        .create_oidc_token(&data, 3600, None)
        .await
        .unwrap()
        .expose();
    for uri in ["/auth/api/v1/user-info", "/auth/api/v1/users/alice/tokens"] {
        assert_error(
            &api.get(uri, &access).await,
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        );
    }
}

#[apply(backends)]
#[tokio::test]
async fn admins_and_the_bootstrap_token_manage_everyones_tokens(backend: Backend) {
    let Some(api) = api(backend).await else {
        return;
    };
    for admin in [&api.admin, &api.bootstrap] {
        let list = api.get("/auth/api/v1/users/alice/tokens", admin).await;
        assert_eq!(list.status, StatusCode::OK);
    }
    let service = api
        .call(
            Method::POST,
            "/auth/api/v1/tokens",
            Some(&api.bootstrap),
            Some(json!({ "username": "bot-ci", "token_type": "service", "scopes": ["read:all"] })),
        )
        .await;
    assert_eq!(service.status, StatusCode::CREATED, "{:?}", service.body);
    let for_carol = api
        .call(Method::POST, "/auth/api/v1/tokens", Some(&api.admin),
            Some(json!({ "username": "carol", "token_type": "user", "token_name": "given", "email": "c@example.org" })))
        .await;
    assert_eq!(for_carol.status, StatusCode::CREATED);
    assert_eq!(
        api.get(
            "/auth/api/v1/user-info",
            for_carol.body["token"].as_str().unwrap()
        )
        .await
        .body["email"],
        "c@example.org"
    );
    let bad = api
        .call(
            Method::POST,
            "/auth/api/v1/tokens",
            Some(&api.admin),
            Some(json!({ "username": "ci", "token_type": "service" })),
        )
        .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "invalid_request");
    assert!(bad.body["error_description"]
        .as_str()
        .unwrap()
        .contains("bot-"));
}

#[apply(backends)]
#[tokio::test]
async fn patch_changes_name_scopes_and_expiry_for_admins(backend: Backend) {
    let Some(api) = api(backend).await else {
        return;
    };
    let token = api.new_user_token("alice", &api.alice, "before").await.body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let uri = format!("/auth/api/v1/users/alice/tokens/{}", key_of(&token));
    let patched = api
        .call(Method::PATCH, &uri, Some(&api.admin),
            Some(json!({ "token_name": "after", "scopes": ["read:all", "write:all"], "expires": START + 86400 })))
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{:?}", patched.body);
    assert_eq!(patched.body["token_name"], "after");
    assert_eq!(patched.body["scopes"], json!(["read:all", "write:all"]));
    assert_eq!(patched.body["expires"], START + 86400);
    let forever = api
        .call(
            Method::PATCH,
            &uri,
            Some(&api.admin),
            Some(json!({ "expires": null })),
        )
        .await;
    assert_eq!(forever.body["expires"], Value::Null);
    assert_eq!(
        forever.body["token_name"], "after",
        "absent fields are unchanged"
    );
    assert_error(
        &api.call(
            Method::PATCH,
            &uri,
            Some(&api.alice),
            Some(json!({ "token_name": "mine" })),
        )
        .await,
        StatusCode::FORBIDDEN,
        "permission_denied",
    );
    assert_error(
        &api.call(
            Method::PATCH,
            &uri,
            Some(&api.admin),
            Some(json!({ "colour": "red" })),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    assert_error(
        &api.call(
            Method::PATCH,
            &uri,
            Some(&api.admin),
            Some(json!({ "scopes": ["launch:missiles"] })),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_scope",
    );
    assert_error(
        &api.call(
            Method::PATCH,
            &uri,
            Some(&api.admin),
            Some(json!({ "expires": START + 10 })),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
}

#[apply(backends)]
#[tokio::test]
async fn duplicate_token_names_get_409_and_malformed_bodies_get_400(backend: Backend) {
    let Some(api) = api(backend).await else {
        return;
    };
    assert_eq!(
        api.new_user_token("alice", &api.alice, "twice")
            .await
            .status,
        StatusCode::CREATED
    );
    let again = api.new_user_token("alice", &api.alice, "twice").await;
    assert_error(&again, StatusCode::CONFLICT, "duplicate_token_name");
    assert!(again.body["error_description"]
        .as_str()
        .unwrap()
        .contains("twice"));
    let wide = api
        .call(
            Method::POST,
            "/auth/api/v1/users/alice/tokens",
            Some(&api.alice),
            Some(json!({ "token_name": "w", "scopes": ["admin:token"] })),
        )
        .await;
    assert_error(&wide, StatusCode::BAD_REQUEST, "invalid_scope");
    let request = Request::post("/auth/api/v1/users/alice/tokens")
        .header("authorization", format!("Bearer {}", api.alice))
        .header("content-type", "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    assert_error(
        &api.send(request).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    // Nothing was half-made by the refusals.
    let list = api.get("/auth/api/v1/users/alice/tokens", &api.alice).await;
    assert_eq!(
        list.body.as_array().unwrap().len(),
        2,
        "the session and one `twice`"
    );
}

#[apply(backends)]
#[tokio::test]
async fn history_routes_page_with_link_headers_and_record_the_client_address(backend: Backend) {
    let Some(api) = api(backend).await else {
        return;
    };
    for name in ["a", "b", "c"] {
        api.new_user_token("alice", &api.alice, name).await;
    }
    let own = api
        .get(
            "/auth/api/v1/users/alice/token-change-history?limit=2",
            &api.alice,
        )
        .await;
    assert_eq!(own.status, StatusCode::OK);
    let entries = own.body.as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["token_name"], "c");
    assert_eq!(entries[0]["action"], "create");
    assert_eq!(entries[0]["ip_address"], "192.0.2.7");
    let link = own.headers["link"].to_str().unwrap();
    let next = link.split(['<', '>']).nth(1).unwrap();
    assert!(
        next.starts_with("/auth/api/v1/users/alice/token-change-history?limit=2&cursor="),
        "{link}"
    );
    let rest = api.get(next, &api.alice).await;
    let names: Vec<&Value> = rest
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["token_name"])
        .collect();
    assert_eq!(
        names,
        [&json!("a"), &Value::Null],
        "then the session's creation"
    );

    let everyone = api
        .get(
            "/auth/api/v1/history/token-changes?username=bob",
            &api.admin,
        )
        .await;
    assert_eq!(everyone.body.as_array().unwrap().len(), 1);
    let key = api
        .get("/auth/api/v1/users/alice/tokens", &api.alice)
        .await
        .body[1]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let one = api
        .get(
            &format!("/auth/api/v1/users/alice/tokens/{key}/change-history"),
            &api.alice,
        )
        .await;
    assert_eq!(one.body.as_array().unwrap().len(), 1);
    assert_eq!(one.body[0]["token"], key);
    let bad = api
        .get(
            "/auth/api/v1/history/token-changes?since=yesterday",
            &api.admin,
        )
        .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "invalid_request");
    let cidr = api
        .get(
            "/auth/api/v1/history/token-changes?ip_address=192.0.2.0/24",
            &api.admin,
        )
        .await;
    assert_eq!(cidr.body.as_array().unwrap().len(), 3);
}

/// The demo's session cookie for `token`, sealed with the test key.
fn session_cookie(token: &str) -> String {
    common::session_cookie(&token.parse().unwrap())
}

async fn logout(api: &Api, cookie: Option<&str>) -> Reply {
    let mut request = Request::get("/logout");
    if let Some(cookie) = cookie {
        request = request.header("cookie", format!("theme=dark; {cookie}"));
    }
    api.send(request.body(Body::empty()).unwrap()).await
}

#[apply(backends)]
#[tokio::test]
async fn logout_revokes_the_session_and_its_children_and_clears_the_cookie(backend: Backend) {
    let Some(api) = api(backend).await else {
        return;
    };
    let data = api
        .app
        .tokens
        .get_data(&api.alice.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let child = api
        .app
        .tokens
        .get_notebook_token(&data, None, None)
        .await
        .unwrap();
    let reply = logout(&api, Some(&session_cookie(&api.alice))).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.headers["location"], "/signed-out");
    assert_eq!(
        reply.headers["set-cookie"],
        "portcullis_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax; Secure"
    );
    assert_eq!(reply.headers["cache-control"], "no-store");
    assert_error(
        &api.get("/auth/api/v1/user-info", &api.alice).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    );
    assert_error(
        &api.get("/auth/api/v1/user-info", &child.expose()).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    );
    let history = api
        .get("/auth/api/v1/history/token-changes?actor=alice", &api.admin)
        .await;
    let revoked = history
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "revoke")
        .count();
    assert_eq!(revoked, 2, "the session and its child, by alice");
}

#[apply(backends)]
#[tokio::test]
async fn logout_without_a_session_still_clears_and_redirects_and_touches_no_other_token(
    backend: Backend,
) {
    let Some(api) = api(backend).await else {
        return;
    };
    let reply = logout(&api, None).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert!(reply.headers["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    // A user token sealed as if it were a session is not a session.
    let made = api.new_user_token("alice", &api.alice, "cli").await;
    let user_token = made.body["token"].as_str().unwrap().to_owned();
    assert_eq!(
        logout(&api, Some(&session_cookie(&user_token)))
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        api.get("/auth/api/v1/user-info", &user_token).await.status,
        StatusCode::OK
    );
    // A forged cookie is nothing.
    assert_eq!(
        logout(&api, Some("portcullis_session=v1.forged"))
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        api.get("/auth/api/v1/user-info", &api.alice).await.status,
        StatusCode::OK
    );
}

/// The address history records for a revocation from peer 192.0.2.7 with
/// these `X-Forwarded-For` headers, with `trusted` (a `trusted_proxies`
/// line, or nothing for the default).
async fn recorded_address(backend: Backend, trusted: &str, forwarded: &[&[u8]]) -> Option<String> {
    let store = TestStore::new(backend).await?;
    let text = store.config_toml("");
    let text = match trusted {
        "" => text,
        line => text.replacen("trusted_proxies = []", line, 1),
    };
    let config = portcullis::config::Config::from_toml(&text, store.dir.path()).unwrap();
    let app = App::with_clock(&config, Arc::new(ManualClock::at(START)))
        .await
        .unwrap();
    let user = UserInfo {
        username: "alice".into(),
        ..UserInfo::default()
    };
    let scopes = vec!["read:all".parse().unwrap(), "user:token".parse().unwrap()];
    let session = app
        .tokens
        .create_session_token(&user, scopes, None)
        .await
        .unwrap();
    let uri = format!("/auth/api/v1/users/alice/tokens/{}", session.key().as_str());
    let mut request =
        Request::delete(&uri).header("authorization", format!("Bearer {}", session.expose()));
    for value in forwarded {
        let value = axum::http::HeaderValue::from_bytes(value).unwrap();
        request = request.header("x-forwarded-for", value);
    }
    let (status, _, _) = common::send(&app, request.body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let page = app
        .tokens
        .get_change_history(
            &portcullis::services::Actor::Cli,
            Default::default(),
            None,
            None,
        )
        .await
        .unwrap();
    let revoke = page
        .entries
        .iter()
        .find(|e| e.action.as_str() == "revoke")
        .expect("a revoke entry");
    Some(revoke.ip_address.expect("an address").to_string())
}

#[apply(backends)]
#[tokio::test]
async fn history_records_the_real_client_address_believing_only_trusted_proxies(backend: Backend) {
    // By default no peer is a proxy: a client's X-Forwarded-For is no alibi.
    let Some(seen) = recorded_address(backend, "", &[b"203.0.113.1"]).await else {
        return;
    };
    assert_eq!(seen, "192.0.2.7");
    let trusted = r#"trusted_proxies = ["192.0.2.7/32", "10.0.0.0/8"]"#;
    for (forwarded, expected) in [
        (&[&b"203.0.113.1"[..]][..], "203.0.113.1"),
        // Read from the right, past trusted hops only.
        (&[b"198.51.100.66, 203.0.113.1, 10.1.2.3"], "203.0.113.1"),
        // A client's own header before the proxy's is the same list.
        (&[b"198.51.100.66", b"203.0.113.1"], "203.0.113.1"),
        (&[b"not-an-address, 10.1.2.3"], "10.1.2.3"),
        // Nor do bytes that are not text in the client's header hide the
        // address the proxy appended.
        (&[b"\xff\xfe", b"203.0.113.1"], "203.0.113.1"),
        (&[b"203.0.113.1, \xff, 10.1.2.3"], "10.1.2.3"),
        (&[], "192.0.2.7"),
    ] {
        let seen = recorded_address(backend, trusted, forwarded).await.unwrap();
        assert_eq!(seen, expected, "{forwarded:?}");
    }
}

#[apply(backends)]
#[tokio::test]
async fn no_other_site_can_log_a_user_out(backend: Backend) {
    let Some(api) = api(backend).await else {
        return;
    };
    let cookie = format!("theme=dark; {}", session_cookie(&api.alice));
    // Its answers are pages, not JSON: status and headers only.
    let send = |headers: Vec<(&'static str, &'static str)>| {
        let mut request = Request::get("/logout").header("cookie", cookie.clone());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let app = &api.app;
        async move {
            let (status, headers, _) =
                common::send(app, request.body(Body::empty()).unwrap()).await;
            Reply {
                status,
                headers,
                body: Value::Null,
            }
        }
    };
    for headers in [
        vec![("sec-fetch-site", "cross-site")],
        // Another application on the cookie's domain is same-site.
        vec![("sec-fetch-site", "same-site")],
        vec![("origin", "https://evil.example")],
        vec![("sec-fetch-site", "same-origin"), ("origin", "null")],
    ] {
        let reply = send(headers.clone()).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{headers:?}");
        assert!(!reply.headers.contains_key("set-cookie"), "{headers:?}");
        assert_eq!(
            api.get("/auth/api/v1/user-info", &api.alice).await.status,
            StatusCode::OK,
            "still logged in after {headers:?}"
        );
    }
    // From a page of this site, or typed in: logged out.
    let reply = send(vec![
        ("sec-fetch-site", "same-origin"),
        ("origin", "http://127.0.0.1:0"),
    ])
    .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_error(
        &api.get("/auth/api/v1/user-info", &api.alice).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    );
}

#[apply(backends)]
#[tokio::test]
async fn without_a_provider_configured_its_endpoints_are_not_there(backend: Backend) {
    let Some(store) = TestStore::new(backend).await else {
        return;
    };
    let text = store.config_toml("");
    let (start, end) = (
        text.find("[oidc_server]").unwrap(),
        text.find("# The scopes tokens").unwrap(),
    );
    let text = format!("{}{}", &text[..start], &text[end..]);
    let config = portcullis::config::Config::from_toml(&text, store.dir.path()).unwrap();
    let app = App::with_clock(&config, Arc::new(ManualClock::at(START)))
        .await
        .unwrap();
    assert!(app.oidc.is_none());
    let bootstrap = format!("Bearer {}", common::bootstrap().expose());
    use portcullis::services::oidc::provider::*;
    for (method, path) in [
        ("GET", "/.well-known/openid-configuration"),
        ("GET", JWKS_PATH),
        ("GET", AUTHORIZE_PATH),
        ("POST", TOKEN_PATH),
        ("GET", USERINFO_PATH),
        ("POST", INTROSPECT_PATH),
        ("POST", REVOKE_PATH),
        ("GET", "/auth/api/v1/oidc-clients"),
        ("POST", "/auth/api/v1/oidc-clients"),
        ("GET", "/auth/api/v1/oidc-clients/app"),
        ("DELETE", "/auth/api/v1/oidc-clients/app"),
    ] {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", &bootstrap)
            .body(Body::empty())
            .unwrap();
        let (status, _, _) = common::send(&app, request).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
    }
}
