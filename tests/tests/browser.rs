//! Browsers sent to log in, through the real Envoy.

use portcullis_e2e::stack::with_filter_config;
use portcullis_e2e::Stack;
use reqwest::redirect::Policy;
use reqwest::StatusCode;

const FILTER: &str = r#"{"cluster": "portcullis", "login_url": "https://login.example.org/login",
  "policy": {"scopes": ["read:all"], "login_redirect": true},
  "rules": [{"match": {"prefix": "/api/"}, "policy": {"scopes": ["read:all"]}}]}"#;

const HTML: &str = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8";

async fn get(stack: &Stack, path: &str, accept: &str, token: Option<&str>) -> reqwest::Response {
    let client = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client");
    let mut request = client.get(stack.url(path)).header("accept", accept);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("request through Envoy")
}

#[tokio::test]
async fn a_browser_that_must_log_in_is_redirected_with_where_it_was_going() {
    let stack = Stack::start_with(|_, config| with_filter_config(&config, FILTER)).await;
    let redirected = get(&stack, "/page?x=1&y=2", HTML, None).await;
    assert_eq!(redirected.status(), StatusCode::FOUND);
    let location = redirected.headers()["location"].to_str().unwrap();
    let original = format!(
        "http%3A%2F%2F127.0.0.1%3A{}%2Fpage%3Fx%3D1%26y%3D2",
        stack.ports.proxy
    );
    assert_eq!(
        location,
        format!("https://login.example.org/login?rd={original}")
    );
    assert_eq!(redirected.headers()["cache-control"], "no-store");

    // A bad token is the same as none to a browser: log in again.
    assert_eq!(
        get(&stack, "/page", HTML, Some("gt-nope")).await.status(),
        StatusCode::FOUND
    );
}

#[tokio::test]
async fn only_browsers_only_401s_and_only_redirecting_routes_are_redirected() {
    let stack = Stack::start_with(|_, config| with_filter_config(&config, FILTER)).await;
    let reader = stack.companion.create_token("alice", &["read:all"]);
    let writer = stack.companion.create_token("bob", &["write:all"]);
    assert_eq!(
        get(&stack, "/page", "application/json", None)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(&stack, "/page", HTML, Some(&reader)).await.status(),
        StatusCode::OK
    );
    // Logged in but lacking the scope: logging in again would not help.
    assert_eq!(
        get(&stack, "/page", HTML, Some(&writer)).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get(&stack, "/api/x", HTML, None).await.status(),
        StatusCode::UNAUTHORIZED
    );

    assert_eq!(
        stack.envoy_counter("portcullis.login_redirects").await,
        0,
        "none of these redirected"
    );
}
