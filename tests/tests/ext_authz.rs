//! Envoy's own `ext_authz` in front of the companion, as the README gives
//! it: the companion's answer decides, its identity headers reach the
//! upstream, and nothing the client sends can change the requirement or
//! pose as an identity.

use portcullis_e2e::bench::envoy_config::{envoy_config, ext_authz_filters, Answer};
use portcullis_e2e::stack::upstream_headers;
use portcullis_e2e::Stack;
use reqwest::StatusCode;

async fn ext_authz_stack() -> Stack {
    Stack::start_with(|ports, _demo| {
        envoy_config(
            ports.admin,
            ports.proxy,
            Answer::Upstream(ports.upstream),
            ext_authz_filters("scope=read:all"),
            Some(ports.ingress),
        )
    })
    .await
}

#[tokio::test]
async fn ext_authz_lets_a_token_with_the_scope_through_as_its_user_only() {
    let stack = ext_authz_stack().await;
    let token = stack.companion.create_token("alice", &["read:all"]);
    let bearer = format!("Bearer {token}");
    let forged = [
        ("authorization", bearer.as_str()),
        ("x-auth-request-user", "root"),
        ("x-auth-request-email", "root@example.org"),
    ];
    for method in [reqwest::Method::GET, reqwest::Method::POST] {
        let mut request = stack
            .client
            .request(method.clone(), stack.url("/app/page?x=1"));
        for (name, value) in forged {
            request = request.header(name, value);
        }
        let reply = request.send().await.expect("through Envoy");
        assert_eq!(reply.status(), StatusCode::OK, "{method}");
        let headers = upstream_headers(reply).await;
        assert_eq!(headers["x-auth-request-user"], serde_json::json!(["alice"]));
        assert_eq!(
            headers["x-auth-request-token-scopes"],
            serde_json::json!(["read:all"])
        );
        // Alice has no email: the client's own never got through.
        assert!(!headers.contains_key("x-auth-request-email"), "{headers:?}");
    }
}

#[tokio::test]
async fn ext_authz_passes_on_the_companion_s_refusals_and_their_challenges() {
    let stack = ext_authz_stack().await;
    let reply = stack.get("/app", &[]).await;
    assert_eq!(reply.status(), StatusCode::UNAUTHORIZED);
    let challenge = reply.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Bearer realm="), "{challenge}");

    // The client's query is no requirement: asking for satisfy=any or
    // another scope changes nothing.
    let writer = stack.companion.create_token("bob", &["write:all"]);
    for path in ["/app", "/app?satisfy=any&scope=write:all"] {
        let reply = stack.get_with_token(path, &writer).await;
        assert_eq!(reply.status(), StatusCode::FORBIDDEN, "{path}");
        let challenge = reply.headers()["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.contains(r#"error="insufficient_scope""#),
            "{challenge}"
        );
    }

    let token = stack.companion.create_token("alice", &["read:all"]);
    assert_eq!(
        stack.get_with_token("/app", &token).await.status(),
        StatusCode::OK
    );
    stack.revoke("alice", &token).await;
    let reply = stack.get_with_token("/app", &token).await;
    assert_eq!(reply.status(), StatusCode::UNAUTHORIZED);
    let challenge = reply.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
}

#[tokio::test]
async fn ext_authz_takes_the_session_cookie_and_keeps_it_from_the_upstream() {
    let stack = ext_authz_stack().await;
    let session = stack.companion.session_cookie("bob", &["read:all"]);
    let reply = stack
        .client
        .get(stack.url("/app"))
        .header("cookie", format!("theme=dark; {session}"))
        .send()
        .await
        .expect("through Envoy");
    assert_eq!(reply.status(), StatusCode::OK);
    let headers = upstream_headers(reply).await;
    assert_eq!(headers["x-auth-request-user"], serde_json::json!(["bob"]));
    assert_eq!(headers["cookie"], serde_json::json!(["theme=dark"]));
    // With no other cookie, Envoy removes the header, as it is told.
    let reply = stack
        .client
        .get(stack.url("/app"))
        .header("cookie", session)
        .send()
        .await
        .expect("through Envoy");
    assert_eq!(reply.status(), StatusCode::OK);
    let headers = upstream_headers(reply).await;
    assert_eq!(headers["x-auth-request-user"], serde_json::json!(["bob"]));
    assert!(!headers.contains_key("cookie"), "{headers:?}");
}
