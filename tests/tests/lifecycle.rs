//! The token lifecycle through the real Envoy: delegated tokens for the
//! upstream, Basic credentials, and revocation.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use portcullis_e2e::stack::{upstream_headers, with_filter_config};
use portcullis_e2e::Stack;
use reqwest::StatusCode;
use serde_json::Value;

/// The demo with a default policy of scope `read:all` and more.
async fn stack_with_filter_settings(extra: &'static str) -> Stack {
    let json =
        format!(r#"{{"cluster": "portcullis", "policy": {{"scopes": ["read:all"], {extra}}}}}"#);
    Stack::start_with(move |_, config| with_filter_config(&config, &json)).await
}

async fn token_info(stack: &Stack, token: &str) -> Value {
    let reply = stack
        .client
        .get(stack.companion.url("/auth/api/v1/token-info"))
        .bearer_auth(token)
        .send()
        .await
        .expect("token-info");
    assert_eq!(
        reply.status(),
        StatusCode::OK,
        "the delegated token must work"
    );
    reply.json().await.expect("JSON")
}

#[tokio::test]
async fn a_route_with_delegate_to_gets_a_working_internal_token() {
    let stack =
        stack_with_filter_settings(r#""delegate_to": "tap", "delegate_scopes": ["read:all"]"#)
            .await;
    let token = stack
        .companion
        .create_token("alice", &["read:all", "exec:notebook"]);
    let response = stack.get_with_token("/", &token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = upstream_headers(response).await;
    let delegated = headers["x-auth-request-token"][0]
        .as_str()
        .expect("a delegated token")
        .to_owned();
    assert_ne!(delegated, token);
    assert!(!headers.contains_key("authorization"));

    let info = token_info(&stack, &delegated).await;
    assert_eq!(info["token_type"], "internal");
    assert_eq!(info["service"], "tap");
    assert_eq!(info["scopes"], serde_json::json!(["read:all"]));
    assert_eq!(info["parent"], token[3..25]);

    // Presented at the edge itself, the internal token names its service.
    let as_internal = upstream_headers(stack.get_with_token("/", &delegated).await).await;
    assert_eq!(as_internal["x-auth-request-service"][0], "tap");

    // The next request, through either worker, gets the same child.
    for _ in 0..4 {
        let again = upstream_headers(stack.get_with_token("/", &token).await).await;
        assert_eq!(again["x-auth-request-token"][0], delegated.as_str());
    }
}

#[tokio::test]
async fn use_authorization_hands_the_upstream_the_delegated_token_as_bearer() {
    let stack = stack_with_filter_settings(r#""notebook": true, "use_authorization": true"#).await;
    let token = stack
        .companion
        .create_token("alice", &["read:all", "exec:notebook"]);
    let headers = upstream_headers(stack.get_with_token("/", &token).await).await;
    let delegated = headers["x-auth-request-token"][0]
        .as_str()
        .expect("delegated")
        .to_owned();
    assert_eq!(
        headers["authorization"],
        serde_json::json!([format!("Bearer {delegated}")])
    );
    assert_eq!(
        token_info(&stack, &delegated).await["token_type"],
        "notebook"
    );
}

#[tokio::test]
async fn basic_credentials_work_and_are_stripped_before_the_upstream() {
    let stack = stack_with_filter_settings(r#""auth_type": "basic""#).await;
    let token = stack.companion.create_token("alice", &["read:all"]);
    for pair in [
        format!("{token}:x-oauth-basic"),
        format!("x-oauth-basic:{token}"),
    ] {
        let basic = format!("Basic {}", STANDARD.encode(pair));
        let response = stack.get("/", &[("authorization", &basic)]).await;
        assert_eq!(response.status(), StatusCode::OK);
        let headers = upstream_headers(response).await;
        assert_eq!(headers["x-auth-request-user"][0], "alice");
        assert!(!headers.contains_key("authorization"));
    }
    let refused = stack.get("/", &[]).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        refused.headers()["www-authenticate"],
        r#"Basic realm="portcullis", charset="UTF-8""#
    );
}

#[tokio::test]
async fn a_token_revoked_through_the_api_is_refused_at_the_edge() {
    let stack = Stack::start().await;
    let token = stack.companion.create_token("alice", &["read:all"]);
    assert_eq!(
        stack.get_with_token("/", &token).await.status(),
        StatusCode::OK
    );

    stack.revoke("alice", &token).await;

    let refused = stack.get_with_token("/", &token).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let challenge = refused.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
}
