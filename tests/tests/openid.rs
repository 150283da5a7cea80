//! Both halves of OpenID Connect through real, independent software: the
//! login through `oidc-provider` ending in a request through the real Envoy
//! that the new session cookie authorizes, and the certified `openid-client`
//! completing a whole flow against the companion's provider.

use portcullis_e2e::node::{relying_party, UpstreamProvider};
use portcullis_e2e::stack::upstream_headers;
use portcullis_e2e::{Artifacts, Companion, Stack};
use serde_json::{json, Value};

const APP_REDIRECT: &str = "http://127.0.0.1:9/callback";

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .unwrap()
}

/// A stack whose companion logs in through a fresh upstream provider that
/// signs in `account`; group `staff` gets `read:all`.
async fn stack_with_login(account: Value) -> (Stack, UpstreamProvider) {
    let mut stack = Stack::start().await;
    let artifacts = Artifacts::get();
    let idp = UpstreamProvider::start(
        &artifacts,
        &stack.companion.dir,
        &stack.companion.url("/login/callback"),
        &account,
    )
    .await;
    let login = idp.login_config("staff", "read:all");
    stack
        .companion
        .reconfigure(|c| Companion::plain_http_cookies(c) + &login)
        .await;
    (stack, idp)
}

#[tokio::test]
async fn login_through_the_upstream_provider_ends_at_the_edge_with_a_session_cookie() {
    let (stack, _idp) = stack_with_login(json!({
        "sub": "alice-sub",
        "preferred_username": "alice",
        "name": "Alice Example",
        "email": "alice@example.org",
        "email_verified": true,
        "groups": ["staff", "other"],
    }))
    .await;
    let browser = browser();
    // rd is the protected page behind Envoy; the companion's host is the
    // same, so it is allowed. The browser follows every redirect: to the
    // provider, its login and consent, the callback, and back through Envoy.
    let start = reqwest::Url::parse_with_params(
        &stack.companion.url("/login"),
        [("rd", stack.url("/hello"))],
    )
    .unwrap();
    let response = browser.get(start).send().await.unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.url());
    assert_eq!(response.url().port(), Some(stack.ports.proxy));
    let seen = upstream_headers(response).await;
    assert_eq!(seen["x-auth-request-user"], json!(["alice"]));
    assert_eq!(seen["x-auth-request-email"], json!(["alice@example.org"]));
    // The filter strips the session cookie before the upstream.
    let cookies = seen.get("cookie").map(Value::to_string).unwrap_or_default();
    assert!(!cookies.contains("portcullis_session"), "{cookies}");

    // The session is a session token for alice with the mapped scope only.
    let listing = stack.companion.cli(&["token", "list", "--user", "alice"]);
    let sessions: Vec<&str> = listing
        .lines()
        .filter(|l| l.contains("\tsession\t"))
        .collect();
    assert_eq!(sessions.len(), 1, "{listing}");
    assert!(sessions[0].contains("\tread:all\t"), "{listing}");

    // Logging out ends it at the edge too.
    // (It returns to the companion's `/`, which is no page: any status.)
    browser
        .get(stack.companion.url("/logout"))
        .send()
        .await
        .unwrap();
    let after = browser.get(stack.url("/hello")).send().await.unwrap();
    assert_eq!(after.status(), 401);
}

#[tokio::test]
async fn an_email_the_provider_has_not_verified_is_not_carried() {
    let (stack, _idp) = stack_with_login(json!({
        "sub": "dave-sub",
        "preferred_username": "dave",
        "email": "ceo@example.org",
        "email_verified": false,
        "groups": ["staff"],
    }))
    .await;
    let start = reqwest::Url::parse_with_params(
        &stack.companion.url("/login"),
        [("rd", stack.url("/hello"))],
    )
    .unwrap();
    let response = browser().get(start).send().await.unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.url());
    let seen = upstream_headers(response).await;
    assert_eq!(seen["x-auth-request-user"], json!(["dave"]));
    assert!(!seen.contains_key("x-auth-request-email"), "{seen:?}");
}

#[tokio::test]
async fn a_user_whose_groups_map_to_no_scope_gets_a_clear_403_page_and_no_session() {
    let (stack, _idp) = stack_with_login(json!({
        "sub": "bob-sub",
        "preferred_username": "bob",
        "groups": ["visitors"],
    }))
    .await;
    let browser = browser();
    let response = browser
        .get(stack.companion.url("/login?rd=/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let page = response.text().await.unwrap();
    assert!(page.contains("none of your groups grants access"), "{page}");
    let listing = stack.companion.cli(&["token", "list", "--user", "bob"]);
    assert_eq!(
        listing.lines().count(),
        1,
        "only the header line: {listing}"
    );
}

#[tokio::test]
async fn a_certified_relying_party_completes_discovery_pkce_code_id_token_and_userinfo() {
    let artifacts = Artifacts::get();
    let dir = tempfile::tempdir().unwrap();
    let companion = Companion::start(&artifacts, dir.path()).await;
    let registered: Value = serde_json::from_str(&companion.cli(&[
        "oidc-client",
        "create",
        "--id",
        "demo-app",
        "--redirect-uri",
        APP_REDIRECT,
    ]))
    .unwrap();
    let secret = registered["client_secret"].as_str().unwrap();
    let cookie = companion
        .cli(&[
            "token",
            "create",
            "--type",
            "session",
            "--user",
            "carol",
            "--scope",
            "read:all",
            "--email",
            "carol@example.org",
            "--name",
            "Carol Example",
            "--cookie",
        ])
        .trim()
        .to_owned();
    let issuer = companion.url("");
    let report = relying_party(
        &artifacts,
        &issuer,
        "demo-app",
        secret,
        APP_REDIRECT,
        &cookie,
    )
    .unwrap_or_else(|e| panic!("openid-client failed:\n{e}\n{}", companion.log()));

    let claims = &report["claims"];
    assert_eq!(claims["iss"], issuer);
    assert_eq!(claims["sub"], "carol");
    assert_eq!(claims["aud"], "demo-app");
    assert_eq!(claims["preferred_username"], "carol");
    assert_eq!(claims["name"], "Carol Example");
    assert_eq!(claims["email"], "carol@example.org");
    for claim in ["exp", "iat", "auth_time", "nonce", "at_hash"] {
        assert!(!claims[claim].is_null(), "ID token lacks {claim}: {claims}");
    }
    assert_eq!(report["userinfo"]["sub"], "carol");
    assert_eq!(report["userinfo"]["email"], "carol@example.org");
    assert_eq!(
        report["token_type"]
            .as_str()
            .map(str::to_lowercase)
            .as_deref(),
        Some("bearer")
    );

    // The access token is an opaque oidc child of carol's session.
    let access = report["access_token"].as_str().unwrap();
    assert!(access.starts_with("gt-"));
    let listing = companion.cli(&["token", "list", "--user", "carol"]);
    assert!(listing.lines().any(|l| l.contains("\toidc\t")), "{listing}");
}
