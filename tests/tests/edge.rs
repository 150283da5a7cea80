//! Through the real Envoy: the filter, loaded from the built .wasm, checks
//! each request with the companion. The route requires scope `read:all`.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use portcullis_e2e::envoy;
use portcullis_e2e::stack::upstream_headers;
use portcullis_e2e::Stack;
use reqwest::StatusCode;
use serde_json::Value;

fn challenge(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("www-authenticate")
        .expect("a WWW-Authenticate challenge")
        .to_str()
        .expect("ASCII challenge")
        .to_owned()
}

#[tokio::test]
async fn valid_token_reaches_upstream_with_identity_and_without_authorization() {
    let stack = Stack::start().await;
    let token = stack.companion.create_token("alice", &["read:all"]);

    let response = stack.get_with_token("/some/path?q=1", &token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = upstream_headers(response).await;
    assert_eq!(headers["x-auth-request-user"], serde_json::json!(["alice"]));
    assert_eq!(
        headers["x-auth-request-token-scopes"],
        serde_json::json!(["read:all"])
    );
    assert!(!headers.contains_key("authorization"), "{headers:?}");
    let seen = Value::Object(headers).to_string();
    assert!(!seen.contains(&token), "the token reached the upstream");
}

#[tokio::test]
async fn identity_headers_carry_email_uid_gid_and_groups() {
    let stack = Stack::start().await;
    let token = stack
        .companion
        .cli(&[
            "token",
            "create",
            "--user",
            "alice",
            "--token-name",
            "full",
            "--scope",
            "read:all",
            "--email",
            "alice@example.org",
            "--uid",
            "1000",
            "--gid",
            "2000",
            "--group",
            "staff:2000",
            "--group",
            "admins",
        ])
        .trim()
        .to_owned();
    let headers = upstream_headers(stack.get_with_token("/", &token).await).await;
    for (name, value) in [
        ("x-auth-request-user", "alice"),
        ("x-auth-request-email", "alice@example.org"),
        ("x-auth-request-uid", "1000"),
        ("x-auth-request-gid", "2000"),
        ("x-auth-request-groups", "staff,admins"),
        ("x-auth-request-token-scopes", "read:all"),
    ] {
        assert_eq!(headers[name], serde_json::json!([value]), "{name}");
    }
    assert!(
        !headers.contains_key("x-auth-request-service"),
        "not an internal token"
    );
}

#[tokio::test]
async fn missing_token_gets_401_with_a_bare_bearer_challenge() {
    let stack = Stack::start().await;
    let response = stack.get("/", &[]).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(challenge(&response), r#"Bearer realm="portcullis""#);
}

#[tokio::test]
async fn malformed_and_unknown_tokens_get_invalid_token() {
    let stack = Stack::start().await;
    let real = stack.companion.create_token("alice", &["read:all"]);
    // Same key, other secret: must read exactly like an unknown token.
    let wrong_secret = format!("{}AAAAAAAAAAAAAAAAAAAAAA", &real[..26]);
    let unknown = "gt-AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA";
    for (token, description) in [
        ("not-a-token", "Token is malformed"),
        ("gt-short.secret", "Token is malformed"),
        (unknown, "Token is not valid"),
        (wrong_secret.as_str(), "Token is not valid"),
    ] {
        let response = stack.get_with_token("/", token).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{token}");
        let challenge = challenge(&response);
        assert!(
            challenge.starts_with(r#"Bearer realm="portcullis", error="invalid_token""#),
            "{challenge}"
        );
        assert!(challenge.contains(description), "{challenge}");
        let body: Value = response.json().await.expect("JSON error body");
        assert_eq!(body["error"], "invalid_token");
    }
}

#[tokio::test]
async fn malformed_authorization_header_gets_400_invalid_request() {
    let stack = Stack::start().await;
    for value in ["Bearer", "Digest realm=x"] {
        let response = stack.get("/", &[("authorization", value)]).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{value}");
        assert!(challenge(&response).contains(r#"error="invalid_request""#));
    }
}

#[tokio::test]
async fn token_without_the_required_scope_gets_403_insufficient_scope() {
    let stack = Stack::start().await;
    let token = stack.companion.create_token("bob", &["write:all"]);
    let response = stack.get_with_token("/", &token).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        challenge(&response),
        r#"Bearer realm="portcullis", error="insufficient_scope", error_description="Token lacks a required scope", scope="read:all""#
    );
}

#[tokio::test]
async fn client_sent_identity_headers_never_reach_the_upstream() {
    let stack = Stack::start().await;
    // A token with no email: a forged email header must not survive either.
    let token = stack.companion.create_token("alice", &["read:all"]);
    let response = stack
        .get(
            "/",
            &[
                ("authorization", &format!("Bearer {token}")),
                ("x-auth-request-user", "admin"),
                ("X-Auth-Request-Email", "admin@example.org"),
                ("x-auth-request-groups", "admins"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = upstream_headers(response).await;
    assert_eq!(headers["x-auth-request-user"], serde_json::json!(["alice"]));
    assert!(!headers.contains_key("x-auth-request-email"), "{headers:?}");
    assert!(
        !headers.contains_key("x-auth-request-groups"),
        "{headers:?}"
    );

    // Refused requests are answered by the filter: nothing reaches upstream,
    // forged headers or not.
    let response = stack.get("/", &[("x-auth-request-user", "admin")]).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn companion_down_gives_503_and_requests_pass_again_once_it_is_back() {
    let mut stack = Stack::start().await;
    let token = stack.companion.create_token("alice", &["read:all"]);
    assert_eq!(
        stack.get_with_token("/", &token).await.status(),
        StatusCode::OK
    );

    stack.companion.stop();
    for _ in 0..4 {
        let response = stack.get_with_token("/", &token).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = response.text().await.expect("body");
        assert!(body.contains("temporarily_unavailable"), "{body}");
        assert!(!body.contains(&token));
    }

    stack.companion.resume().await;
    assert_eq!(
        stack.get_with_token("/", &token).await.status(),
        StatusCode::OK
    );
    assert!(stack.envoy.log().contains("answering 503"));
}

#[tokio::test]
async fn companion_answering_garbage_gives_503() {
    // Point the filter's companion cluster at the echo upstream: a 200 whose
    // body is no check answer must not let anyone in.
    let stack = Stack::start_with(|ports, config| {
        config.replace(
            &format!("port_value: {}", ports.ingress),
            &format!("port_value: {}", ports.upstream),
        )
    })
    .await;
    let token = stack.companion.create_token("alice", &["read:all"]);
    let response = stack.get_with_token("/", &token).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn companion_that_hangs_gives_503_after_the_timeout() {
    // Accepts connections and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_port = silent.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for connection in silent.incoming().flatten() {
            held.push(connection);
        }
    });
    let stack = Stack::start_with(|ports, config| {
        config
            .replace(
                &format!("port_value: {}", ports.ingress),
                &format!("port_value: {silent_port}"),
            )
            .replace(r#""timeout_ms": 1000"#, r#""timeout_ms": 300"#)
    })
    .await;
    let token = stack.companion.create_token("alice", &["read:all"]);
    let start = Instant::now();
    let response = stack.get_with_token("/", &token).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn invalid_plugin_configuration_is_refused_naming_the_field() {
    let bad = r#"{"cluster": "portcullis", "timeout_ms": 0, "policy": {"scopes": ["read:all"]}}"#;
    let log = portcullis_e2e::stack::envoy_refuses_filter_config(bad).await;
    assert!(
        log.contains(
            "invalid plugin configuration: field `timeout_ms`: must be between 1 and 60000, not 0"
        ),
        "{log}"
    );
}

#[tokio::test]
async fn plugin_stats_count_each_outcome_and_the_callout_latency() {
    let mut stack = Stack::start().await;
    let reader = stack.companion.create_token("alice", &["read:all"]);
    let writer = stack.companion.create_token("bob", &["write:all"]);
    for _ in 0..2 {
        assert_eq!(
            stack.get_with_token("/", &reader).await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(stack.get("/", &[]).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        stack.get_with_token("/", &writer).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        stack
            .get("/", &[("authorization", "Bearer")])
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(stack.get("/public/x", &[]).await.status(), StatusCode::OK);
    stack.companion.stop();
    assert_eq!(
        stack.get_with_token("/", &reader).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );

    // Counters are summed across both workers.
    for (name, count) in [
        ("portcullis.allowed", 2),
        ("portcullis.denied_401", 1),
        ("portcullis.denied_403", 1),
        ("portcullis.denied_400", 1),
        ("portcullis.unchecked", 1),
        ("portcullis.unavailable", 1),
        ("portcullis.callout_errors", 1),
        ("portcullis.bad_route_policy", 0),
    ] {
        assert_eq!(stack.envoy_counter(name).await, count, "{name}");
    }
    let stats = envoy::stats(stack.ports.admin).await;
    assert!(stats.contains("portcullis.callout_latency_ms"), "{stats}");
}
